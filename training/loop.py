"""The retraining loop (``nba loop``): one cycle, or one every N hours.

A cycle, under a file lock so two loops never run one at once:

1. **Export** the events the service stored since the last cycle from its
   SQLite event store into the loop's Parquet log (incremental by row id,
   idempotent: a rerun, even after a crash mid-export, adds no duplicate).
   With ``--logs DIR`` instead of ``--store`` the log is used as it is.
2. **Plan the days** from the horizon ``as_of`` (the simulated clock or now):
   only days whose reward windows are all closed at ``as_of`` are used (the
   join's censoring rule); the last ``eval_days`` of them are the evaluation
   days, the days before them the training days (a sliding window, or the days
   since the champion's own training for a warm start).
3. **Check the data**; any failure refuses the cycle with its reason:
   propensities outside (0, 1], a day without decisions, feature drift (PSI of
   the logged context features, training days vs evaluation days) beyond a
   threshold, a reward model that cannot be fitted on the evaluation days.
4. **Train** a challenger (registered as ``challenger``) on the training days.
5. **Gate** with :func:`training.promote.promote` on the evaluation days only
   (days the challenger did not train on): the paired difference's lower bound
   must exceed ``min_lift``. Only then is ``champion`` moved; services that
   follow the alias (``NBA_MODEL_POLL_SECONDS``) load it on their next poll.
6. **Record** the cycle as an MLflow run in experiment ``loop``: parameters,
   counts, estimates, the decision (``promoted``, ``kept``, ``refused`` or
   ``skipped``) and its reasons, and, when the caller knows the truth (the
   simulator), a PNG of the estimates against it over the cycles.

State (high-water marks of the export, the cycles so far) lives in
``WORK/loop_state.json``; the lock is ``WORK/loop.lock``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from nba.domain import ValidationError
from nba.features import FeaturizerConfig
from nba.logs import io as logio
from nba.policies.vw import VWConfig
from nba.reward import RewardDefinition

LOOP_EXPERIMENT = "loop"
STATE_FILE = "loop_state.json"
LOCK_FILE = "loop.lock"
DEFAULT_PSI_THRESHOLD = 0.25
#: a context feature enters the drift check when present in this share of rows
_FEATURE_PRESENCE = 0.5
#: the drift check looks at what the service is given about the HCP and the
#: request (profile, CRM attributes, request fields), not at the contact
#: history: the history is what our own actions produce, and a new policy is
#: meant to change it
DRIFT_PREFIXES: tuple[str, ...] = ("hcp.", "request.", "attributes.")
_PART = re.compile(r"^part-(\d{5,})\.parquet$")

#: what the caller may know about the truth: mean true value of the decisions
#: served in ``[lo, hi)`` (None when there were none)
TruthFn = Callable[[datetime, datetime], "float | None"]


class LoopError(ValidationError):
    """A cycle cannot run: the message names the input and what was wrong."""


class LoopBusy(LoopError):
    """Another loop holds the lock; this cycle did not start."""


# ----------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainMode:
    """How a cycle trains its challenger.

    ``window`` learns from scratch on the last ``days`` training days;
    ``warm`` starts from the champion's VW model (``-i``) and learns only the
    days after the last day the champion was trained on (at most ``days``);
    with no champion yet it trains like ``window``.

    >>> TrainMode.parse("window:14")
    TrainMode(kind='window', days=14)
    >>> TrainMode.parse("warm").kind
    'warm'
    >>> TrainMode.parse("window:0")
    Traceback (most recent call last):
    ...
    training.loop.LoopError: --train 'window:0': DAYS must be a positive integer
    """

    kind: str = "window"
    days: int = 14

    @classmethod
    def parse(cls, text: str) -> TrainMode:
        head, _, tail = str(text).partition(":")
        if head not in ("window", "warm"):
            raise LoopError(f"--train {text!r}: expected 'window:DAYS', 'warm' or 'warm:DAYS'")
        if not tail:
            if head == "window":
                raise LoopError(f"--train {text!r}: give the window length, e.g. window:14")
            return cls(head, 28)
        try:
            days = int(tail)
        except ValueError:
            days = 0
        if days < 1:
            raise LoopError(f"--train {text!r}: DAYS must be a positive integer")
        return cls(head, days)

    def __str__(self) -> str:
        return f"{self.kind}:{self.days}"


@dataclass(frozen=True)
class LoopConfig:
    """Everything one cycle needs; each field is logged as a parameter.

    Parameters
    ----------
    work_dir : path
        The loop's own directory: state, lock, and (with ``store``) the log.
    store : path, optional
        The service's SQLite event store to export from.
    logs : path, optional
        A Parquet log directory to use as is (instead of ``store``).
    train : TrainMode
    eval_days : int
        Closed days held out for the gate (the challenger never trains on them).
    reward_def : RewardDefinition, optional
    vw_config : VWConfig, optional
    featurizer_config : FeaturizerConfig, optional
    seed : int
    estimator, interval, alpha, n_bootstrap, min_lift
        The gate's (see :func:`training.promote.promote`).
    psi_threshold : float
        Refuse when a context feature's PSI (training vs evaluation days) exceeds it.
    tracking_uri : str, optional
    registered_name : str
    """

    work_dir: Path
    store: Path | str | None = None
    logs: Path | None = None
    train: TrainMode = field(default_factory=TrainMode)
    eval_days: int = 7
    reward_def: RewardDefinition = field(default_factory=RewardDefinition.default)
    vw_config: VWConfig | None = None
    featurizer_config: FeaturizerConfig | None = None
    seed: int = 0
    estimator: str = "snips"
    interval: str = "bootstrap"
    alpha: float = 0.05
    n_bootstrap: int = 1000
    min_lift: float = 0.0
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    tracking_uri: str | None = None
    registered_name: str = "nba"

    def __post_init__(self) -> None:
        if (self.store is None) == (self.logs is None):
            raise LoopError("give the source of the events: --store DB or --logs DIR (one)")
        from serving.cli_store import store_exists

        if self.store is not None and not store_exists(self.store):
            raise LoopError(f"--store: no event store database at {self.store}")
        if self.logs is not None and not (Path(self.logs) / "decisions").is_dir():
            raise LoopError(f"--logs: {self.logs} is not a log directory (no 'decisions')")
        if isinstance(self.eval_days, bool) or not isinstance(self.eval_days, int):
            raise LoopError(f"--eval-days: must be a positive integer, got {self.eval_days!r}")
        if self.eval_days < 1:
            raise LoopError(f"--eval-days: must be a positive integer, got {self.eval_days!r}")
        if not (isinstance(self.psi_threshold, int | float) and self.psi_threshold > 0):
            raise LoopError(f"--psi-threshold: must be > 0, got {self.psi_threshold!r}")
        if not (
            isinstance(self.min_lift, int | float)
            and math.isfinite(self.min_lift)
            and self.min_lift >= 0
        ):
            raise LoopError(
                f"--min-lift: must be a finite number >= 0 (reward units), got {self.min_lift!r}"
            )

    @property
    def logs_dir(self) -> Path:
        return Path(self.logs) if self.logs is not None else Path(self.work_dir) / "logs"

    @property
    def params(self) -> dict[str, Any]:
        return {
            "work_dir": str(self.work_dir),
            "source": f"store:{_store_text(self.store)}" if self.store else f"logs:{self.logs}",
            "train_mode": str(self.train),
            "eval_days": self.eval_days,
            "reward_definition": self.reward_def.id,
            "vw_args": " ".join((self.vw_config or VWConfig()).args(())),
            "seed": self.seed,
            "estimator": self.estimator,
            "interval": self.interval,
            "alpha": self.alpha,
            "n_bootstrap": self.n_bootstrap,
            "min_lift": self.min_lift,
            "psi_threshold": self.psi_threshold,
            "registered_name": self.registered_name,
        }


# ------------------------------------------------------------------ state
@dataclass
class LoopState:
    """What persists between cycles (``WORK/loop_state.json``)."""

    marks: dict[str, int] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    cycles: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> LoopState:
        if not path.is_file():
            return cls()
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(dict(d["marks"]), d.get("pending"), list(d["cycles"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LoopError(f"{path}: unreadable loop state ({exc}); fix or remove it") from exc

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)


@contextmanager
def cycle_lock(work_dir: Path) -> Iterator[None]:
    """Hold ``WORK/loop.lock`` (``fcntl.flock``, exclusive, non-blocking) for a cycle.

    Raises
    ------
    LoopBusy
        Another process holds it; the message names its pid and start time.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            holder = {}
        os.close(fd)
        raise LoopBusy(
            f"{path}: another nba loop is running a cycle (pid {holder.get('pid', '?')}, "
            f"since {holder.get('since', '?')}); this cycle did not start"
        ) from None
    try:
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "since": datetime.now(UTC).isoformat()}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------- export
def _next_part(directory: Path, taken: Mapping[Path, int]) -> int:
    if directory in taken:
        return taken[directory]
    if not directory.is_dir():
        return 0
    nums = [int(m.group(1)) for p in directory.iterdir() if (m := _PART.match(p.name))]
    return max(nums) + 1 if nums else 0


def _finish_pending(state: LoopState, state_path: Path) -> None:
    """Complete an interrupted export: move the staged parts still waiting
    (each move is an atomic rename), then commit the marks."""
    if not state.pending:
        return
    for src, dst in state.pending["moves"]:
        s, d = Path(src), Path(dst)
        if s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)
    state.marks = dict(state.pending["marks"])
    state.pending = None
    state.save(state_path)


def _store_text(store: Path | str) -> str:
    """The store's location for logs and run parameters (a URL without its password)."""
    from serving.store import is_store_url

    if is_store_url(store):
        from serving.store_postgres import redact

        return redact(str(store))
    return str(store)


def export_new_events(store: Path | str, logs_dir: Path, work_dir: Path) -> dict[str, int]:
    """Append the events stored since the last export to ``logs_dir``.

    The rows go to a staging directory first; the planned renames and the new
    marks are written to the state file before any part is moved, so an export
    interrupted at any point is completed (not repeated) by the next call.

    Returns
    -------
    dict
        Rows exported per table (``catalogs``: snapshots written).
    """
    from serving.store import EventStore

    state_path = work_dir / STATE_FILE
    state = LoopState.load(state_path)
    _finish_pending(state, state_path)
    staging = work_dir / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with EventStore(store) as st:
        counts, marks = st.export_increment(staging, state.marks)
    moves: list[list[str]] = []
    taken: dict[Path, int] = {}
    for f in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = f.relative_to(staging)
        if rel.parts[0] == "catalog":
            dest = logs_dir / rel
            if dest.exists():
                continue
        else:
            d = logs_dir / rel.parent
            n = _next_part(d, taken)
            taken[d] = n + 1
            dest = d / f"part-{n:05d}.parquet"
        moves.append([str(f), str(dest)])
    state.pending = {"moves": moves, "marks": marks}
    state.save(state_path)
    _finish_pending(state, state_path)
    shutil.rmtree(staging, ignore_errors=True)
    return counts


# ------------------------------------------------------------------- plan
@dataclass(frozen=True)
class DayPlan:
    """The days one cycle uses (inclusive ranges)."""

    last_closed: date
    train_since: date
    train_until: date
    eval_since: date
    eval_until: date


def last_closed_day(as_of: datetime, window_days: float) -> date:
    """The last day all of whose decisions have closed reward windows at ``as_of``.

    >>> last_closed_day(datetime(2025, 3, 20, 9, tzinfo=UTC), 14)
    datetime.date(2025, 3, 5)
    >>> last_closed_day(datetime(2025, 3, 20, tzinfo=UTC), 14)
    datetime.date(2025, 3, 5)
    """
    return (as_of - timedelta(days=window_days)).date() - timedelta(days=1)


def plan_days(
    as_of: datetime,
    window_days: float,
    eval_days: int,
    train_days: int,
    first_day: date,
    train_after: date | None = None,
) -> DayPlan | str:
    """The cycle's days, or why there are not enough closed days yet.

    ``train_after`` (warm start): train only on days after it.
    """
    last = last_closed_day(as_of, window_days)
    eval_since = last - timedelta(days=eval_days - 1)
    train_until = eval_since - timedelta(days=1)
    train_since = max(first_day, train_until - timedelta(days=train_days - 1))
    if train_after is not None:
        train_since = max(train_since, train_after + timedelta(days=1))
    if train_since > train_until:
        return (
            f"not enough closed days: as of {as_of.isoformat()} the last day with closed "
            f"{window_days:g}-day reward windows is {last}; {eval_days} evaluation day(s) "
            f"from {eval_since} leave no training day "
            + (
                f"after {train_after} (the champion's last training day)"
                if train_after is not None
                else f"(the data start on {first_day})"
            )
        )
    return DayPlan(last, train_since, train_until, eval_since, last)


# ----------------------------------------------------------------- checks
def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list | tuple):
        out[f"{prefix}#len"] = len(obj)
    else:
        out[prefix] = obj


def context_features(contexts: Sequence[str]) -> dict[str, list[Any]]:
    """The logged context snapshots (JSON) as columns of leaf values (lists as
    their length), keyed by dotted path.

    >>> context_features(['{"hcp": {"decile": 3}, "seen": [1, 2]}'])
    {'hcp.decile': [3], 'seen#len': [2]}
    """
    rows: list[dict[str, Any]] = []
    for c in contexts:
        flat: dict[str, Any] = {}
        _flatten(json.loads(c), "", flat)
        rows.append(flat)
    keys = sorted({k for r in rows for k in r})
    return {k: [r.get(k) for r in rows] for k in keys}


def _may_hold_drift_keys(prefix: str) -> bool:
    """Whether a mapping flattened at ``prefix`` can give a key that starts with one
    of :data:`DRIFT_PREFIXES` (its keys are ``prefix.<key>...``; a mapping at the
    empty prefix gives its keys as they are)."""
    if not prefix:
        return True
    dotted = prefix + "."
    return any(dotted.startswith(d) or d.startswith(dotted) for d in DRIFT_PREFIXES)


def _flatten_drift(
    obj: Mapping[str, Any], prefix: str, out: dict[str, Any], keep: dict[str, bool]
) -> None:
    """:func:`_flatten` of the mapping ``obj`` keeping only the keys that start with
    one of :data:`DRIFT_PREFIXES`, and not descending into a mapping whose keys
    cannot (``keep`` caches :func:`_may_hold_drift_keys` by prefix). Same keys,
    values and insertion order as :func:`_flatten` followed by that filter."""
    for k, v in obj.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) or isinstance(v, Mapping):  # the C check first (json's)
            may = keep.get(path)
            if may is None:
                may = keep[path] = _may_hold_drift_keys(path)
            if may:
                _flatten_drift(v, path, out, keep)
        elif isinstance(v, list) or isinstance(v, tuple):
            key = f"{path}#len"
            if key.startswith(DRIFT_PREFIXES):
                out[key] = len(v)
        elif path.startswith(DRIFT_PREFIXES):
            out[path] = v


def _drift_features(contexts: Sequence[str]) -> dict[str, list[Any]]:
    """The columns of :func:`context_features` whose keys start with one of
    :data:`DRIFT_PREFIXES` (the same lists, keys in the same order), flattening
    only the parts of each context that can hold such keys.

    >>> _drift_features(['{"hcp": {"decile": 3}, "history": {"seen": [1]}}'])
    {'hcp.decile': [3]}
    """
    rows: list[dict[str, Any]] = []
    keep: dict[str, bool] = {}
    for c in contexts:
        flat: dict[str, Any] = {}
        obj = json.loads(c)
        if isinstance(obj, Mapping):  # (a scalar's or a list's one key, "" or "#len", is none)
            _flatten_drift(obj, "", flat, keep)
        rows.append(flat)
    keys = sorted({k for r in rows for k in r})
    return {k: [r.get(k) for r in rows] for k in keys}


#: types whose equal values have the same JSON text (floats do not: 0.0 == -0.0)
_TEXT_BY_VALUE = (str, int, bool, type(None))


def _value_texts(values: Sequence[Any]) -> list[str]:
    """``[json.dumps(v) for v in values]``, each distinct string, integer, boolean
    or None dumped once.

    >>> _value_texts(["a", 1, True, None, 1, -0.0, 0.0, "a"])
    ['"a"', '1', 'true', 'null', '1', '-0.0', '0.0', '"a"']
    """
    seen: dict[tuple[type, Any], str] = {}
    out: list[str] = []
    for v in values:
        t = type(v)
        if t in _TEXT_BY_VALUE:
            key = (t, v)
            text = seen.get(key)
            if text is None:
                text = seen[key] = json.dumps(v)
        else:
            text = json.dumps(v)
        out.append(text)
    return out


def psi(reference: Sequence[Any], current: Sequence[Any], bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Numbers are binned at the reference's deciles, anything else by value;
    shares are floored at 1e-4. ``sum((c - r) * ln(c / r))``.

    >>> round(psi([1, 2, 3, 4] * 25, [1, 2, 3, 4] * 25), 6)
    0.0
    >>> psi(["a"] * 50 + ["b"] * 50, ["b"] * 100) > 1
    True
    """
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) and v is not None
        for v in (*reference, *current)
    )
    if numeric and len(set(reference)) > bins:
        r = np.asarray(reference, dtype=float)
        c = np.asarray(current, dtype=float)
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
        rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=edges.size + 1)
        cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=edges.size + 1)
    else:
        ref_texts = _value_texts(reference)
        cur_texts = _value_texts(current)
        cats = sorted({*ref_texts, *cur_texts})
        index = {k: i for i, k in enumerate(cats)}
        rc = np.bincount([index[t] for t in ref_texts], minlength=len(cats))
        cc = np.bincount([index[t] for t in cur_texts], minlength=len(cats))
    rs = np.maximum(rc / max(rc.sum(), 1), 1e-4)
    cs = np.maximum(cc / max(cc.sum(), 1), 1e-4)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


def feature_drift(reference: Sequence[str], current: Sequence[str]) -> list[tuple[str, float]]:
    """PSI of every profile, attribute and request feature (:data:`DRIFT_PREFIXES`,
    identifiers ``*_id`` left out) present in at least half of the reference
    rows, largest first (contexts as logged JSON)."""
    if not reference or not current:
        return []
    # only the drift features' columns: the same ones context_features would give
    # for these keys, without flattening the contact history (most of a context)
    ref = _drift_features(reference)
    cur = _drift_features(current)
    out = []
    for k, col in ref.items():
        if not k.startswith(DRIFT_PREFIXES) or k.endswith("_id"):
            continue
        if sum(v is not None for v in col) < _FEATURE_PRESENCE * len(col):
            continue
        other = cur.get(k, [None] * len(current))
        out.append((k, psi(col, other)))
    return sorted(out, key=lambda kv: -kv[1])


@dataclass
class DataCheck:
    """What the data checks found; ``reasons`` empty means the data may be used."""

    reasons: list[str] = field(default_factory=list)
    n_train_days_decisions: int = 0
    n_eval_decisions: int = 0
    psi_max: float = 0.0
    psi_feature: str = ""
    bad_propensities: int = 0
    empty_days: list[str] = field(default_factory=list)


def check_data(logs_dir: Path, plan: DayPlan, psi_threshold: float) -> DataCheck:
    """Propensities in (0, 1], no empty day (a day without any decision whose
    weekday has decisions on other days of the range), PSI drift within the
    threshold."""
    out = DataCheck()
    table = logio.read(
        logs_dir,
        "decisions",
        since=plan.train_since,
        until=plan.eval_until,
        columns=["event_id", "ts", "propensity", "context", "activated"],
    )
    prop = np.asarray(table.column("propensity").to_numpy(zero_copy_only=False), dtype=float)
    bad = ~((prop > 0) & (prop <= 1))
    out.bad_propensities = int(bad.sum())
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        out.reasons.append(
            f"broken data: {out.bad_propensities} decision(s) with a propensity outside "
            f"(0, 1] between {plan.train_since} and {plan.eval_until}, e.g. event "
            f"{table.column('event_id')[k].as_py()} with {prop[k]!r}"
        )
    days = [ts.astimezone(UTC).date() for ts in table.column("ts").to_pylist()]  # decision days
    seen = set(days)
    # a weekday with no decision on any of its days in the range is a day off
    # (e.g. no email sends or visits at weekends), not a gap in the data
    weekdays_used = {d.weekday() for d in seen}
    d = plan.train_since
    while d <= plan.eval_until:
        if d not in seen and d.weekday() in weekdays_used:
            out.empty_days.append(d.isoformat())
        d += timedelta(days=1)
    if out.empty_days:
        out.reasons.append(
            f"broken data: no decision at all on {len(out.empty_days)} day(s) of the cycle "
            f"({', '.join(out.empty_days[:5])}{', ...' if len(out.empty_days) > 5 else ''}) "
            "although the same weekday has decisions on other days; did an export or the "
            "service stop?"
        )
    in_eval = np.array([x >= plan.eval_since for x in days], dtype=bool)
    out.n_eval_decisions = int(in_eval.sum())
    out.n_train_days_decisions = int((~in_eval).sum())
    for n, what, lo, hi in (
        (out.n_train_days_decisions, "training", plan.train_since, plan.train_until),
        (out.n_eval_decisions, "evaluation", plan.eval_since, plan.eval_until),
    ):
        if n == 0:
            out.reasons.append(
                f"no decision on the {what} days ({lo} .. {hi}); is the horizon "
                "past the end of the data?"
            )
    ctx = table.column("context").to_pylist()
    drift = feature_drift(
        [c for c, e in zip(ctx, in_eval, strict=True) if not e],
        [c for c, e in zip(ctx, in_eval, strict=True) if e],
    )
    if drift:
        out.psi_feature, out.psi_max = drift[0]
        if out.psi_max > psi_threshold:
            worst = ", ".join(f"{k} {v:.3f}" for k, v in drift[:3] if v > psi_threshold)
            out.reasons.append(
                f"feature drift: PSI of the evaluation days ({plan.eval_since} .. "
                f"{plan.eval_until}) against the training days above {psi_threshold:g}: {worst}"
            )
    return out


def check_reward_model(
    cfg: LoopConfig, plan: DayPlan, as_of: datetime
) -> tuple[str | None, dict[str, float]]:
    """Fit the cross-fitted reward model (DM of the uniform policy) on the
    evaluation days; a reason when it fails or its error is not finite."""
    from training.evaluate import evaluate

    where = f"reward model on {plan.eval_since} .. {plan.eval_until}"
    try:
        ev = evaluate(
            cfg.logs_dir,
            cfg.reward_def,
            ["uniform"],
            estimators=["dm"],
            intervals=["gaussian"],
            since=plan.eval_since,
            until=plan.eval_until,
            seed=cfg.seed,
            as_of=as_of,
            tracking_uri=cfg.tracking_uri,
        )
    except (ValidationError, ValueError, RuntimeError, ArithmeticError) as exc:
        return f"reward-model failure: {where}: {exc}", {}
    rm = ev.reward_model
    if rm is None:
        return f"reward-model failure: {where}: no reward model was fitted", {}
    mse, const = rm.mean_heldout_mse, rm.mean_constant_mse
    metrics = {"reward_model_mse": mse, "reward_model_constant_mse": const}
    if not (math.isfinite(mse) and math.isfinite(const)):
        return (
            f"reward-model failure: {where}: held-out squared error {mse!r} "
            f"(constant {const!r}) is not finite; are the rewards?",
            metrics,
        )
    return None, metrics


# ------------------------------------------------------------------ cycle
@dataclass
class CycleResult:
    """One cycle: what it did and why (also ``cycles[-1]`` of the state file)."""

    cycle: int
    as_of: str
    decision: str
    reasons: list[str] = field(default_factory=list)
    exported: dict[str, int] = field(default_factory=dict)
    plan: dict[str, str] = field(default_factory=dict)
    train_mode: str = ""
    n_train: int = 0
    n_eval: int = 0
    challenger_version: str | None = None
    champion_before: str | None = None
    champion_after: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gate_run_id: str | None = None
    run_id: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = [f"cycle {self.cycle} as of {self.as_of}: {self.decision}"]
        if self.exported:
            lines.append("exported " + ", ".join(f"{k} {v}" for k, v in self.exported.items()))
        if self.plan:
            p = self.plan
            lines.append(
                f"trained on {p['train_since']} .. {p['train_until']} ({self.n_train} "
                f"decisions, {self.train_mode}); evaluated on {p['eval_since']} .. "
                f"{p['eval_until']} ({self.n_eval} decisions)"
            )
        lines.extend(f"  - {r}" for r in self.reasons)
        lines.append(
            f"champion {self.champion_before or 'none'} -> {self.champion_after or 'none'}"
            + (f"; MLflow run {self.run_id}" if self.run_id else "")
        )
        return "\n".join(lines)


def _alias(cfg: LoopConfig, alias: str) -> str | None:
    from training.promote import _version

    return _version(cfg.registered_name, alias, cfg.tracking_uri)


def _first_day(logs_dir: Path) -> date | None:
    files = logio.part_files(logs_dir, "decisions")
    if not files:
        return None
    return date.fromisoformat(files[0].parent.name.split("=", 1)[1])


def _champion_model_dir(cfg: LoopConfig, version: str, dest: Path) -> Path:
    """Download the champion's saved VW policy directory (for a warm start)."""
    import mlflow.artifacts

    from training import mlflow_utils
    from training.registry import _policy_dir

    uri = mlflow_utils.configure(cfg.tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{cfg.registered_name}/{version}",
        dst_path=str(dest),
        tracking_uri=uri,
    )
    return _policy_dir(Path(local))


def run_cycle(
    cfg: LoopConfig,
    as_of: datetime | None = None,
    truth: TruthFn | None = None,
) -> CycleResult:
    """Run one cycle under the lock; see the module docstring.

    Parameters
    ----------
    cfg : LoopConfig
    as_of : aware datetime, optional
        The horizon (default: now): outcomes known up to then.
    truth : callable, optional
        ``truth(lo, hi)``: the true mean value of the decisions served in
        ``[lo, hi)`` (simulations); recorded next to the estimates.

    Raises
    ------
    LoopBusy
        Another loop is running a cycle in ``cfg.work_dir``.
    """
    if as_of is None:
        as_of = datetime.now(UTC)
    if as_of.tzinfo is None:
        raise LoopError(f"as_of {as_of!r} must be timezone-aware")
    as_of = as_of.astimezone(UTC)
    work = Path(cfg.work_dir)
    with cycle_lock(work):
        t0 = time.perf_counter()
        state_path = work / STATE_FILE
        res = _cycle(cfg, as_of, truth, LoopState.load(state_path), work)
        res.seconds = time.perf_counter() - t0
        state = LoopState.load(state_path)  # the export moved the marks
        state.cycles.append(res.to_dict())
        res.run_id = _record(cfg, res, state.cycles, work)
        state.cycles[-1]["run_id"] = res.run_id
        state.save(state_path)
        return res


def _cycle(
    cfg: LoopConfig, as_of: datetime, truth: TruthFn | None, state: LoopState, work: Path
) -> CycleResult:
    from training import mlflow_utils

    res = CycleResult(cycle=len(state.cycles) + 1, as_of=as_of.isoformat(), decision="skipped")
    res.train_mode = str(cfg.train)
    if cfg.store is not None:
        res.exported = export_new_events(cfg.store, cfg.logs_dir, work)
    res.champion_before = res.champion_after = _alias(cfg, mlflow_utils.CHAMPION)
    if truth is not None and state.cycles:
        prev = datetime.fromisoformat(state.cycles[-1]["as_of"])
        served = truth(prev, as_of)
        if served is not None:
            # what the policy that served since the last cycle truly delivered
            res.metrics["truth_served_since_last_cycle"] = served
    first = _first_day(cfg.logs_dir)
    if first is None:
        res.reasons.append(f"no decisions in {cfg.logs_dir} yet")
        return res
    train_after = None
    if cfg.train.kind == "warm" and res.champion_before is not None:
        from training.promote import training_last_day

        train_after = training_last_day(cfg.registered_name, res.champion_before, cfg.tracking_uri)
    plan = plan_days(
        as_of,
        cfg.reward_def.window_days,
        cfg.eval_days,
        cfg.train.days,
        first,
        train_after,
    )
    if isinstance(plan, str):
        res.reasons.append(plan)
        return res
    res.plan = {k: v.isoformat() for k, v in asdict(plan).items()}
    check = check_data(cfg.logs_dir, plan, cfg.psi_threshold)
    res.metrics.update(
        {
            "psi_max": check.psi_max,
            "bad_propensities": float(check.bad_propensities),
            "empty_days": float(len(check.empty_days)),
        }
    )
    res.n_eval = check.n_eval_decisions
    if check.reasons:
        res.decision = "refused"
        res.reasons.extend(check.reasons)
        return res
    if truth is not None:
        eval_truth = truth(
            datetime.combine(plan.eval_since, datetime.min.time(), UTC),
            datetime.combine(plan.eval_until + timedelta(days=1), datetime.min.time(), UTC),
        )
        if eval_truth is not None:
            res.metrics["truth_served_eval_days"] = eval_truth
    why, rm_metrics = check_reward_model(cfg, plan, as_of)
    res.metrics.update(rm_metrics)
    if why is not None:
        res.decision = "refused"
        res.reasons.append(why)
        return res
    # ---- train the challenger on the training days only
    from training.mlflow_utils import log_training_run
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        initial = None
        if cfg.train.kind == "warm":
            if res.champion_before is None:
                res.reasons.append("warm start asked, but no champion yet: trained from scratch")
            else:
                initial = _champion_model_dir(cfg, res.champion_before, Path(tmp))
        try:
            result = train(
                cfg.logs_dir,
                cfg.reward_def,
                cfg.vw_config,
                cfg.featurizer_config,
                since=plan.train_since,
                until=plan.train_until,
                seed=cfg.seed,
                as_of=as_of,
                initial_policy=initial,
            )
        except ValidationError as exc:
            res.decision = "refused"
            res.reasons.append(f"training failed: {exc}")
            return res
    res.n_train = result.n_train
    logged = log_training_run(
        result,
        experiment=mlflow_utils.TRAIN_EXPERIMENT,
        tracking_uri=cfg.tracking_uri,
        extra_params={
            "logs_dir": str(cfg.logs_dir.resolve()),
            "loop_cycle": res.cycle,
            "warm_start_from": "" if initial is None else res.champion_before,
        },
    )
    res.challenger_version = logged.version
    # ---- the paired gate on the days the challenger did not train on
    from training.promote import promote

    gate = promote(
        cfg.logs_dir,
        cfg.reward_def,
        estimator=cfg.estimator,
        alpha=cfg.alpha,
        interval=cfg.interval,
        since=plan.eval_since,
        until=plan.eval_until,
        seed=cfg.seed,
        n_bootstrap=cfg.n_bootstrap,
        min_lift=float(cfg.min_lift),
        tracking_uri=cfg.tracking_uri,
        registered_name=cfg.registered_name,
        dry_run=True,
        as_of=as_of,
    )
    res.gate_run_id = gate.run_id
    for key in ("difference", "difference_low", "difference_high", "logged_value"):
        v = getattr(gate, key)
        if v is not None:
            res.metrics[key] = float(v)
    for who, row in (("challenger", gate.challenger), ("champion", gate.champion)):
        for k in ("estimate", "low", "high", "ess"):
            if row is not None and row.get(k) is not None:
                res.metrics[f"{who}_{k}"] = float(row[k])
    res.reasons.append(f"gate ({cfg.estimator}, {cfg.interval}): {gate.reason}")
    if gate.promoted:
        from mlflow import MlflowClient

        uri = mlflow_utils.configure(cfg.tracking_uri)
        MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
            cfg.registered_name, mlflow_utils.CHAMPION, str(gate.challenger_version)
        )
        res.decision = "promoted"
        res.champion_after = str(gate.challenger_version)
    else:
        res.decision = "kept"
    return res


# ----------------------------------------------------------------- record
def plot_history(cycles: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """PNG of the loop's estimates against the truth, one point per cycle; None
    when no cycle recorded a truth."""
    rows = [c for c in cycles if "truth_served_eval_days" in c.get("metrics", {})]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows), dtype=float)
    m = [c["metrics"] for c in rows]

    def col(key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in m], dtype=float)

    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(x, col("truth_served_eval_days"), "k-x", label="truth: served policy, eval days")
    ax.plot(x, col("logged_value"), "o--", color="grey", label="observed mean reward, eval days")
    est, lo, hi = col("challenger_estimate"), col("challenger_low"), col("challenger_high")
    ok = np.isfinite(est)
    if ok.any():
        ax.errorbar(
            x[ok] + 0.08,
            est[ok],
            yerr=np.vstack([est[ok] - lo[ok], hi[ok] - est[ok]]),
            fmt="s",
            capsize=3,
            label="challenger estimate (gate interval)",
        )
    # what the policy chosen by each cycle truly delivered until the next cycle
    since_last = {
        int(c["cycle"]): c.get("metrics", {}).get("truth_served_since_last_cycle") for c in cycles
    }
    after = np.array(
        [np.nan if (v := since_last.get(int(c["cycle"]) + 1)) is None else v for c in rows],
        dtype=float,
    )
    if np.isfinite(after).any():
        ax.plot(x + 0.16, after, "v", color="green", label="truth: the next week as served")
    colours = {"promoted": "green", "kept": "orange", "refused": "red", "skipped": "lightgrey"}
    for xi, c in zip(x, rows, strict=True):
        ax.axvline(float(xi), color=colours.get(c["decision"], "grey"), lw=0.8, alpha=0.5)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{c['cycle']}\n{c['plan']['eval_until'][5:]}" for c in rows], fontsize=7)
    ax.set_xlabel("cycle, last evaluation day (line: green promoted, orange kept, red refused)")
    ax.set_ylabel("mean reward per decision")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _record(
    cfg: LoopConfig, res: CycleResult, cycles: Sequence[Mapping[str, Any]], work: Path
) -> str:
    import mlflow

    from training import mlflow_utils

    exp = mlflow_utils.experiment_id(LOOP_EXPERIMENT, cfg.tracking_uri)
    with mlflow.start_run(experiment_id=exp, run_name=f"cycle-{res.cycle}") as run:
        params: dict[str, Any] = dict(cfg.params)
        params.update({"cycle": res.cycle, "as_of": res.as_of})
        params.update({f"plan_{k}": v for k, v in res.plan.items()})
        params.update(
            {
                "challenger_version": res.challenger_version,
                "champion_before": res.champion_before,
                "gate_run_id": res.gate_run_id,
            }
        )
        mlflow.log_params(mlflow_utils._clean_params(params))
        mlflow.set_tags(
            {
                "decision": res.decision,
                "reasons": " | ".join(res.reasons)[:5000] or "-",
                "champion_after": res.champion_after or "",
            }
        )
        metrics = {f"exported_{k}": float(v) for k, v in res.exported.items()}
        metrics.update({k: float(v) for k, v in res.metrics.items() if math.isfinite(v)})
        metrics.update(
            {
                "promoted": float(res.decision == "promoted"),
                "n_train": float(res.n_train),
                "n_eval": float(res.n_eval),
                "seconds": res.seconds,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(res.to_dict(), "cycle.json")
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_history(cycles, Path(tmp) / "estimates_vs_truth.png")
            if png is not None:
                mlflow.log_artifact(str(png))
                shutil.copy(png, work / "estimates_vs_truth.png")
        return str(run.info.run_id)


def run_every(
    cfg: LoopConfig,
    hours: float,
    max_cycles: int | None = None,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CycleResult]:
    """Run a cycle, then one every ``hours`` (wall clock), ``max_cycles`` in all
    (None: until interrupted). A cycle refused because another loop holds the
    lock is reported and retried at the next tick."""
    if not (isinstance(hours, int | float) and hours > 0 and math.isfinite(hours)):
        raise LoopError(f"--every: must be a positive number of hours, got {hours!r}")
    done: list[CycleResult] = []
    n = 0
    while max_cycles is None or n < max_cycles:
        n += 1
        t0 = time.monotonic()
        try:
            res = run_cycle(cfg)
            done.append(res)
            echo(res.format())
        except LoopBusy as exc:
            echo(str(exc))
        if max_cycles is not None and n >= max_cycles:
            break
        sleep(max(0.0, hours * 3600 - (time.monotonic() - t0)))
    return done


__all__ = [
    "CycleResult",
    "DayPlan",
    "LoopBusy",
    "LoopConfig",
    "LoopError",
    "LoopState",
    "TrainMode",
    "check_data",
    "context_features",
    "cycle_lock",
    "export_new_events",
    "feature_drift",
    "last_closed_day",
    "plan_days",
    "psi",
    "run_cycle",
    "run_every",
]
