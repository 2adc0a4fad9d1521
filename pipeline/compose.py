"""Write params.yaml from conf/ and overrides, as `dvc exp run -S` does, for a plain `dvc repro`.

    python -m pipeline.compose                       # the default offline profile
    python -m pipeline.compose experiment=smoke      # tiny settings
    python -m pipeline.compose model=phi-1_5 lora.r=8
"""
from omegaconf import OmegaConf

from sling.cli import run
from sling.config import PARAMS, compose, validate
from sling.io import atomic_write_text


def main(argv: list[str]) -> None:
    cfg = compose(argv)
    validate(cfg)
    atomic_write_text(PARAMS, OmegaConf.to_yaml(cfg, resolve=True))
    print(f"wrote {PARAMS.name} ({' '.join(argv) or 'defaults'})")


if __name__ == "__main__":
    run(main)
