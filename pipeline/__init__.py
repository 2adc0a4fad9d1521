"""The DVC stages' entry points, one module per stage (`python -m pipeline.<stage>`, as dvc.yaml runs them): each
reads the config, calls the sling library and writes the stage's outputs. No stage imports another
(tests/test_deps.py checks it)."""
