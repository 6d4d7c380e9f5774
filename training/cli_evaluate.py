"""``nba evaluate`` and ``nba promote``: thin wrappers over
:mod:`training.evaluate` and :mod:`training.promote`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nba.domain import ValidationError
from nba_cli.options import as_of_option, engine_options, resolve_engine

if TYPE_CHECKING:
    from nba.reward import RewardDefinition

_ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch-dr", "clipped-dr")
_INTERVALS = ("bootstrap", "gaussian", "bernstein")


def _check_tracking(tracking_uri: str | None) -> None:
    """Stop with a clear message before any work when the tracking server is down
    (before the work's imports too: MLflow, pandas, scipy)."""
    from training.tracking import TrackingUnavailable, check_server

    try:
        check_server(tracking_uri)
    except TrackingUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _reward_def(path: Path | None) -> RewardDefinition:
    from nba.reward import RewardDefinition

    return RewardDefinition.load(path) if path else RewardDefinition.default()


_logs_option = click.option(
    "--logs",
    "logs_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Event-log directory (ours, or one written by `nba logs import`).",
)
_reward_option = click.option(
    "--reward-def",
    "reward_def",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reward definition TOML (default: the shipped engagement definition).",
)

_ess_option = click.option(
    "--min-ess-share",
    type=float,
    default=0.1,
    show_default=True,
    help="Warn when a policy's effective sample size is below this share of the decisions.",
)


@click.command("evaluate")
@_logs_option
@_reward_option
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="Target policy: models:/nba@challenger, models:/nba/<version>, a model path, "
    "uniform, campaign, segment, or table:PATH (Parquet/CSV of event_id, action_id, "
    "probability). Repeat for several.",
)
@click.option(
    "--policies",
    "policy_list",
    default=None,
    help="Comma-separated target policies (an alternative to repeating --policy, e.g. for "
    "the MLproject entry point).",
)
@click.option(
    "--estimator",
    "estimators",
    multiple=True,
    type=click.Choice(_ESTIMATORS),
    help="Repeat for several (default: ips, snips, dm, dr, sndr, switch-dr).",
)
@click.option(
    "--estimators",
    "estimator_list",
    default=None,
    help="Comma-separated estimators (an alternative to repeating --estimator).",
)
@click.option(
    "--interval",
    "intervals",
    multiple=True,
    type=click.Choice(_INTERVALS),
    help="Interval kind; repeat for several (default: bootstrap).",
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--since", default=None, help="First decision day (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last decision day, inclusive (YYYY-MM-DD).")
@as_of_option
@click.option("--folds", type=int, default=5, show_default=True, help="Reward-model folds.")
@click.option("--fold-by", type=click.Choice(("hcp", "time")), default="hcp", show_default=True)
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_ess_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write evaluation.csv/.md/.json and estimates.png here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON only.")
@click.option("--no-mlflow", is_flag=True, help="Do not record an MLflow run.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: project store).")
@engine_options
def evaluate(
    logs_dir: Path,
    reward_def: Path | None,
    policies: tuple[str, ...],
    policy_list: str | None,
    estimators: tuple[str, ...],
    estimator_list: str | None,
    intervals: tuple[str, ...],
    alpha: float,
    since: str | None,
    until: str | None,
    as_of: datetime | None,
    folds: int,
    fold_by: str,
    n_bootstrap: int,
    seed: int,
    min_ess_share: float,
    out_dir: Path | None,
    as_json: bool,
    no_mlflow: bool,
    tracking_uri: str | None,
    engine: str,
    spark_master: str | None,
) -> None:
    """Off-policy estimates of target policies on logged decisions, with intervals."""
    import tempfile

    targets = [*policies, *(p.strip() for p in (policy_list or "").split(",") if p.strip())]
    if not targets:
        raise click.UsageError("give at least one target policy with --policy or --policies")
    sql_engine = resolve_engine(engine, spark_master)
    names = [*estimators, *(e.strip() for e in (estimator_list or "").split(",") if e.strip())]
    if not no_mlflow or any(t.startswith(("models:/", "runs:/")) for t in targets):
        _check_tracking(tracking_uri)
    from training.evaluate import DEFAULT_ESTIMATORS, log_evaluation
    from training.evaluate import evaluate as run_evaluate

    try:
        ev = run_evaluate(
            logs_dir,
            _reward_def(reward_def),
            targets,
            estimators=names or list(DEFAULT_ESTIMATORS),
            intervals=list(intervals) or ["bootstrap"],
            alpha=alpha,
            since=since,
            until=until,
            n_folds=folds,
            fold_by=fold_by,
            seed=seed,
            n_bootstrap=n_bootstrap,
            tracking_uri=tracking_uri,
            progress=not as_json and sys.stderr.isatty(),
            min_ess_share=min_ess_share,
            as_of=as_of,
            engine=sql_engine,
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:  # the horizon is always printed: on stderr when stdout is JSON
        for line in ev.notes:
            click.echo(f"note: {line}", err=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = ev.write(out_dir if out_dir is not None else Path(tmp))
        run_id = None
        if not no_mlflow:
            run_id = log_evaluation(ev, files, tracking_uri=tracking_uri)
    if as_json:
        blob = ev.to_dict()
        blob["mlflow_run_id"] = run_id
        blob["files"] = None if out_dir is None else {k: str(v) for k, v in files.items()}
        click.echo(json.dumps(blob))
        return
    click.echo(ev.to_markdown(), nl=False)
    if out_dir is not None:
        click.echo(f"\nwrote {', '.join(str(p) for p in files.values())}")
    if run_id is not None:
        click.echo(f"MLflow run {run_id} (experiment 'evaluate')")


@click.command("promote")
@_logs_option
@_reward_option
@click.option(
    "--estimator",
    type=click.Choice(("snips", "dr", "sndr", "ips")),
    default="snips",
    show_default=True,
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--interval", type=click.Choice(_INTERVALS), default="bootstrap", show_default=True)
@click.option("--since", default=None, help="First decision day (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last decision day, inclusive (YYYY-MM-DD).")
@as_of_option
@click.option("--folds", type=int, default=5, show_default=True, help="Reward-model folds (dr).")
@click.option("--fold-by", type=click.Choice(("hcp", "time")), default="hcp", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--min-lift",
    type=float,
    default=0.0,
    show_default=True,
    help="Promote only when the lower bound of the paired difference (challenger - champion, "
    "reward units) exceeds this.",
)
@_ess_option
@click.option("--dry-run", is_flag=True, help="Decide and record, but do not move the alias.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: project store).")
def promote(
    logs_dir: Path,
    reward_def: Path | None,
    estimator: str,
    alpha: float,
    interval: str,
    since: str | None,
    until: str | None,
    as_of: datetime | None,
    folds: int,
    fold_by: str,
    seed: int,
    min_lift: float,
    min_ess_share: float,
    dry_run: bool,
    as_json: bool,
    tracking_uri: str | None,
) -> None:
    """Move the champion alias to the challenger only if the paired difference's lower bound
    (challenger - champion on the same decisions) exceeds --min-lift.

    Exits with status 1 and the reason when the gate refuses.
    """
    _check_tracking(tracking_uri)
    from training.promote import promote as run_promote

    try:
        d = run_promote(
            logs_dir,
            _reward_def(reward_def),
            estimator=estimator,
            alpha=alpha,
            interval=interval,
            since=since,
            until=until,
            n_folds=folds,
            fold_by=fold_by,
            seed=seed,
            min_lift=min_lift,
            min_ess_share=min_ess_share,
            tracking_uri=tracking_uri,
            dry_run=dry_run,
            progress=not as_json and sys.stderr.isatty(),
            as_of=as_of,
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in d.notes:
        click.echo(f"note: {line}", err=as_json)
    if as_json:
        click.echo(json.dumps(d.to_dict(), default=str))
    else:
        for who, row in (("challenger", d.challenger), ("champion", d.champion)):
            if row is not None:
                click.echo(
                    f"{who} {row['version']}: {estimator} {row['estimate']:.5f} "
                    f"[{row['low']:.5f}, {row['high']:.5f}] ({interval}, alpha {alpha}); "
                    f"ESS {row['ess']:.0f}, max weight {row['max_weight']:.2f}"
                    + (f"; warnings: {row['warnings']}" if row["warnings"] else "")
                )
        if d.logged_value is not None:
            click.echo(f"logging policy observed value {d.logged_value:.5f}")
        if d.difference is not None:
            click.echo(
                f"paired difference challenger - {d.baseline}: {d.difference:.5f} "
                f"[{d.difference_low:.5f}, {d.difference_high:.5f}] ({interval}, alpha {alpha}); "
                f"minimum lift {d.min_lift:.5f}"
            )
        for w in d.warnings:
            who = f"{w['policy']}: " if w.get("policy") else ""
            click.echo(f"warning: {who}{w['message']}")
        click.echo(f"MLflow run {d.run_id} (experiment 'promote')")
    if d.promoted:
        msg = f"promoted: champion -> version {d.challenger_version}"
        click.echo(
            msg + ("" if not dry_run else " (dry run: alias not moved)") + f"; {d.reason}",
            err=as_json,
        )
        return
    raise click.ClickException(f"refused: {d.reason}")
