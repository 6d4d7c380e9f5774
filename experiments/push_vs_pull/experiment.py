"""Push vs pull: the campaign timetable against learning policies, on the same
simulated populations and seeds.

For every seed, each policy runs in a world built from that seed (same
population, same requesters); the policy's own randomness and VW's seed derive
from the seed too. Every figure is measured from the logs the world wrote
(:mod:`experiments.push_vs_pull.measure`).

Figures (per policy, mean ± sd over seeds):

- weekly mean reward per decision (realized, and the ground-truth expected
  reward of the chosen action) and weekly engagement rate (share of decisions
  with an open, click, meeting, call, attendance, visit or download inside
  the reward window);
- total reward, unsubscribes;
- the normalized score ``(V - V_uniform) / (V_oracle - V_uniform)`` with ``V``
  the mean ground-truth reward of the chosen actions, per seed against that
  seed's uniform and oracle runs, over the last ``last_weeks`` weeks (the level
  reached at the end) and over the whole run;
- the ratio of mean reward per decision (and of engagement rate) to the
  campaign's, over the last weeks and the whole run;
- business value per decision: what the in-window outcomes are worth (sample
  requests, Rx signals, engagement; ``nba/data/value.toml``), what the contacts
  cost, and the difference.

>>> cfg = ExperimentConfig(hcps=50, days=14, seeds=(1,), last_weeks=1,
...                        policies=("uniform", "campaign", "oracle"))
>>> cfg.weeks, cfg.params["policies"]
(2, 'uniform,campaign,oracle')
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from experiments.push_vs_pull.measure import (
    ExperimentError,
    PolicyRun,
    check_policy_spec,
    run_policy,
    split_triggers,
)
from simulators.hcp.learning import LEARNING_MODE
from simulators.hcp.world import DEFAULT_START

F64 = npt.NDArray[np.float64]

EXPERIMENT_NAME = "experiments/push_vs_pull"
DEFAULT_POLICIES: tuple[str, ...] = (
    "uniform",
    "campaign",
    "segment",
    "vw:epsilon",
    "vw:squarecb",
    "vw:bag",
    "oracle",
)
#: targets of docs/push_vs_pull.md (reported, never enforced by tuning the world):
#: normalized score of the best VW configuration over the last weeks and the whole
#: run, its reward per decision over the last weeks against the best policy that
#: does not learn, and its engagement rate over the last weeks against the campaign's
TARGET_SCORE = 0.60
TARGET_SCORE_ALL = 0.40
TARGET_BASELINE_RATIO = 1.25
TARGET_ENGAGEMENT_RATIO = 1.30
#: the policies that do not learn (the "best non-learning policy" is the best of
#: those present, per seed and per measure)
NON_LEARNING: tuple[str, ...] = ("uniform", "campaign", "segment")

PNG = "learning_curve.png"
REPORT = "report.md"
WEEKLY_CSV = "weekly.csv"
RESULTS_JSON = "results.json"


@dataclass(frozen=True)
class ExperimentConfig:
    """What to run.

    Parameters
    ----------
    hcps : int
        Population size of every world.
    days : int
        Simulated days per run.
    seeds : tuple of int
        One world per seed; every policy runs in each.
    policies : tuple of str
        World policy names and ``vw[:CONFIG]`` specs; must include ``uniform``
        and ``oracle`` (the score's anchors) and ``campaign`` (the ratio's).
    last_weeks : int
        Weeks at the end over which the reached level is measured.
    workers : int
        Runs in parallel (processes); results do not depend on it.
    start : date
        First simulated day.
    visit_request_rate : float
        Portal visit requests in every world (``WorldConfig.visit_request_rate``;
        docs/simulator.md, "Visit requests"); 0 (default) leaves the worlds as they
        were. Policies named ``SPEC+triggers`` run with reps who answer the requests
        first (docs/triggers.md).
    """

    hcps: int = 2000
    days: int = 90
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    policies: tuple[str, ...] = DEFAULT_POLICIES
    last_weeks: int = 2
    workers: int = 1
    start: date = DEFAULT_START
    visit_request_rate: float = 0.0

    def __post_init__(self) -> None:
        def err(name: str, problem: str) -> ExperimentError:
            return ExperimentError(f"push-vs-pull: {name}: {problem}")

        for name in ("hcps", "days", "last_weeks", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise err(name, f"must be a positive integer, got {v!r}")
        if 7 * self.last_weeks > self.days:
            raise err("last_weeks", f"{self.last_weeks} weeks do not fit in {self.days} days")
        seeds = tuple(self.seeds)
        if not seeds:
            raise err("seeds", "at least one seed is needed")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise err("seeds", f"{s!r} is not a non-negative integer")
        if len(set(seeds)) != len(seeds):
            raise err("seeds", f"lists a seed twice: {list(seeds)}")
        pols = tuple(self.policies)
        if len(set(pols)) != len(pols):
            raise err("policies", f"lists a policy twice: {list(pols)}")
        for p in pols:
            check_policy_spec(p)
        rate = self.visit_request_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise err("visit_request_rate", f"must be in [0, 1], got {rate!r}")
        trig = [p for p in pols if split_triggers(p)[1]]
        if trig and rate == 0:
            raise err(
                "policies",
                f"{trig[0]!r} needs visit requests to act on: set visit_request_rate > 0",
            )
        for anchor in ("uniform", "oracle", "campaign"):
            if anchor not in pols:
                raise err("policies", f"must include {anchor!r} (the scores are relative to it)")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "policies", pols)

    @property
    def weeks(self) -> int:
        return math.ceil(self.days / 7)

    @property
    def last_from_day(self) -> int:
        """First day of the final ``last_weeks`` weeks."""
        return self.days - 7 * self.last_weeks

    @property
    def params(self) -> dict[str, Any]:
        return {
            "hcps": self.hcps,
            "days": self.days,
            "seeds": ",".join(map(str, self.seeds)),
            "policies": ",".join(self.policies),
            "last_weeks": self.last_weeks,
            "workers": self.workers,
            "start": self.start.isoformat(),
            "learning": LEARNING_MODE,
        } | ({"visit_request_rate": self.visit_request_rate} if self.visit_request_rate else {})


@dataclass
class RunFigures:
    """Figures of one policy in one seeded world.

    Weekly arrays have shape (weeks,); a week without decisions is NaN.
    """

    policy: str
    seed: int
    decisions: int
    total_reward: float
    mean_reward: float
    mean_truth: float
    engagement_rate: float
    unsubscribes: int
    last_reward: float
    last_truth: float
    last_engagement: float
    weekly_decisions: list[int]
    weekly_reward: list[float]
    weekly_truth: list[float]
    weekly_engagement: list[float]
    weekly_unsubscribes: list[int]
    seconds: float
    learning: str = ""
    score_last: float = float("nan")
    score_all: float = float("nan")
    score_last_realized: float = float("nan")
    ratio_last: float = float("nan")
    ratio_all: float = float("nan")
    engagement_ratio_last: float = float("nan")
    engagement_ratio_all: float = float("nan")
    baseline_ratio_last: float = float("nan")
    baseline_ratio_all: float = float("nan")
    #: business value (packaged ``value`` definition): outcome value, contact cost
    #: and their difference per decision, whole run
    value_per_decision: float = float("nan")
    cost_per_decision: float = float("nan")
    net_value_per_decision: float = float("nan")


def figures_of(run: PolicyRun, weeks: int, last_from_day: int) -> RunFigures:
    """Weekly and whole-run figures of one measured run."""
    week = run.day // 7

    def weekly(x: npt.NDArray[Any], how: str) -> F64:
        cnt = np.bincount(week, minlength=weeks)[:weeks].astype(np.float64)
        tot = np.asarray(
            np.bincount(week, weights=x.astype(np.float64), minlength=weeks)[:weeks],
            dtype=np.float64,
        )
        if how == "sum":
            return tot
        with np.errstate(invalid="ignore", divide="ignore"):
            out: F64 = np.where(cnt > 0, tot / np.maximum(cnt, 1.0), np.nan)
        return out

    last = run.day >= last_from_day

    def mean(x: npt.NDArray[Any]) -> float:
        return float(np.mean(x)) if x.size else float("nan")

    return RunFigures(
        policy=run.policy,
        seed=run.seed,
        decisions=run.n,
        total_reward=float(run.reward.sum()),
        mean_reward=mean(run.reward),
        mean_truth=mean(run.truth),
        engagement_rate=mean(run.engaged),
        unsubscribes=int(run.unsubscribed.sum()),
        last_reward=mean(run.reward[last]),
        last_truth=mean(run.truth[last]),
        last_engagement=mean(run.engaged[last]),
        weekly_decisions=np.bincount(week, minlength=weeks)[:weeks].astype(int).tolist(),
        weekly_reward=weekly(run.reward, "mean").tolist(),
        weekly_truth=weekly(run.truth, "mean").tolist(),
        weekly_engagement=weekly(run.engaged, "mean").tolist(),
        weekly_unsubscribes=weekly(run.unsubscribed, "sum").astype(int).tolist(),
        seconds=run.seconds,
        learning=run.learning,
        value_per_decision=mean(run.value),
        cost_per_decision=mean(run.cost),
        net_value_per_decision=mean(run.value - run.cost),
    )


def normalized_score(v: float, v_uniform: float, v_oracle: float) -> float:
    """``(v - v_uniform) / (v_oracle - v_uniform)``; NaN when the anchors coincide.

    >>> normalized_score(0.12, 0.08, 0.13)
    0.8
    """
    gap = v_oracle - v_uniform
    if not math.isfinite(gap) or abs(gap) < 1e-12:
        return float("nan")
    return round((v - v_uniform) / gap, 12)


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(b) else float("nan")


def score_runs(figs: Sequence[RunFigures]) -> None:
    """Fill each run's score and ratios from the anchors of its own seed; the
    baseline ratios divide by the best non-learning policy of that seed (the best
    of :data:`NON_LEARNING` present, by the same measure)."""
    by = {(f.policy, f.seed): f for f in figs}
    for f in figs:
        u, o, c = by[("uniform", f.seed)], by[("oracle", f.seed)], by[("campaign", f.seed)]
        base = [by[(p, f.seed)] for p in NON_LEARNING if (p, f.seed) in by]
        f.baseline_ratio_last = _ratio(f.last_reward, max(b.last_reward for b in base))
        f.baseline_ratio_all = _ratio(f.mean_reward, max(b.mean_reward for b in base))
        f.score_last = normalized_score(f.last_truth, u.last_truth, o.last_truth)
        f.score_all = normalized_score(f.mean_truth, u.mean_truth, o.mean_truth)
        f.score_last_realized = normalized_score(f.last_reward, u.last_reward, o.last_reward)
        f.ratio_last = _ratio(f.last_reward, c.last_reward)
        f.ratio_all = _ratio(f.mean_reward, c.mean_reward)
        f.engagement_ratio_last = _ratio(f.last_engagement, c.last_engagement)
        f.engagement_ratio_all = _ratio(f.engagement_rate, c.engagement_rate)


#: per-run figures aggregated over seeds (name -> attribute)
AGGREGATED: tuple[str, ...] = (
    "decisions",
    "total_reward",
    "mean_reward",
    "mean_truth",
    "engagement_rate",
    "unsubscribes",
    "last_reward",
    "last_truth",
    "last_engagement",
    "score_last",
    "score_all",
    "score_last_realized",
    "ratio_last",
    "ratio_all",
    "engagement_ratio_last",
    "engagement_ratio_all",
    "baseline_ratio_last",
    "baseline_ratio_all",
    "value_per_decision",
    "cost_per_decision",
    "net_value_per_decision",
    "seconds",
)


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value).

    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(x)), float(np.std(x, ddof=1)) if x.size > 1 else 0.0


@dataclass
class ExperimentResult:
    """Everything the experiment measured, and where it wrote its files."""

    config: ExperimentConfig
    runs: list[RunFigures]
    summary: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    best_vw: str | None = None
    targets: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def runs_of(self, policy: str) -> list[RunFigures]:
        return [r for r in self.runs if r.policy == policy]

    def to_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["start"] = self.config.start.isoformat()
        if not self.config.visit_request_rate:
            del cfg["visit_request_rate"]  # results without visit requests read as before
        return {
            "experiment": EXPERIMENT_NAME,
            "config": cfg,
            "learning": LEARNING_MODE,
            "summary": {
                p: {k: {"mean": m, "sd": s} for k, (m, s) in d.items()}
                for p, d in self.summary.items()
            },
            "best_vw": self.best_vw,
            "targets": self.targets,
            "runs": [asdict(r) for r in self.runs],
            "mlflow_run_id": self.mlflow_run_id,
        }


def summarize(config: ExperimentConfig, figs: list[RunFigures]) -> ExperimentResult:
    """Aggregate over seeds, pick the best VW configuration, check the targets."""
    score_runs(figs)
    res = ExperimentResult(config, figs)
    for p in config.policies:
        runs = res.runs_of(p)
        res.summary[p] = {k: mean_sd(float(getattr(r, k)) for r in runs) for k in AGGREGATED}
    vws = [p for p in config.policies if p.startswith("vw")]
    if vws:
        best = max(vws, key=lambda p: res.summary[p]["score_last"][0])
        res.best_vw = best
        s = res.summary[best]
        res.targets = {
            "policy": best,
            "baseline_ratio_last": s["baseline_ratio_last"][0],
            "baseline_ratio_last_sd": s["baseline_ratio_last"][1],
            "baseline_ratio_target": TARGET_BASELINE_RATIO,
            "baseline_ratio_met": bool(s["baseline_ratio_last"][0] >= TARGET_BASELINE_RATIO),
            "baseline_ratio_all": s["baseline_ratio_all"][0],
            "baseline_ratio_all_sd": s["baseline_ratio_all"][1],
            "score_last": s["score_last"][0],
            "score_last_sd": s["score_last"][1],
            "score_target": TARGET_SCORE,
            "score_met": bool(s["score_last"][0] >= TARGET_SCORE),
            "score_all": s["score_all"][0],
            "score_all_sd": s["score_all"][1],
            "score_all_target": TARGET_SCORE_ALL,
            "score_all_met": bool(s["score_all"][0] >= TARGET_SCORE_ALL),
            "engagement_ratio_last": s["engagement_ratio_last"][0],
            "engagement_ratio_last_sd": s["engagement_ratio_last"][1],
            "engagement_ratio_target": TARGET_ENGAGEMENT_RATIO,
            "engagement_ratio_met": bool(s["engagement_ratio_last"][0] >= TARGET_ENGAGEMENT_RATIO),
            "ratio_last": s["ratio_last"][0],
            "ratio_last_sd": s["ratio_last"][1],
            "ratio_all": s["ratio_all"][0],
            "ratio_all_sd": s["ratio_all"][1],
        }
    return res


def _job(args: tuple[str, int, int, int, date, int, int, float]) -> RunFigures:
    spec, hcps, days, seed, start, weeks, last_from, rate = args
    run = run_policy(spec, hcps, days, seed, start=start, visit_request_rate=rate)
    return figures_of(run, weeks, last_from)


def run_all(config: ExperimentConfig, progress: bool = False) -> list[RunFigures]:
    """Every (policy, seed) run, in (seed, policy) order whatever ``workers`` is."""
    jobs = [
        (
            p,
            config.hcps,
            config.days,
            s,
            config.start,
            config.weeks,
            config.last_from_day,
            float(config.visit_request_rate),
        )
        for s in config.seeds
        for p in config.policies
    ]
    out: list[RunFigures] = []
    if config.workers == 1:
        for j in jobs:
            out.append(_job(j))
            if progress:
                _echo_progress(out[-1], len(out), len(jobs))
        return out
    with ProcessPoolExecutor(max_workers=config.workers) as ex:
        for i, fig in enumerate(ex.map(_job, jobs), start=1):
            out.append(fig)
            if progress:
                _echo_progress(fig, i, len(jobs))
    return out


def _echo_progress(f: RunFigures, i: int, total: int) -> None:
    import sys

    print(
        f"[{i}/{total}] {f.policy} seed {f.seed}: {f.decisions} decisions, mean reward "
        f"{f.mean_reward:.4f}, last weeks {f.last_truth:.4f} (truth), {f.seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def run(
    config: ExperimentConfig,
    out_dir: str | Path,
    log_mlflow: bool = True,
    tracking_uri: str | None = None,
    progress: bool = False,
) -> ExperimentResult:
    """Run the experiment, write the report, plot, CSV and JSON to ``out_dir``,
    and log them to MLflow (experiment ``experiments/push_vs_pull``).

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path
        Created if missing; existing report files in it are replaced.
    log_mlflow : bool
    tracking_uri : str, optional
        Default: ``MLFLOW_TRACKING_URI`` or the project's SQLite store.
    progress : bool
        One line per finished run on stderr.
    """
    from experiments.push_vs_pull.report import write_outputs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = summarize(config, run_all(config, progress=progress))
    res.files = write_outputs(res, out)
    if log_mlflow:
        res.mlflow_run_id = log_to_mlflow(res, tracking_uri)
        # the JSON records the run id too
        (out / RESULTS_JSON).write_text(json.dumps(res.to_dict(), indent=1, default=str) + "\n")
    return res


def metric_key(policy: str, name: str) -> str:
    """An MLflow-safe metric name (``vw:bag`` -> ``vw_bag``).

    >>> metric_key("vw:/tmp/my cfg.toml", "score_last")
    'vw__tmp_my_cfg.toml.score_last'
    """
    safe = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in policy)
    return f"{safe}.{name}"


def log_to_mlflow(res: ExperimentResult, tracking_uri: str | None = None) -> str:
    """Log params, metrics (per policy; weekly curves with step = week) and the
    report files as artifacts; returns the MLflow run id."""
    import mlflow

    from training.mlflow_utils import configure, experiment_id  # telemetry off on import

    if os.environ.get("MLFLOW_RUN_ID"):
        configure(tracking_uri)  # launched by ``mlflow run``: use the project's run
        ctx = mlflow.start_run()
    else:
        ctx = mlflow.start_run(experiment_id=experiment_id(EXPERIMENT_NAME, tracking_uri))
    with ctx as active:
        mlflow.log_params({k: str(v)[:500] for k, v in res.config.params.items()})
        metrics: dict[str, float] = {}
        for p, d in res.summary.items():
            for k, (m, s) in d.items():
                if math.isfinite(m):
                    metrics[metric_key(p, k)] = m
                if math.isfinite(s):
                    metrics[metric_key(p, k + "_sd")] = s
        for k, v in res.targets.items():
            if isinstance(v, bool):
                metrics[f"target.{k}"] = float(v)
            elif isinstance(v, int | float) and math.isfinite(v):
                metrics[f"target.{k}"] = float(v)
        mlflow.log_metrics(metrics)
        for p in res.config.policies:
            runs = res.runs_of(p)
            for w in range(res.config.weeks):
                for name in ("weekly_reward", "weekly_truth", "weekly_engagement"):
                    vals = [getattr(r, name)[w] for r in runs]
                    vals = [v for v in vals if math.isfinite(v)]
                    if vals:
                        mlflow.log_metric(metric_key(p, name), float(np.mean(vals)), step=w + 1)
        if res.best_vw:
            mlflow.set_tag("best_vw", res.best_vw)
        for path in res.files.values():
            mlflow.log_artifact(path)
        return str(active.info.run_id)


def load_result(path: str | Path) -> ExperimentResult:
    """Rebuild the result of a ``results.json`` written by :func:`run` (to re-render
    its report and plot without re-running the simulations)."""
    data: Mapping[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    c = dict(data["config"])
    cfg = ExperimentConfig(
        hcps=c["hcps"],
        days=c["days"],
        seeds=tuple(c["seeds"]),
        policies=tuple(c["policies"]),
        last_weeks=c["last_weeks"],
        workers=c["workers"],
        start=date.fromisoformat(c["start"]),
    )
    names = {f.name for f in fields(RunFigures)}
    runs = [RunFigures(**{k: v for k, v in r.items() if k in names}) for r in data["runs"]]
    res = summarize(cfg, runs)
    res.mlflow_run_id = data.get("mlflow_run_id")
    return res


def write_weekly_csv(res: ExperimentResult, path: Path) -> None:
    """One row per (policy, seed, week)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "policy",
                "seed",
                "week",
                "decisions",
                "mean_reward",
                "mean_truth",
                "engagement_rate",
                "unsubscribes",
            ]
        )
        for r in res.runs:
            for k in range(res.config.weeks):
                w.writerow(
                    [
                        r.policy,
                        r.seed,
                        k + 1,
                        r.weekly_decisions[k],
                        f"{r.weekly_reward[k]:.6f}",
                        f"{r.weekly_truth[k]:.6f}",
                        f"{r.weekly_engagement[k]:.6f}",
                        r.weekly_unsubscribes[k],
                    ]
                )
