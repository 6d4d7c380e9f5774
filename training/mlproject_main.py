"""The MLproject ``main`` entry point: simulate -> train -> report.

Each step runs as its own MLflow project run (experiments ``simulate`` and
``train``); steps are chained by URI: the simulate step writes its log
directory, whose ``file://`` URI is the ``logs`` parameter of the train step;
the report reads the train run's metrics and registered model back from the
tracking store and is logged to this (``main``) run as ``report.md``.
"""

from __future__ import annotations

import click

from nba.paths import PROJECT_ROOT, data_dir


def _int(x: float) -> str:
    if float(x) != int(x):
        raise click.BadParameter(f"{x} is not a whole number")
    return str(int(x))


@click.command()
@click.option("--hcps", type=float, default=2000)
@click.option("--days", type=float, default=30)
@click.option("--policy", default="campaign")
@click.option("--epsilon", type=float, default=0.1)
@click.option("--vw-args", default="--epsilon 0.05")
@click.option("--passes", type=float, default=1)
@click.option("--holdout-days", type=float, default=5)
@click.option("--seed", type=float, default=0)
def main(
    hcps: float,
    days: float,
    policy: str,
    epsilon: float,
    vw_args: str,
    passes: float,
    holdout_days: float,
    seed: float,
) -> None:
    """simulate -> train -> report, each step its own MLflow run."""
    import mlflow
    import mlflow.projects
    from mlflow import MlflowClient

    tracking_uri = mlflow.get_tracking_uri()
    with mlflow.start_run() as run:
        out = data_dir() / "mlproject" / run.info.run_id / "logs"
        out.parent.mkdir(parents=True, exist_ok=True)
        sim_params = {
            "hcps": _int(hcps),
            "days": _int(days),
            "policy": policy,
            "epsilon": str(epsilon),
            "seed": _int(seed),
            "out": str(out),
        }
        mlflow.log_params({f"simulate.{k}": v for k, v in sim_params.items()})
        sim = mlflow.projects.run(
            str(PROJECT_ROOT),
            entry_point="simulate",
            parameters=sim_params,
            env_manager="local",
            experiment_name="simulate",
            synchronous=True,
        )
        logs_uri = out.resolve().as_uri()
        train_params = {
            "logs": logs_uri,
            "reward_def": str(PROJECT_ROOT / "nba" / "data" / "reward.toml"),
            "vw_args": vw_args,
            "passes": _int(passes),
            "holdout_days": _int(holdout_days),
            "seed": _int(seed),
        }
        mlflow.log_params({f"train.{k}": v for k, v in train_params.items()})
        tr = mlflow.projects.run(
            str(PROJECT_ROOT),
            entry_point="train",
            parameters=train_params,
            env_manager="local",
            experiment_name="train",
            synchronous=True,
        )
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        train_run = client.get_run(tr.run_id)
        metrics = train_run.data.metrics
        versions = client.search_model_versions(f"run_id = '{tr.run_id}'")
        version = versions[0].version if versions else "(not registered)"
        lines = [
            "# nba main: simulate -> train",
            "",
            f"- simulate run `{sim.run_id}` wrote `{logs_uri}`",
            f"- train run `{tr.run_id}` registered `nba` version {version} as `challenger`",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())),
        ]
        report = "\n".join(lines) + "\n"
        mlflow.log_text(report, "report.md")
        mlflow.log_metrics({f"train.{k}": v for k, v in metrics.items()})
        click.echo(report)


if __name__ == "__main__":
    main()
