"""``nba evaluate``'s library: off-policy estimates of several target policies on
one log, with intervals, diagnostics, the ground truth when the log is
simulated, files and an MLflow run.

Pipeline: :func:`nba.logs.join.load_joined` (rewards under a named reward
definition) -> :class:`nba.ope.logs.LoggedLog` (ragged, validated) -> each
target's ``action_dist`` (:func:`training.targets.resolve_target`) -> a
cross-fitted VW reward model when a DM/DR-family estimator is asked for
(:func:`training.reward_model.cross_fit_rewards`) -> :func:`nba.ope.evaluate_policy`
per target and interval method -> :class:`Evaluation` (a table with one row per
policy x estimator x interval).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from tqdm import tqdm

from nba.catalog import Catalog
from nba.domain import parse_day
from nba.features import Featurizer
from nba.logs.engine import SqlEngine, get_engine
from nba.logs.join import JoinResult, load_joined, open_windows_hint, read_manifest
from nba.ope import (
    INTERVAL_METHODS,
    LoggedData,
    OPEInputError,
    diagnose,
    evaluate_policy,
    make_estimator,
)
from nba.ope.checks import (
    DEFAULT_MIN_ESS_SHARE,
    OPEWarning,
    check_min_ess_share,
    disagreement_checks,
    ess_check,
    reward_model_check,
    warning_tags,
)
from nba.ope.estimators import BaseOffPolicyEstimator, IntervalMethod
from nba.ope.logs import (
    GroundTruth,
    LoggedLog,
    catalog_for,
    ground_truth_for,
    ope_statements,
    reward_bounds,
    true_value,
)
from nba.ope.slates import SlateLog, attention_truth, evaluate_slates, has_slates
from nba.ope.targets import parse_target
from nba.reward import RewardDefinition
from training.reward_model import FOLD_BY, RewardModelResult, cross_fit_rewards
from training.targets import resolve_target

EVALUATE_EXPERIMENT = "evaluate"
#: command-line estimator names -> nba.ope estimator names
ESTIMATOR_NAMES: dict[str, str] = {
    "ips": "ips",
    "snips": "snips",
    "dm": "dm",
    "dr": "dr",
    "sndr": "sndr",
    "switch-dr": "switch_dr",
    "clipped-dr": "clipped_dr",
}
DEFAULT_ESTIMATORS: tuple[str, ...] = ("ips", "snips", "dm", "dr", "sndr", "switch-dr")

#: columns of the result table, in order
COLUMNS: tuple[str, ...] = (
    "policy",
    "version",
    "estimator",
    "interval",
    "estimate",
    "low",
    "high",
    "truth",
    "alpha",
    "n",
    "ess",
    "max_weight",
    "mean_weight",
    "unsupported_share",
    "unlogged_share",
    "default_reward_share",
    "unreliable",
    "warnings",
)


#: columns of the slate table (logs with lists only)
SLATE_COLUMNS: tuple[str, ...] = (
    "policy",
    "estimate",
    "value",
    "low",
    "high",
    "truth",
    "alpha",
    "n",
)


class EvaluationError(OPEInputError):
    """``nba evaluate`` / ``nba promote`` could not run; the message says why."""


def make_estimators(names: Sequence[str]) -> list[BaseOffPolicyEstimator]:
    """Estimators from command-line names (``ips``, ``snips``, ``dm``, ``dr``,
    ``sndr``, ``switch-dr``, ``clipped-dr``)."""
    out = []
    for name in names:
        key = ESTIMATOR_NAMES.get(name, name.replace("-", "_"))
        if key not in ESTIMATOR_NAMES.values():
            raise EvaluationError(
                f"estimator {name!r}: unknown; expected one of {', '.join(ESTIMATOR_NAMES)}"
            )
        out.append(make_estimator(key))
    if not out:
        raise EvaluationError("estimator: give at least one")
    return out


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found.

    Attributes
    ----------
    rows : list of dict
        One per policy x estimator x interval, keys :data:`COLUMNS`.
    logs_dir : str
    reward_definition : str
    n : int
        Decisions evaluated.
    data_range : (str, str)
        First and last decision time.
    logged_value : float
        The logging policy's observed mean reward on these decisions.
    logged_truth : float or None
        The logging policy's true value on these contexts (simulated logs).
    reward_model : RewardModelResult or None
    params : dict
        What was asked for (policies, estimators, intervals, alpha, seed, ...).
    notes : tuple of str
        Things the reader must know (e.g. ground truth under another reward
        definition, so no truth column).
    join_counts : dict
    warnings : tuple of OPEWarning
        Reward model no better than a constant, estimators disagreeing beyond
        their intervals, low effective sample size (:mod:`nba.ope.checks`).
    slate_rows : list of dict
        Logs with lists only (else empty): per policy, the per-slot and
        whole-list estimates of :func:`nba.ope.slates.evaluate_slates`, keys
        :data:`SLATE_COLUMNS` (docs/evaluation.md, "Slates").
    data : dict of str to LoggedData
        Per policy label, the logged decisions with that policy's
        probabilities (and the reward model's predictions), for paired
        comparisons such as the promotion gate's; not serialised.
    """

    rows: list[dict[str, Any]]
    logs_dir: str
    reward_definition: str
    n: int
    data_range: tuple[str, str]
    logged_value: float
    logged_truth: float | None
    reward_model: RewardModelResult | None
    params: dict[str, Any]
    notes: tuple[str, ...] = ()
    join_counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[OPEWarning, ...] = ()
    data: dict[str, LoggedData] = field(default_factory=dict, repr=False, compare=False)
    slate_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_truth(self) -> bool:
        return any(r["truth"] is not None for r in self.rows)

    def frame(self) -> pd.DataFrame:
        """The result table as a DataFrame (columns :data:`COLUMNS`)."""
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def row(self, policy: str, estimator: str, interval: str | None = None) -> dict[str, Any]:
        """The row of one policy and estimator (and interval, if several)."""
        key = ESTIMATOR_NAMES.get(estimator, estimator)
        for r in self.rows:
            if r["policy"] == policy and r["estimator"] == key:
                if interval is None or r["interval"] == interval:
                    return r
        raise KeyError(f"no row for policy {policy!r}, estimator {estimator!r}")

    def summary_lines(self) -> list[str]:
        lo, hi = self.data_range
        out = [
            f"logs {self.logs_dir}: {self.n} decisions from {lo} to {hi}",
            f"reward definition {self.reward_definition}",
            f"logging policy observed mean reward {self.logged_value:.5f}"
            + (
                f" (true value on these contexts {self.logged_truth:.5f})"
                if self.logged_truth is not None
                else ""
            ),
        ]
        rm = self.reward_model
        if rm is not None:
            out.append(
                f"reward model: VW regression, {rm.n_folds} folds by {rm.fold_by}; held-out MSE "
                f"{rm.mean_heldout_mse:.6f} (constant predictor {rm.mean_constant_mse:.6f})"
            )
        out.extend(f"note: {n}" for n in self.notes)
        out.extend(w.line() for w in self.warnings)
        return out

    def to_markdown(self) -> str:
        """The summary and the table as GitHub markdown."""
        any_unreliable = any(r["unreliable"] for r in self.rows)
        cols = [
            c
            for c in COLUMNS
            if c != "warnings"
            and (c != "truth" or self.has_truth)
            and (c != "unreliable" or any_unreliable)
        ]
        lines = [f"- {s}" for s in self.summary_lines()]
        lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
        if self.slate_rows:
            s_cols = [c for c in SLATE_COLUMNS if c != "truth" or self.has_truth]
            lines += ["", 'Slates (per slot and whole list; docs/evaluation.md, "Slates"):', ""]
            lines += ["| " + " | ".join(s_cols) + " |", "|" + "---|" * len(s_cols)]
            for r in self.slate_rows:
                lines.append("| " + " | ".join(_fmt(r[c]) for c in s_cols) + " |")
        warns = [(r["policy"], r["warnings"]) for r in self.rows if r["warnings"]]
        seen = set()
        if warns:
            lines += ["", "Warnings:", ""]
            for pol, w in warns:
                if (pol, w) not in seen:
                    seen.add((pol, w))
                    lines.append(f"- {pol}: {w}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and inf become None); ``slates`` only for logs with lists."""
        rm = self.reward_model
        extra = {"slates": self.slate_rows} if self.slate_rows else {}
        return _jsonable(
            {
                **extra,
                "logs": self.logs_dir,
                "reward_definition": self.reward_definition,
                "n": self.n,
                "data_range": list(self.data_range),
                "logged_value": self.logged_value,
                "logged_truth": self.logged_truth,
                "reward_model": None
                if rm is None
                else {
                    "kind": "vw_regression",
                    "n_folds": rm.n_folds,
                    "fold_by": rm.fold_by,
                    "heldout_mse": rm.mean_heldout_mse,
                    "constant_mse": rm.mean_constant_mse,
                    "heldout_mse_per_fold": list(rm.heldout_mse),
                },
                "params": self.params,
                "notes": list(self.notes),
                "join_counts": self.join_counts,
                "warnings": [w.to_dict() for w in self.warnings],
                "rows": self.rows,
            }
        )

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``evaluation.csv``, ``evaluation.md``, ``evaluation.json`` and
        ``estimates.png`` to ``out_dir``; returns the paths by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "csv": out / "evaluation.csv",
            "markdown": out / "evaluation.md",
            "json": out / "evaluation.json",
            "plot": out / "estimates.png",
        }
        self.frame().to_csv(paths["csv"], index=False)
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        plot_estimates(self, paths["plot"])
        return paths


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.5f}" if abs(v) < 1e4 else f"{v:.1f}"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def plot_estimates(evaluation: Evaluation, path: str | Path) -> Path:
    """PNG of every estimate with its interval, the truth (simulated logs) and
    the logging policy's observed value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = evaluation.rows
    labels = [f"{r['policy']}\n{r['estimator']} ({r['interval']})" for r in rows]
    est = np.array([r["estimate"] for r in rows], dtype=float)
    lo = np.array([r["low"] for r in rows], dtype=float)
    hi = np.array([r["high"] for r in rows], dtype=float)
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, pol in enumerate(policies):
        sel = np.array([r["policy"] == pol for r in rows])
        err = np.vstack([np.maximum(est - lo, 0), np.maximum(hi - est, 0)])[:, sel]
        ax.errorbar(
            est[sel],
            y[sel],
            xerr=err,
            fmt="o",
            capsize=3,
            color=colours[k % len(colours)],
            label=pol,
        )
    truth = np.array([np.nan if r["truth"] is None else r["truth"] for r in rows], float)
    if np.isfinite(truth).any():
        ax.scatter(truth, y, marker="x", color="black", zorder=3, label="truth")
    ax.axvline(evaluation.logged_value, color="grey", ls="--", lw=1, label="logging (observed)")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    alpha = rows[0]["alpha"] if rows else 0.05
    ax.set_xlabel(f"estimated value (mean reward per decision), {1 - alpha:.0%} intervals")
    ax.set_title(f"{evaluation.n} decisions, {evaluation.reward_definition}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def load_log(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    since: date | str | None = None,
    until: date | str | None = None,
    as_of: date | datetime | str | None = None,
    engine: str | SqlEngine | None = None,
) -> tuple[LoggedLog, JoinResult]:
    """Join and validate a log directory; returns the ragged log and the join
    (its counts and horizon; the table is the log's). ``engine`` runs the join's
    SQL (:func:`nba.logs.engine.get_engine`: DuckDB by default, or Spark)."""
    root = Path(logs_dir)
    if not root.is_dir():
        raise EvaluationError(f"--logs {root}: no such directory")
    if not (root / "decisions").is_dir():
        raise EvaluationError(f"--logs {root}: not a log directory (no 'decisions' table)")
    lo, hi = parse_day(since, "since", EvaluationError), parse_day(until, "until", EvaluationError)
    # the OPE arrays and their checks are SQL too, run by the engine with the join
    joined = load_joined(
        root, reward_def, since=lo, until=hi, as_of=as_of, engine=engine, extra_sql=ope_statements()
    )
    if joined.table.num_rows == 0:
        raise EvaluationError(
            f"--logs {root}: no activated decisions in the selected range"
            + open_windows_hint(joined.counts.open_window_decisions, joined.as_of)
        )
    arrays, checks = joined.extra_results
    log = LoggedLog.from_sql_result(
        joined.table, arrays, checks, reward_range=reward_bounds(reward_def)
    )
    return log, joined


def _catalog(logs_dir: Path, log: LoggedLog) -> Catalog:
    try:
        return catalog_for(logs_dir, log.table)
    except OPEInputError:
        contexts = log.table.column("context").to_pylist()
        if all(c.lstrip().startswith('{"dsjson"') for c in contexts):
            return Catalog.default()  # imported DSJSON: features travel with the context
        raise


def evaluate(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    policies: Sequence[str],
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    intervals: Sequence[str] = ("bootstrap",),
    alpha: float = 0.05,
    since: date | str | None = None,
    until: date | str | None = None,
    n_folds: int = 5,
    fold_by: str = "hcp",
    seed: int = 0,
    n_bootstrap: int = 1000,
    tracking_uri: str | None = None,
    progress: bool = False,
    min_ess_share: float = DEFAULT_MIN_ESS_SHARE,
    as_of: date | datetime | str | None = None,
    engine: str | SqlEngine | None = None,
) -> Evaluation:
    """Evaluate target policies on a log directory (see the module docstring).

    Parameters
    ----------
    logs_dir : path
        Our Parquet log (also one written by ``nba logs import``).
    reward_def : RewardDefinition
    policies : sequence of str
        Specs accepted by :func:`nba.ope.targets.parse_target`.
    estimators : sequence of str
        Keys of :data:`ESTIMATOR_NAMES`.
    intervals : sequence of {"bootstrap", "gaussian", "bernstein"}
    alpha : float
    since, until : date or YYYY-MM-DD, optional
    n_folds : int
        Cross-fitting folds of the reward model.
    fold_by : {"hcp", "time"}
    seed : int
        Folds, VW and the bootstrap.
    n_bootstrap : int
    tracking_uri : str, optional
        Where ``models:/`` URIs are resolved.
    progress : bool
        Progress bars on stderr.
    min_ess_share : float
        Warn when a policy's effective sample size is below this share of
        the decisions (in [0, 1]).
    as_of : date, aware datetime or str, optional
        The outcome horizon (default: :func:`nba.logs.join.default_as_of`);
        decisions whose reward window is open then are left out, and the
        first note says so.
    engine : str or SqlEngine, optional
        Where the reward join's SQL runs: ``"duckdb"`` (default) or ``"spark"``
        (:func:`nba.logs.engine.get_engine`); the same rewards either way.

    Returns
    -------
    Evaluation
    """
    if not policies:
        raise EvaluationError("--policy: give at least one target policy")
    engine = get_engine(engine)  # a bad engine or a missing Spark fails before any work
    specs = [parse_target(p) for p in policies]  # fail fast on unknown names
    ests = make_estimators(estimators)
    for m in intervals:
        if m not in INTERVAL_METHODS:
            raise EvaluationError(
                f"interval {m!r}: unknown; expected one of {', '.join(INTERVAL_METHODS)}"
            )
    if not (isinstance(alpha, float | int) and 0 < float(alpha) < 1):
        raise EvaluationError(f"alpha: must be in (0, 1), got {alpha!r}")
    if fold_by not in FOLD_BY:
        raise EvaluationError(f"fold_by: expected one of {', '.join(FOLD_BY)}, got {fold_by!r}")
    min_ess_share = check_min_ess_share(min_ess_share)
    root = Path(logs_dir)
    log, joined = load_log(root, reward_def, since, until, as_of, engine=engine)
    counts = joined.counts.as_dict()
    catalog = _catalog(root, log)
    notes: list[str] = joined.horizon_lines()
    truth = ground_truth_for(root, log)
    if truth is not None and truth.reward_definition != reward_def.id:
        notes.append(
            f"ground truth was computed for {truth.reward_definition}, not {reward_def.id}; "
            "no truth column"
        )
        truth = None
    targets = [
        resolve_target(spec, log, catalog=catalog, tracking_uri=tracking_uri)
        for spec in tqdm(
            specs, desc="target policies", unit="policy", file=sys.stderr, disable=not progress
        )
    ]
    rm = None
    if any(e.needs_reward_model for e in ests):
        rm = cross_fit_rewards(
            log,
            Featurizer(catalog),
            n_folds=n_folds,
            fold_by=fold_by,
            seed=seed,
            progress=progress,
        )
    warns: list[OPEWarning] = []
    rm_warning = None
    if rm is not None:
        rm_warning = reward_model_check(
            rm.mean_heldout_mse, rm.mean_constant_mse, [e.name for e in ests]
        )
        if rm_warning is not None:
            warns.append(rm_warning)
    unreliable = set() if rm_warning is None else set(rm_warning.estimators)
    rows: list[dict[str, Any]] = []
    per_policy: dict[str, LoggedData] = {}
    for spec, target in zip(specs, targets, strict=True):
        data = log.data(target.action_dist, None if rm is None else rm.estimated_rewards)
        per_policy[spec.label] = data
        tv = (
            None
            if truth is None
            else true_value(truth.expected_rewards, data.action_dist, log.offsets)
        )
        diag = diagnose(data)
        ess_warning = ess_check(spec.label, diag.ess, diag.n, min_ess_share)
        if ess_warning is not None:
            warns.append(ess_warning)
        for method in intervals:
            results = evaluate_policy(
                data,
                ests,
                method=cast(IntervalMethod, method),
                alpha=float(alpha),
                n_bootstrap=n_bootstrap,
                seed=seed,
            )
            warns.extend(
                disagreement_checks(
                    spec.label,
                    method,
                    [
                        (r.estimator, r.interval.estimate, r.interval.low, r.interval.high)
                        for r in results
                    ],
                )
            )
            for res in results:
                row = res.as_row()
                rows.append(
                    {
                        "policy": spec.label,
                        "version": target.version,
                        "estimator": res.estimator,
                        "interval": method,
                        "estimate": row["estimate"],
                        "low": row["low"],
                        "high": row["high"],
                        "truth": tv,
                        "alpha": float(alpha),
                        "n": row["n"],
                        "ess": row["ess"],
                        "max_weight": row["max_weight"],
                        "mean_weight": row["mean_weight"],
                        "unsupported_share": row["unsupported_share"],
                        "unlogged_share": row["unlogged_share"],
                        "default_reward_share": row["default_reward_share"],
                        "unreliable": res.estimator in unreliable,
                        "warnings": "; ".join(x for x in (row["warnings"], row["notes"]) if x),
                    }
                )
    slate_rows = (
        _slate_rows(root, log, specs, targets, truth, reward_def, float(alpha))
        if has_slates(log.table)
        else []
    )
    logged_truth = (
        None if truth is None else true_value(truth.expected_rewards, log.pscore_all, log.offsets)
    )
    params = {
        "logs_dir": str(root.resolve()),
        "policies": ",".join(s.label for s in specs),
        "estimators": ",".join(estimators),
        "intervals": ",".join(intervals),
        "alpha": float(alpha),
        "reward_definition": reward_def.id,
        "since": None if since is None else str(since),
        "until": None if until is None else str(until),
        "n_folds": n_folds,
        "fold_by": fold_by,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "min_ess_share": min_ess_share,
        "as_of": None if joined.as_of is None else joined.as_of.isoformat(),
    }
    lo, hi = log.data_range()
    params["data_since"], params["data_until"] = lo, hi
    return Evaluation(
        rows=rows,
        logs_dir=str(root),
        reward_definition=reward_def.id,
        n=log.n_decisions,
        data_range=(lo, hi),
        logged_value=log.observed_value,
        logged_truth=logged_truth,
        reward_model=rm,
        params=params,
        notes=tuple(notes),
        join_counts=counts,
        warnings=tuple(warns),
        data=per_policy,
        slate_rows=slate_rows,
    )


def _slate_rows(
    root: Path,
    log: LoggedLog,
    specs: Sequence[Any],
    targets: Sequence[Any],
    truth: GroundTruth | None,
    reward_def: RewardDefinition,
    alpha: float,
) -> list[dict[str, Any]]:
    """Per-slot and whole-list estimates of each target (logs with lists). The
    truth column needs the simulator's attention model (manifest ``slates``)."""
    slog = SlateLog.from_joined(log.table)
    splits = log.offsets[1:-1]
    attention = read_manifest(root).get("slates", {}).get("slot_attention")
    er = None if truth is None or attention is None else np.split(truth.expected_rewards, splits)
    rows: list[dict[str, Any]] = []
    for spec, target in zip(specs, targets, strict=True):
        vectors = np.split(np.asarray(target.action_dist, dtype=np.float64), splits)
        tv = (
            None
            if er is None
            else attention_truth(slog, vectors, er, float(attention), reward_def.default_reward)
        )
        for est in evaluate_slates(slog, vectors, alpha=alpha):
            slot = est.name.split(":")[0]
            t = None
            if tv is not None:
                t = float(tv.sum()) if slot == "list" else float(tv[int(slot[4:]) - 1])
            rows.append(
                {
                    "policy": spec.label,
                    "estimate": est.name,
                    "value": est.value,
                    "low": est.low,
                    "high": est.high,
                    "truth": t,
                    "alpha": alpha,
                    "n": est.n,
                }
            )
    return rows


def _metric_key(*parts: str) -> str:
    s = "_".join(parts)
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in s)[:250]


def log_evaluation(
    evaluation: Evaluation,
    files: dict[str, Path],
    tracking_uri: str | None = None,
    experiment: str = EVALUATE_EXPERIMENT,
) -> str:
    """Record an evaluation as an MLflow run (params, metrics, table, plot); returns
    the run id. Inside ``mlflow run`` it records into the project's run."""
    import mlflow

    from training import mlflow_utils

    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow_utils.configure(tracking_uri)
        ctx = mlflow.start_run()
    else:
        ctx = mlflow.start_run(experiment_id=mlflow_utils.experiment_id(experiment, tracking_uri))
    with ctx as run:
        params = {k: ("" if v is None else str(v))[:500] for k, v in evaluation.params.items()}
        params["n_decisions"] = str(evaluation.n)
        mlflow.log_params(params)
        metrics: dict[str, float] = {"logged_value": evaluation.logged_value}
        if evaluation.logged_truth is not None:
            metrics["logged_truth"] = evaluation.logged_truth
        if evaluation.reward_model is not None:
            metrics.update(evaluation.reward_model.metrics())
        for r in evaluation.rows:
            base = _metric_key(r["policy"], r["estimator"], r["interval"])
            for name in ("estimate", "low", "high", "ess", "truth"):
                v = r[name]
                if v is not None and math.isfinite(float(v)):
                    metrics[f"{base}.{name}"] = float(v)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {_metric_key("version", r["policy"]): r["version"] for r in evaluation.rows}
        )
        mlflow.set_tags(warning_tags(evaluation.warnings))
        for path in files.values():
            mlflow.log_artifact(str(path))
        return str(run.info.run_id)
