"""The MLflow run tree in a terminal: one line per pipeline run (the parent a `dvc repro` or `dvc exp run` makes), its
stage runs folded under it, as the MLflow UI lists them.

    python scripts/mlflow_runs.py                  # the `sling` experiment in mlflow.db (or MLFLOW_TRACKING_URI)
    python scripts/mlflow_runs.py --last 2         # the two newest pipeline runs only
    python scripts/mlflow_runs.py --metrics 'joint.*rescaled'   # and the parent metrics whose names match
    python scripts/mlflow_runs.py --url            # the MLflow UI's address that opens the runs to compare
"""
from __future__ import annotations

import argparse
import re



def tree(client, experiment: str = "sling", last: int | None = None, metrics: str | None = None) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment named {experiment!r} at {client.tracking_uri}: run the pipeline first")
    runs = client.search_runs([exp.experiment_id], max_results=50000, order_by=["attributes.start_time ASC"])
    children: dict[str, list] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
    parents = [r for r in runs if r.data.tags.get("sling.kind") == "pipeline"]
    parents = parents[-last:] if last else parents
    kind = exp.tags.get("mlflow.experimentKind", "-")
    lines = [f"experiment {experiment} ({kind}): {len(parents)} pipeline run(s)"]
    pattern = re.compile(metrics) if metrics else None
    for parent in parents:
        params = parent.data.params
        lines.append(f"{parent.info.run_name} [{parent.info.status}] params: "
                     + (", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "(the defaults)")
                     + f"; {len(parent.data.metrics)} metrics")
        if pattern:
            lines += [f"    {k} = {v:.4g}" for k, v in sorted(parent.data.metrics.items()) if pattern.search(k)]
        for child in children.get(parent.info.run_id, []):
            datasets = [i.dataset.name for i in child.inputs.dataset_inputs] if child.inputs else []
            lines.append(f"  └─ {child.data.tags.get('sling.stage', child.info.run_name)} [{child.info.status}] "
                         f"{len(child.data.params)} params, {len(child.data.metrics)} metrics"
                         + (f", datasets: {', '.join(datasets)}" if datasets else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import mlflow

    from sling.tracking.runs import tracking_uri

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", default="sling")
    ap.add_argument("--last", type=int, help="only the newest N pipeline runs")
    ap.add_argument("--metrics", metavar="REGEX", help="list the parent metrics whose names match")
    ap.add_argument("--url", action="store_true", help="save the landing view (pipeline runs, headline columns) and "
                    "print the address that opens it in the MLflow UI")
    ap.add_argument("--ui", default="http://127.0.0.1:5000", help="where `mlflow ui` serves (with --url)")
    a = ap.parse_args(argv)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    if a.url:
        from sling.tracking.runs import landing_url, landing_view

        exp = client.get_experiment_by_name(a.experiment)
        if exp is None:
            raise SystemExit(f"no MLflow experiment named {a.experiment!r} at {client.tracking_uri}: run the pipeline first")
        landing_view(client, exp.experiment_id)
        print(landing_url(exp.experiment_id, a.ui))
        return
    print(tree(client, a.experiment, a.last, a.metrics))


if __name__ == "__main__":
    main()
