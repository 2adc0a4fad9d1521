"""Tracking: MLflow runs, the model registry and the registered model's code, and where a run ran."""
