"""``python -m experiments.ope_accuracy``: run the OPE accuracy study."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from experiments.ope_accuracy.study import (
    ESTIMATOR_FACTORIES,
    GATE_ESTIMATORS,
    INTERVALS,
    TARGETS,
)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in out if x not in known]
    if bad:
        raise click.BadParameter(f"unknown {what} {bad[0]!r}; expected from {', '.join(known)}")
    return out


@click.command("ope_accuracy", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", type=int, default=20, show_default=True)
@click.option("--reps", type=int, default=200, show_default=True, help="Per (overlap, size).")
@click.option("--sizes", default="10000,100000", show_default=True)
@click.option("--hcps", type=int, default=3000, show_default=True, help="HCPs of each pool.")
@click.option("--days", type=int, default=28, show_default=True, help="Days of each pool.")
@click.option("--train-hcps", type=int, default=3000, show_default=True)
@click.option("--train-days", type=int, default=28, show_default=True)
@click.option("--estimators", default=",".join(ESTIMATOR_FACTORIES), show_default=True)
@click.option("--intervals", default=",".join(INTERVALS), show_default=True)
@click.option("--targets", default=",".join(TARGETS), show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--n-bootstrap", type=int, default=200, show_default=True)
@click.option(
    "--bootstrap-reps",
    default="0",
    show_default=True,
    help="Repetitions per configuration that also get the bootstrap, one number or one per "
    "size (0: all).",
)
@click.option("--bootstrap-estimators", default="ips,snips,dr,sndr", show_default=True)
@click.option("--folds", type=int, default=2, show_default=True)
@click.option("--seed", "base_seed", type=int, default=0, show_default=True)
@click.option(
    "--gate-reps",
    type=int,
    default=0,
    show_default=True,
    help="Repetitions per (overlap, gate size) of the promotion-gate measurement (0: off).",
)
@click.option("--gate-sizes", default="20000", show_default=True)
@click.option("--gate-estimators", default=",".join(GATE_ESTIMATORS), show_default=True)
@click.option("--gate-intervals", default="gaussian,bootstrap", show_default=True)
@click.option(
    "--gate-lift", type=float, default=0.05, show_default=True, help="True relative lift."
)
@click.option("--gate-min-lift", type=float, default=0.0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--no-mlflow", is_flag=True)
@click.option("--tracking-uri", default=None)
def main(
    seeds: int,
    reps: int,
    sizes: str,
    hcps: int,
    days: int,
    train_hcps: int,
    train_days: int,
    estimators: str,
    intervals: str,
    targets: str,
    alpha: float,
    n_bootstrap: int,
    bootstrap_reps: str,
    bootstrap_estimators: str,
    folds: int,
    base_seed: int,
    gate_reps: int,
    gate_sizes: str,
    gate_estimators: str,
    gate_intervals: str,
    gate_lift: float,
    gate_min_lift: float,
    out_dir: Path,
    no_mlflow: bool,
    tracking_uri: str | None,
) -> None:
    """Bias, RMSE, median relative error and interval coverage of every OPE estimator
    against the simulator's ground truth, for good and poor overlap."""
    from experiments.ope_accuracy import StudyConfig, run

    try:
        config = StudyConfig(
            seeds=seeds,
            reps=reps,
            sizes=_ints(sizes),
            hcps=hcps,
            days=days,
            train_hcps=train_hcps,
            train_days=train_days,
            estimators=_names(estimators, list(ESTIMATOR_FACTORIES), "estimator"),
            intervals=_names(intervals, INTERVALS, "interval"),
            targets=_names(targets, TARGETS, "target"),
            alpha=alpha,
            n_bootstrap=n_bootstrap,
            bootstrap_reps=_ints(bootstrap_reps),
            bootstrap_estimators=_names(
                bootstrap_estimators, list(ESTIMATOR_FACTORIES), "estimator"
            ),
            n_folds=folds,
            base_seed=base_seed,
            gate_reps=gate_reps,
            gate_sizes=_ints(gate_sizes),
            gate_estimators=_names(gate_estimators, GATE_ESTIMATORS, "gate estimator"),
            gate_intervals=_names(gate_intervals, INTERVALS, "gate interval"),
            gate_lift=gate_lift,
            gate_min_lift=gate_min_lift,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    res = run(
        config,
        out_dir,
        mlflow=not no_mlflow,
        tracking_uri=tracking_uri,
        progress=sys.stderr.isatty(),
    )
    for c in res.checks:
        status = "not measured" if c.met is None else ("MET" if c.met else "NOT MET")
        click.echo(f"[{status}] {c.name}: {c.detail}")
    for line in res.gate_lines:
        click.echo(f"gate: {line}")
    click.echo(f"{len(res.raw)} estimates in {res.seconds:.0f} s; report {res.files['report']}")
    if res.run_id:
        click.echo(f"MLflow run {res.run_id} (experiment 'experiments/ope_accuracy')")


if __name__ == "__main__":
    main()
