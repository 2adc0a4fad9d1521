"""Statistics shared by scoring, the report and the benchmark's sizing: bootstrap intervals (over questions, and over
training seeds then questions), what a number of paired questions can tell, and the Wilson interval of a proportion
(the audited validity rate).

A paired difference's interval has a half-width h at the `ci` level; with the usual normal approximation its standard
error is h / z, and a true difference is found (the interval excludes zero) with 80% power once it is at least
(z + z_0.8) * h / z: the smallest difference this many questions could detect. The sample size that detects a
difference d when per-question differences spread with standard deviation sd is ((z + z_0.8) * sd / d)^2.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

POWER = 0.8


def _z(ci: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - ci) / 2)


def bootstrap_ci(values: np.ndarray, n: int, ci: float, seed: int) -> list[float]:
    """Percentile interval of the mean, resampling the values (questions) `n` times."""
    if len(values) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def two_level_ci(values: np.ndarray, n: int, ci: float, seed: int) -> list[float]:
    """Percentile interval of the mean of a (seeds x questions) array, resampling training seeds, then questions:
    an interval that holds across training noise as well as question sampling. One seed is `bootstrap_ci`."""
    values = np.atleast_2d(values)
    if values.shape[0] == 1:
        return bootstrap_ci(values[0], n, ci, seed)
    if values.shape[1] == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    s, q = values.shape
    seeds = rng.integers(0, s, size=(n, s))
    questions = rng.integers(0, q, size=(n, q))
    # each replicate: a resample of seeds, each scored on one resample of questions (the questions are shared by
    # every seed's adapter, so they are resampled once per replicate, keeping the pairing across seeds)
    means = np.array([values[seeds[i]][:, questions[i]].mean() for i in range(n)])
    lo, hi = np.quantile(means, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def wilson_interval(successes: int, n: int, ci: float) -> list[float]:
    """The Wilson score interval of a proportion, `successes` of `n`, at the `ci` level: unlike the normal
    approximation it stays within [0, 1] and holds for a few dozen judgements and rates near 0 or 1. Written out
    (five lines) because scipy, which has it, is no dependency of sling."""
    if n == 0:
        return [float("nan"), float("nan")]
    z, p = _z(ci), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def detectable_difference(interval: list[float], ci: float, power: float = POWER) -> float:
    """The smallest paired difference that questions giving this interval would detect with `power`."""
    half = (interval[1] - interval[0]) / 2
    z = _z(ci)
    return round(float((z + NormalDist().inv_cdf(power)) * half / z), 4)


def questions_needed(difference: float, sd: float, ci: float, power: float = POWER) -> int:
    """Paired questions needed to detect `difference` when per-question differences spread with `sd`."""
    return math.ceil(((_z(ci) + NormalDist().inv_cdf(power)) * sd / difference) ** 2)


def questions_for(difference: float, detectable: float, questions: int) -> int:
    """How many questions would bring today's detectable difference (from `questions`) down to `difference`:
    the interval narrows as one over the square root of the count."""
    if detectable <= difference:
        return questions
    return math.ceil(questions * (detectable / difference) ** 2)
