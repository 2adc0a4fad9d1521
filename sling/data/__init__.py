"""Datasets: the benchmark, the synthetic Q&A, the general and domain training sets, prompt formats and importers of users' files."""
