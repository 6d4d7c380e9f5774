"""``nba train``: train a VW policy from a log directory and track it in MLflow.

Thin: parses options, calls :func:`training.train.train` and
:func:`training.mlflow_utils.log_training_run`, prints the summary.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from nba.domain import ValidationError
from nba_cli.options import as_of_option, engine_options, resolve_engine


@click.command("train")
@click.option(
    "--logs",
    "logs_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Event-log directory (decisions, outcomes, catalog snapshots).",
)
@click.option(
    "--reward-def",
    "reward_def",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reward definition TOML (default: the shipped engagement definition).",
)
@click.option("--vw-args", default=None, help='VW options, e.g. "--squarecb --gamma_scale 20".')
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Training config (TOML/JSON/YAML) with [vw] and [featurizer] tables.",
)
@click.option("--passes", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--since", default=None, help="First decision day (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last decision day, inclusive (YYYY-MM-DD).")
@as_of_option
@click.option(
    "--open-windows",
    type=click.Choice(["exclude", "delay-corrected"]),
    default="exclude",
    show_default=True,
    help="Decisions whose reward window is open at the horizon: leave them out, or keep "
    "them with E[final reward | channel, reward so far at their age] estimated from the "
    "closed decisions (docs/push_vs_pull.md, 'Learning as outcomes arrive').",
)
@click.option(
    "--holdout-days",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Hold out the last N days for an IPS/SNIPS estimate of the new policy.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--model-out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also save the policy directory here.",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the VW example file (train.vw.txt) and VW's files here; with --engine spark "
    "the executors write the example part files under it (on a cluster: a shared file system).",
)
@click.option("--no-register", is_flag=True, help="Log the run but do not register the model.")
@click.option("--no-mlflow", is_flag=True, help="Do not log to MLflow at all.")
@click.option("--experiment", default="train", show_default=True, help="MLflow experiment.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: project store).")
@engine_options
def train(
    logs_dir: Path,
    reward_def: Path | None,
    vw_args: str | None,
    config_file: Path | None,
    passes: int,
    since: str | None,
    until: str | None,
    as_of: datetime | None,
    open_windows: str,
    holdout_days: int,
    seed: int,
    model_out: Path | None,
    work_dir: Path | None,
    no_register: bool,
    no_mlflow: bool,
    experiment: str,
    tracking_uri: str | None,
    engine: str,
    spark_master: str | None,
) -> None:
    """Train a contextual-bandit policy from logged decisions with VW's native parser."""
    if vw_args and config_file:
        raise click.UsageError("give either --vw-args or --config, not both")
    sql_engine = resolve_engine(engine, spark_master)
    if not no_mlflow:
        from training.tracking import TrackingUnavailable, check_server

        try:  # before the training work and its imports (MLflow, pandas, scipy)
            check_server(tracking_uri)
        except TrackingUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    from nba.features import FeaturizerConfig
    from nba.policies.vw import VWConfig
    from nba.reward import RewardDefinition
    from training.train import load_train_config
    from training.train import train as run_train

    try:
        rd = RewardDefinition.load(reward_def) if reward_def else RewardDefinition.default()
        fz = FeaturizerConfig()
        vw = VWConfig()
        if config_file:
            vw, fz = load_train_config(config_file)
        elif vw_args:
            vw = VWConfig.from_vw_args(vw_args)
        result = run_train(
            logs_dir,
            rd,
            vw,
            fz,
            passes=passes,
            since=since,
            until=until,
            holdout_days=holdout_days,
            seed=seed,
            as_of=as_of,
            open_windows=open_windows,
            engine=sql_engine,
            work_dir=work_dir,
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.summary())
    if model_out is not None:
        result.policy.save(model_out)
        click.echo(f"policy saved to {model_out}")
    if not no_mlflow:
        from training.mlflow_utils import log_training_run

        logged = log_training_run(
            result,
            register=not no_register,
            experiment=experiment,
            tracking_uri=tracking_uri,
            extra_params={"logs_dir": str(logs_dir.resolve())},
        )
        click.echo(f"MLflow run {logged.run_id}; model {logged.model_uri}")
        if logged.version is not None:
            click.echo(f"registered nba version {logged.version} as 'challenger'")
