"""sling's config schema for compositions this project does not start itself: `dvc exp run -S key=value`.

DVC composes conf/ into params.yaml in its own process (dvc.utils.hydra.compose_and_dump). Before composing it
scans Hydra's plugins with the repository root on sys.path, and the scan imports every module of the
`hydra_plugins` namespace package, this one too: importing it stores sling.schema's dataclasses in Hydra's
ConfigStore, which conf/config.yaml and the presets name in their defaults lists (`sling_schema`, `schema/...`).
No plugin class here; `hydra_plugins/` has no __init__.py, so it stays a namespace package that Hydra's own
plugins share.
"""
from sling.schema import register

register()
