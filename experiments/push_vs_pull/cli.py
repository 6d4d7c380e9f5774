"""``python -m experiments.push_vs_pull`` and ``nba experiment push-vs-pull``:
parse, call :func:`experiments.push_vs_pull.run`, print where the report went."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from nba.domain import ValidationError


def _ints(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(x.strip() for x in value.split(",") if x.strip())


def _date(ctx: click.Context, param: click.Parameter, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command("push-vs-pull", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--hcps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True)
@click.option(
    "--seeds", default="0,1,2,3,4", show_default=True, callback=_ints, help="Comma-separated."
)
@click.option(
    "--policies",
    default=None,
    callback=_names,
    help="Comma-separated world policies and vw[:CONFIG] specs "
    "[default: uniform,campaign,segment,vw:epsilon,vw:squarecb,vw:bag,oracle].",
)
@click.option(
    "--last-weeks",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Weeks at the end over which the reached level is measured.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs in parallel (processes); results do not depend on it.",
)
@click.option("--start", default="2026-01-05", show_default=True, callback=_date)
@click.option(
    "--visit-request-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Daily portal visit-request chance per HCP in every world (docs/simulator.md, "
    "'Visit requests'); policies named SPEC+triggers then run with reps who answer them first.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for report.md, learning_curve.png, weekly.csv, results.json.",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: project store].")
@click.option("--no-mlflow", is_flag=True, help="Do not log to MLflow.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def push_vs_pull(
    hcps: int,
    days: int,
    seeds: tuple[int, ...],
    policies: tuple[str, ...] | None,
    last_weeks: int,
    workers: int,
    start: date,
    visit_request_rate: float,
    out: Path,
    tracking_uri: str | None,
    no_mlflow: bool,
    quiet: bool,
) -> None:
    """Campaign, segment rules, uniform, VW configurations and the oracle on the
    same simulated populations; weekly engagement, scores, plot and report."""
    from experiments.push_vs_pull.experiment import DEFAULT_POLICIES, ExperimentConfig, run

    try:
        cfg = ExperimentConfig(
            hcps=hcps,
            days=days,
            seeds=seeds,
            policies=policies or DEFAULT_POLICIES,
            last_weeks=last_weeks,
            workers=workers,
            start=start,
            visit_request_rate=visit_request_rate,
        )
        res = run(cfg, out, log_mlflow=not no_mlflow, tracking_uri=tracking_uri, progress=not quiet)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    t = res.targets
    if t:

        def met(key: str) -> str:
            return "met" if t[key] else "not met"

        click.echo(
            f"best VW: {t['policy']}: {t['baseline_ratio_last']:.3f} ± "
            f"{t['baseline_ratio_last_sd']:.3f} x the best non-learning policy's reward "
            f"(last {last_weeks} weeks; target {t['baseline_ratio_target']:.2f}, "
            f"{met('baseline_ratio_met')}); score {100 * t['score_last']:.1f} ± "
            f"{100 * t['score_last_sd']:.1f} % (target {100 * t['score_target']:.0f} %, "
            f"{met('score_met')}), whole run {100 * t['score_all']:.1f} % (target "
            f"{100 * t['score_all_target']:.0f} %, {met('score_all_met')}); engagement "
            f"{t['engagement_ratio_last']:.3f} x campaign (target "
            f"{t['engagement_ratio_target']:.2f}, {met('engagement_ratio_met')})"
        )
    click.echo(f"report: {res.files['report']}")
    click.echo(f"plot: {res.files['plot']}")
    if res.mlflow_run_id:
        click.echo(f"MLflow run {res.mlflow_run_id} (experiment experiments/push_vs_pull)")
