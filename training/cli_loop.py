"""``nba loop``: the retraining loop, one cycle (``--once``) or one every N hours.

Thin: parses options, builds a :class:`training.loop.LoopConfig`, calls
:func:`training.loop.run_cycle` or :func:`training.loop.run_every`, prints.
Exit codes: 0 the cycle ran (whatever it decided), 1 bad input, 3 another loop
holds the lock.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from nba.domain import ValidationError
from nba_cli.options import as_of_option
from serving.cli_store import STORE, STORE_HELP


@click.command("loop")
@click.option(
    "--store",
    type=STORE,
    default=None,
    help=f"The service's event store ({STORE_HELP}): new events are exported each cycle.",
)
@click.option(
    "--logs",
    "logs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A Parquet log directory to use as is, instead of --store.",
)
@click.option(
    "--work",
    "work_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The loop's directory: state, lock, and the exported log (with --store).",
)
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option("--every", "every_hours", type=float, default=None, help="Run a cycle every HOURS.")
@click.option(
    "--max-cycles",
    type=click.IntRange(min=1),
    default=None,
    help="With --every: stop after this many cycles.",
)
@click.option(
    "--train",
    "train_mode",
    default="window:14",
    show_default=True,
    help="window:DAYS (from scratch on the last DAYS training days) or warm[:DAYS] "
    "(continue the champion's VW model on the days after its own training).",
)
@click.option(
    "--eval-days",
    type=int,
    default=7,
    show_default=True,
    help="Closed days the challenger does not train on; the gate evaluates on them.",
)
@click.option(
    "--reward-def",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reward definition TOML (default: the shipped engagement definition).",
)
@click.option("--vw-args", default=None, help='VW options, e.g. "--squarecb --gamma_scale 20".')
@click.option(
    "--estimator",
    type=click.Choice(["snips", "dr", "sndr", "ips"]),
    default="snips",
    show_default=True,
)
@click.option(
    "--interval",
    type=click.Choice(["bootstrap", "gaussian", "bernstein"]),
    default="bootstrap",
    show_default=True,
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--min-lift", type=float, default=0.0, show_default=True)
@click.option(
    "--psi-threshold",
    type=float,
    default=0.25,
    show_default=True,
    help="Refuse when a profile/request feature's PSI (training vs evaluation days) exceeds it.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@as_of_option
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: project store).")
def loop(
    store: Path | None,
    logs_dir: Path | None,
    work_dir: Path,
    once: bool,
    every_hours: float | None,
    max_cycles: int | None,
    train_mode: str,
    eval_days: int,
    reward_def: Path | None,
    vw_args: str | None,
    estimator: str,
    interval: str,
    alpha: float,
    min_lift: float,
    psi_threshold: float,
    seed: int,
    as_of: datetime | None,
    tracking_uri: str | None,
) -> None:
    """Retraining loop: export new events, train, gate, move the champion alias."""
    from nba.policies.vw import VWConfig
    from nba.reward import RewardDefinition
    from training.loop import LoopBusy, LoopConfig, TrainMode, run_cycle, run_every

    if once == (every_hours is not None):
        raise click.UsageError("give either --once or --every HOURS")
    if as_of is not None and every_hours is not None:
        raise click.UsageError("--as-of fixes the horizon of one cycle: use it with --once")
    try:
        cfg = LoopConfig(
            work_dir=work_dir,
            store=store,
            logs=logs_dir,
            train=TrainMode.parse(train_mode),
            eval_days=eval_days,
            reward_def=RewardDefinition.load(reward_def)
            if reward_def
            else RewardDefinition.default(),
            vw_config=VWConfig.from_vw_args(vw_args) if vw_args else None,
            seed=seed,
            estimator=estimator,
            interval=interval,
            alpha=alpha,
            min_lift=min_lift,
            psi_threshold=psi_threshold,
            tracking_uri=tracking_uri,
        )
        if once:
            try:
                res = run_cycle(cfg, as_of=as_of)
            except LoopBusy as exc:
                click.echo(f"Error: {exc}", err=True)
                raise SystemExit(3) from None
            click.echo(res.format())
        else:
            assert every_hours is not None
            run_every(cfg, every_hours, max_cycles=max_cycles, echo=click.echo)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
