"""Offline training from replayed logs: join -> featurize in bulk -> VW text file
-> VW's native parser -> model, then an off-policy check on a later time slice.

Nothing here calls VW once per decision: the joined table is featurized
column-wise (:meth:`nba.features.Featurizer.featurize_table`), labelled
column-wise (:func:`nba.policies.vw.labelled_text`), written once, and learned
by VW's own parser (:func:`nba.policies.vw.train_from_file`). The same logs,
configs and seed give byte-identical models.

The held-out slice is the last ``holdout_days`` calendar days of the selected
range; the new policy's value on it is estimated with IPS and SNIPS
(:mod:`nba.ope`) against the logged propensities.
"""

from __future__ import annotations

import itertools
import json
import queue
import tempfile
import threading
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.catalog import Catalog
from nba.domain import ValidationError, parse_day
from nba.features import FeaturizerConfig
from nba.logs import io as logio
from nba.logs.engine import SqlEngine, get_engine
from nba.logs.join import OpenWindows, load_joined, open_windows_hint
from nba.logs.schema import JOINED
from nba.ope import IPS, SNIPS, LoggedData
from nba.ope.checks import DEFAULT_MIN_ESS_SHARE, OPEWarning, disagreement_checks, ess_check
from nba.policies.vw import NativeLearner, VWConfig, VWPolicy, labelled_text_buffer
from nba.reward import RewardDefinition
from training.examples import example_rows, write_examples
from training.holdout import holdout_probabilities, scoring_copy
from training.slates import has_slates, labelled_slot_text

#: what ``nba train`` may do with decisions whose reward window is open
TRAIN_OPEN_WINDOWS = (OpenWindows.EXCLUDE.value, OpenWindows.DELAY_CORRECTED.value)


class TrainingError(ValidationError):
    """Training could not run; the message says what was wrong with which input."""


@dataclass(frozen=True)
class HoldoutReport:
    """Off-policy estimates of the trained policy on the held-out slice.

    Attributes
    ----------
    n : int
        Held-out decisions.
    logged_value : float
        Mean observed reward under the logging policy.
    ips, snips : float
        Estimated value of the new policy.
    ips_low, ips_high, snips_low, snips_high : float
        95 % Gaussian intervals.
    ess : float
        Effective sample size of the importance weights.
    max_weight : float
    warnings : tuple of OPEWarning
        IPS and SNIPS disagreeing beyond their intervals, low effective
        sample size (:mod:`nba.ope.checks`).
    """

    n: int
    logged_value: float
    ips: float
    snips: float
    ips_low: float
    ips_high: float
    snips_low: float
    snips_high: float
    ess: float
    max_weight: float
    warnings: tuple[OPEWarning, ...] = ()

    def metrics(self) -> dict[str, float]:
        return {f"holdout_{k}": float(v) for k, v in self.__dict__.items() if k != "warnings"}


@dataclass
class TrainResult:
    """Everything a training run produced and the facts a tracking run records."""

    policy: VWPolicy
    n_train: int
    n_holdout: int
    average_loss: float
    n_examples: int
    reward_definition: str
    catalog_version: str
    data_since: str
    data_until: str
    holdout_since: str | None
    train_until: str
    passes: int
    seed: int
    holdout: HoldoutReport | None
    timings: dict[str, float] = field(default_factory=dict)
    join_counts: dict[str, int] = field(default_factory=dict)
    #: the join's horizon: ISO ``as_of`` ("" when none) and the lines printed about it
    as_of: str = ""
    horizon: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        p = dict(self.policy.params)
        p.update(
            {
                "reward_definition": self.reward_definition,
                "catalog_version": self.catalog_version,
                "data_since": self.data_since,
                "data_until": self.data_until,
                "holdout_since": self.holdout_since or "",
                "passes": self.passes,
                "seed": self.seed,
                "n_train": self.n_train,
                "n_holdout": self.n_holdout,
                "as_of": self.as_of,
            }
        )
        return p

    @property
    def metrics(self) -> dict[str, float]:
        m: dict[str, float] = {
            "average_loss": self.average_loss,
            "n_examples": float(self.n_examples),
            "train_decisions": float(self.n_train),
        }
        for k, v in self.timings.items():
            m[f"seconds_{k}"] = v
        if self.holdout is not None:
            m.update(self.holdout.metrics())
        return m

    def summary(self) -> str:
        days = f"trained on {self.n_train} decisions ({self.data_since} .. {self.train_until})"
        if self.holdout_since is not None:
            days += (
                f"; held out {self.n_holdout} decisions ({self.holdout_since} .. {self.data_until})"
            )
        lines = [
            *self.horizon,
            f"{days}, {self.passes} pass(es), seed {self.seed}",
            f"reward definition {self.reward_definition}; catalog {self.catalog_version}",
            f"VW: {self.policy.params['vw_command']}",
            f"progressive-validation average loss: {self.average_loss:.6f}",
        ]
        h = self.holdout
        if h is None:
            lines.append("no held-out slice (use --holdout-days N)")
        else:
            lines.append(
                f"held-out {h.n} decisions from {self.holdout_since}: logged value "
                f"{h.logged_value:.4f}; new policy IPS {h.ips:.4f} "
                f"[{h.ips_low:.4f}, {h.ips_high:.4f}], SNIPS {h.snips:.4f} "
                f"[{h.snips_low:.4f}, {h.snips_high:.4f}]; ESS {h.ess:.0f}, "
                f"max weight {h.max_weight:.2f}"
            )
            lines.extend(w.line() for w in h.warnings)
        return "\n".join(lines)


def load_train_config(path: str | Path) -> tuple[VWConfig, FeaturizerConfig]:
    """Read a training config file (TOML, JSON or YAML) with optional tables
    ``[vw]`` (:class:`VWConfig` fields or ``args = "..."``) and ``[featurizer]``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainingError(f"{p}: cannot read config: {exc.strerror or exc}") from exc
    data: Any
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise TrainingError(f"{p}: config must be .toml, .json or .yaml")
    except TrainingError:
        raise
    except Exception as exc:
        raise TrainingError(f"{p}: cannot parse config: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TrainingError(f"{p}: config must be a table/object")
    unknown = sorted(set(data) - {"vw", "featurizer"})
    if unknown:
        raise TrainingError(f"{p}: field '{unknown[0]}': unknown section (vw, featurizer)")
    vw_d = dict(data.get("vw") or {})
    try:
        args = vw_d.pop("args", None)
        vw = VWConfig.from_dict(vw_d, source=f"{p} [vw]")
        if args:
            vw = VWConfig.from_vw_args(str(args), base=vw)
        fz = FeaturizerConfig.from_dict(data.get("featurizer") or {})
    except ValidationError as exc:
        raise TrainingError(f"{p}: {exc}") from exc
    return vw, fz


def _catalog_for(logs_dir: Path, table: pa.Table) -> Catalog:
    """The catalog snapshot of the most recent decision (every action must be in it)."""
    versions = table.column("catalog_version")
    latest = str(versions[table.num_rows - 1].as_py())
    snap = logs_dir / "catalog" / f"{latest}.json"
    if snap.is_file():
        return Catalog.read_snapshot(snap)
    default = Catalog.default()
    if default.version == latest:
        return default
    raise TrainingError(
        f"{logs_dir}: no snapshot catalog/{latest}.json for catalog version {latest} "
        "(and the shipped catalog has another version)"
    )


def holdout_report(
    policy: VWPolicy,
    table: pa.Table,
    min_ess_share: float = DEFAULT_MIN_ESS_SHARE,
    probabilities: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None,
) -> HoldoutReport:
    """IPS/SNIPS of ``policy`` on logged decisions ``table`` (JOINED schema), with
    warnings when they disagree beyond their intervals or the effective sample
    size is below ``min_ess_share`` of the decisions.

    ``probabilities`` (flat, shape (m,), and offsets, shape (n + 1,)) are the
    policy's, already computed (by the engine:
    :func:`training.holdout.holdout_probabilities`); without them the policy
    featurizes ``table`` (which then needs ``context`` and ``action_ids``) here."""
    flat, offsets = policy.probabilities_table(table) if probabilities is None else probabilities
    data = LoggedData(
        offsets=offsets,
        action_dist=flat,
        reward=table.column("reward").to_numpy(),
        pscore=table.column("propensity").to_numpy(),
        action=table.column("chosen_index").to_numpy().astype(np.int64),
    )
    ips = IPS().estimate_interval(data, method="gaussian")
    snips = SNIPS().estimate_interval(data, method="gaussian")
    chosen = offsets[:-1] + data.action
    w = flat[chosen] / data.pscore
    ess = float(w.sum() ** 2 / (w * w).sum()) if np.any(w > 0) else 0.0
    warns = disagreement_checks(
        "held-out",
        "gaussian",
        [
            ("ips", ips.estimate, ips.low, ips.high),
            ("snips", snips.estimate, snips.low, snips.high),
        ],
    )
    low_ess = ess_check("held-out", ess, table.num_rows, min_ess_share)
    if low_ess is not None:
        warns.append(low_ess)
    return HoldoutReport(
        n=table.num_rows,
        logged_value=float(np.mean(data.reward)),
        ips=float(ips.estimate),
        snips=float(snips.estimate),
        ips_low=float(ips.low),
        ips_high=float(ips.high),
        snips_low=float(snips.low),
        snips_high=float(snips.high),
        ess=ess,
        max_weight=float(w.max()),
        warnings=tuple(warns),
    )


#: decision columns read a day at a time while training, not held for the whole range
DAY_COLUMNS = ("context", "action_ids")
#: decision columns the join keeps for training (with the join's reward columns)
JOIN_COLUMNS = ("event_id", "ts", "catalog_version", "chosen_index", "propensity", "slate")


class _DayColumns:
    """Reads :data:`DAY_COLUMNS` of logged decisions one UTC day at a time, for rows
    asked for in time order (days never go back), so that only the days of the
    current chunk are in memory, not every decision's context.

    Parameters
    ----------
    root : Path
        Log directory.
    activated_only : bool
        Look rows up among the activated decisions only (as the join selected them).
    """

    def __init__(self, root: Path, activated_only: bool = True) -> None:
        self.root = root
        self.activated_only = activated_only
        self._days: dict[date, pa.Table] = {}
        # listed once: each day's read reuses it instead of listing every day again
        self.listing = logio.PartListing(root, "decisions")

    def _day(self, day: date) -> pa.Table:
        table = self._days.get(day)
        if table is None:
            cols = ["event_id", "ts", "activated", *DAY_COLUMNS]
            table = logio.read(
                self.root, "decisions", since=day, until=day, columns=cols, listing=self.listing
            )
            if self.activated_only and not pc.all(table.column("activated")).as_py():
                table = table.filter(table.column("activated"))
            table = table.select(["event_id", "ts", *DAY_COLUMNS]).combine_chunks()
            self._days[day] = table
        return table

    def take(self, event_id: pa.Array, ts: pa.Array) -> pa.Table:
        """:data:`DAY_COLUMNS` of the decisions ``event_id`` logged at ``ts`` (both shape
        (k,), in time order), as a table of k rows in the same order."""
        days = np.asarray(
            ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.date32()).to_numpy(zero_copy_only=False),
            dtype="datetime64[D]",
        )
        bounds = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
        first = days[0].astype(object) if days.size else None
        for old in [d for d in self._days if first is None or d < first]:
            del self._days[old]  # days behind the current rows are not needed again
        parts = []
        for lo, hi in itertools.pairwise(bounds):
            day = days[lo].astype(object)
            table = self._day(day)
            ids = event_id.slice(lo, hi - lo)
            where = pc.index_in(ids, value_set=table.column("event_id"))
            if where.null_count:
                missing = ids.filter(pc.is_null(where))[0].as_py()
                raise TrainingError(
                    f"{self.root}: decision {missing!r} of {day} was joined but is not in "
                    "its day's part files any more (was the log changed while training?)"
                )
            parts.append(table.select(list(DAY_COLUMNS)).take(where))
        if not parts:
            return pa.table({c: pa.array([], JOINED.field(c).type) for c in DAY_COLUMNS})
        return pa.concat_tables(parts).combine_chunks()


def _with_day_columns(light: pa.Table, reader: _DayColumns, columns: list[str]) -> pa.Table:
    """``light`` (rows in time order) with :data:`DAY_COLUMNS` added, as ``columns``."""
    heavy = reader.take(
        light.column("event_id").combine_chunks(), light.column("ts").combine_chunks()
    )
    for c in DAY_COLUMNS:
        light = light.append_column(JOINED.field(c), heavy.column(c))
    return light.select(columns)


#: decisions of the first chunk and the least of the last ones (see :func:`chunk_bounds`)
EDGE_CHUNK = 2000


def chunk_bounds(n: int, chunk: int, edge: int = EDGE_CHUNK) -> list[int]:
    """Where training's stream of ``n`` decisions is cut into featurizing chunks.

    VW learns chunk k while this process featurizes chunk k + 1, so VW waits
    alone for the first chunk and works alone on the last one. The first chunk
    is small (``edge`` decisions, at most ``chunk``) so that VW starts early;
    then chunks of ``chunk`` decisions; within the last two of those, each
    chunk is half of what is left (at least ``edge``), so that the work VW
    does alone at the end is a small chunk's, not a whole one's. The bytes VW
    reads are the same whatever the cuts.

    Parameters
    ----------
    n : int
        Decisions to stream.
    chunk : int
        The steady chunk size (positive).
    edge : int
        The first chunk's size and the least size of the shrinking tail.

    Returns
    -------
    list of int
        Increasing bounds from 0 to ``n`` (``[0]`` when ``n`` is 0): chunk i is
        ``bounds[i]:bounds[i + 1]``.

    Examples
    --------
    >>> chunk_bounds(60_000, 25_000)
    [0, 2000, 27000, 43500, 51750, 55875, 57938, 59938, 60000]
    >>> chunk_bounds(5, 25_000)
    [0, 5]
    """
    edge = max(1, min(chunk, edge))
    bounds = [0]
    if n <= 0:
        return bounds
    bounds.append(min(n, edge))
    while bounds[-1] < n:
        rest = n - bounds[-1]
        size = chunk if rest > 2 * chunk else max(edge, -(-rest // 2))
        bounds.append(min(n, bounds[-1] + size))
    return bounds


def train(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    vw_config: VWConfig | None = None,
    featurizer_config: FeaturizerConfig | None = None,
    passes: int = 1,
    since: date | str | None = None,
    until: date | str | None = None,
    holdout_days: int = 0,
    seed: int = 0,
    work_dir: str | Path | None = None,
    chunk_decisions: int = 25_000,
    as_of: str | date | datetime | None = None,
    open_windows: OpenWindows | str = OpenWindows.EXCLUDE,
    initial_policy: str | Path | None = None,
    engine: str | SqlEngine | None = None,
    featurize_on_engine: bool | None = None,
) -> TrainResult:
    """Train a VW policy from a log directory.

    The range is joined once, without the contexts and action lists (those
    are read a day at a time as the chunks need them, so memory does not grow
    with the range's contexts); the training rows are then featurized and
    labelled in chunks while VW (a child process reading the example stream
    with its own parser) learns the previous chunks. Given a ``work_dir``, the
    stream is also written to ``work_dir/train.vw.txt``; VW sees exactly that
    file's bytes, so the model equals learning that file, whatever the chunk
    size. Without one, no example file is written.

    Parameters
    ----------
    logs_dir : path
        Event-log directory (decisions, outcomes, catalog snapshots).
    reward_def : RewardDefinition
    vw_config, featurizer_config : optional
    passes : int
        VW passes over the training examples.
    since, until : date, optional
        Decision range (``until`` inclusive).
    holdout_days : int
        The last N days of the range are held out for the IPS/SNIPS check.
    seed : int
    work_dir : path, optional
        Where the VW example file (``train.vw.txt``) is written and kept, with
        VW's own files; without it, those go to a temporary directory and no
        example file is written.
    chunk_decisions : int
        Decisions per featurization chunk.
    as_of : date, aware datetime or str, optional
        The outcome horizon (default: :func:`nba.logs.join.default_as_of`);
        decisions whose reward window is open then are left out.
    open_windows : OpenWindows or str
        ``exclude`` (default) or ``delay-corrected``: keep decisions whose
        window is open with E[final reward | channel, reward so far at their
        age], estimated from the closed decisions of the same range
        (:class:`nba.logs.join.OpenWindows`). The held-out check then also
        uses those rewards for open decisions of its days.
    initial_policy : path, optional
        A saved policy directory (:meth:`VWPolicy.save`, same VW and featurizer
        configuration) to continue learning from: a warm start with VW's ``-i``.
    engine : str or SqlEngine, optional
        Where the reward join's SQL runs: ``"duckdb"`` (default) or ``"spark"``
        (:func:`nba.logs.engine.get_engine`); the same rewards, so the same
        example file and model, either way.
    featurize_on_engine : bool, optional
        True: the engine featurizes and labels the training rows
        (:func:`training.examples.write_examples`: one SQL statement calling
        the featurizer registered as an Arrow function; on Spark, the
        executors read the contexts, featurize and write the example part
        files) and VW learns from those files. False: this process featurizes
        in chunks while VW learns. Default: the engine for Spark, this process
        for DuckDB (faster on one machine, ``bench/scale.py --part
        featurize``). The same bytes either way, so the same model. On a
        cluster, give a ``work_dir`` on a file system the executors share:
        the part files go to ``work_dir/examples``.
    """
    engine = get_engine(engine)  # a bad engine or a missing Spark fails before any work
    if featurize_on_engine is None:
        featurize_on_engine = engine.name != "duckdb"
    try:
        ow = OpenWindows(open_windows)
    except ValueError:
        raise TrainingError(
            f"open_windows must be one of {', '.join(TRAIN_OPEN_WINDOWS)}, got {open_windows!r}"
        ) from None
    if ow.value not in TRAIN_OPEN_WINDOWS:
        raise TrainingError(
            f"open_windows must be one of {', '.join(TRAIN_OPEN_WINDOWS)}, got {ow.value!r}"
        )
    if not isinstance(holdout_days, int) or holdout_days < 0:
        raise TrainingError(f"holdout_days must be a non-negative integer, got {holdout_days!r}")
    if not isinstance(passes, int) or passes < 1:
        raise TrainingError(f"passes must be a positive integer, got {passes!r}")
    if not isinstance(chunk_decisions, int) or chunk_decisions < 1:
        raise TrainingError(f"chunk_decisions must be a positive integer, got {chunk_decisions!r}")
    root = Path(logs_dir)
    if not (root / "decisions").is_dir():
        raise TrainingError(f"{root}: not a log directory (no 'decisions' table)")
    lo, hi = parse_day(since, "since", TrainingError), parse_day(until, "until", TrainingError)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(work_dir) if work_dir is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        # VW's child process starts first: its interpreter loads while the join
        # runs on the other core (the catalog it needs only at the end follows)
        initial = None
        if initial_policy is not None:
            from nba.policies.vw import MODEL_FILE

            initial = Path(initial_policy) / MODEL_FILE
            if not initial.is_file():
                raise TrainingError(f"{initial_policy}: not a saved VW policy (no {MODEL_FILE})")
        learner = NativeLearner(
            vw_config or VWConfig(),
            featurizer_config or FeaturizerConfig(),
            None,
            seed,
            passes,
            wd,
            initial_model=initial,
        )
        try:
            t0 = time.perf_counter()

            # the join without the large columns (contexts, action lists): those are
            # read a day at a time below, so they are never all in memory at once
            joined = load_joined(
                root,
                reward_def,
                since=lo,
                until=hi,
                as_of=as_of,
                open_windows=ow,
                columns=JOIN_COLUMNS,
                engine=engine,
            )
            days = _DayColumns(root)
            table = joined.table
            if table.num_rows == 0:
                raise TrainingError(
                    f"{root}: no activated decisions in the selected range"
                    + open_windows_hint(joined.counts.open_window_decisions, joined.as_of)
                )
            # Time order, as indices: the training rows are gathered chunk by chunk
            # (only the columns featurizing and labelling read) while VW learns, not
            # copied whole into order before it starts.
            order = np.asarray(
                pc.sort_indices(
                    table, sort_keys=[("ts", "ascending"), ("event_id", "ascending")]
                ).to_numpy(zero_copy_only=False),
                dtype=np.int64,
            )
            timings["join"] = time.perf_counter() - t0
            ts = table.column("ts").take(pa.array(order))
            first = ts[0].as_py().astimezone(UTC).date()
            last = ts[table.num_rows - 1].as_py().astimezone(UTC).date()
            holdout_since: date | None = None
            n_train = table.num_rows
            hold_t = None
            hold_rows = None
            hold_probs = None
            if holdout_days:
                holdout_since = last - timedelta(days=holdout_days - 1)
                cut = datetime(
                    holdout_since.year, holdout_since.month, holdout_since.day, tzinfo=UTC
                )
                # rows in time order: the held-out ones are a suffix
                n_train = int(
                    pc.sum(pc.less(ts, pa.scalar(cut, type=ts.type)).cast(pa.int64())).as_py()
                )
                hold_rows = order[n_train:]
                if n_train == 0:
                    raise TrainingError(
                        f"holdout of {holdout_days} day(s) from {holdout_since} leaves no training "
                        f"data (data spans {first} .. {last})"
                    )
            catalog = _catalog_for(root, table.slice(int(order[-1]), 1))
            policy = VWPolicy(vw_config, featurizer_config, catalog, seed)
            policy.close()
            learner.catalog = catalog
            timings["featurize"] = timings["write"] = 0.0
            # one chunk per column (the log has one per day): gathering rows from it
            # is a plain take, not a search for each row's chunk
            columns = ["event_id", "context", "action_ids", "chosen_index", "reward", "propensity"]
            slates = has_slates(table)
            if slates:
                columns += ["slate", "slot_rewards"]
            light = [c for c in columns if c not in DAY_COLUMNS] + ["ts"]
            narrow = table.select(light).combine_chunks()
            t_start = time.perf_counter()
            # A writer thread feeds VW (and the example file) chunk k while this
            # thread featurizes chunk k + 1: pipe and file writes release the GIL,
            # so featurizing overlaps with VW's parsing and learning.
            chunks: queue.Queue[pa.Buffer | None] = queue.Queue(maxsize=2)
            failure: list[BaseException] = []

            def feed() -> None:
                try:
                    # the example file only when the caller keeps it (a work_dir): in a
                    # temporary directory it would be written only to be deleted
                    with (
                        open(wd / "train.vw.txt", "wb") if work_dir is not None else nullcontext()
                    ) as fh:
                        while (text := chunks.get()) is not None:
                            if failure:
                                continue
                            t3 = time.perf_counter()
                            if fh is not None:
                                fh.write(text)
                            learner.write(text)
                            timings["write"] += time.perf_counter() - t3
                except BaseException as exc:  # re-raised in the main thread
                    failure.append(exc)
                    while chunks.get() is not None:
                        pass

            writer = threading.Thread(target=feed, name="vw-feed", daemon=True)
            writer.start()
            # (no chunks when the engine featurizes: it writes every example at once)
            bounds = [] if featurize_on_engine else chunk_bounds(n_train, chunk_decisions)
            try:
                if featurize_on_engine:
                    t2 = time.perf_counter()
                    parts = write_examples(
                        engine,
                        root,
                        example_rows(narrow.take(pa.array(order[:n_train]))),
                        policy.featurizer,
                        wd / "examples" if work_dir is not None else Path(tmp) / "examples",
                    )
                    timings["featurize"] = time.perf_counter() - t2
                    for part in parts:  # VW's parser reads the engine's files, in order
                        chunks.put(pa.py_buffer(part.read_bytes()))
                for a, b in itertools.pairwise(bounds):
                    if failure:
                        break
                    t2 = time.perf_counter()
                    rows = _with_day_columns(narrow.take(pa.array(order[a:b])), days, columns)
                    batch = policy.featurizer.featurize_table(rows)
                    if slates and has_slates(rows):
                        # every slot of a logged list is an example of its own
                        text = pa.py_buffer(labelled_slot_text(rows, batch))
                    else:
                        text = labelled_text_buffer(
                            batch,
                            rows.column("chosen_index").to_numpy(),
                            rows.column("reward").to_numpy(),
                            rows.column("propensity").to_numpy(),
                            rows.column("event_id").to_pylist(),
                        )
                    timings["featurize"] += time.perf_counter() - t2
                    chunks.put(text)
            finally:
                chunks.put(None)
                writer.join()
            if failure:
                raise failure[0]
            if hold_rows is not None and featurize_on_engine:
                # the engine reads the held-out contexts and scores them (below)
                hold_t = table.take(pa.array(hold_rows))
            elif hold_rows is not None:
                # the held-out rows (with their contexts), read after the training rows
                hold_t = _with_day_columns(
                    table.take(pa.array(hold_rows)),
                    days,
                    [c for c in JOINED.names if c in table.column_names or c in DAY_COLUMNS],
                )
            t4 = time.perf_counter()
            fit = learner.finish()
            timings["learn_tail"] = time.perf_counter() - t4
            if hold_t is not None and featurize_on_engine and hold_t.num_rows:
                # the executors featurize the held-out decisions and predict with the
                # trained policy's saved files; the driver computes the estimates
                t5 = time.perf_counter()
                hold_ts = hold_t.column("ts")
                lo, hi = pc.min(hold_ts).as_py(), pc.max(hold_ts).as_py()
                hold_probs = holdout_probabilities(
                    engine,
                    tuple(logio.part_files_between(root, "decisions", lo, hi + timedelta(days=1))),
                    hold_t,
                    fit.policy,
                    wd / "holdout" if work_dir is not None else Path(tmp) / "holdout",
                )
                timings["holdout_engine"] = time.perf_counter() - t5
            timings["stream_total"] = time.perf_counter() - t_start
        except BaseException:
            learner.abort()
            raise

    report = None
    n_holdout = 0
    if hold_t is not None:
        t5 = time.perf_counter()
        n_holdout = hold_t.num_rows
        if n_holdout:
            if hold_probs is None:  # scored here, on a copy (see scoring_copy)
                scorer = scoring_copy(fit.policy)
                try:
                    hold_probs = scorer.probabilities_table(hold_t)
                finally:
                    scorer.close()
            report = holdout_report(fit.policy, hold_t, probabilities=hold_probs)
        timings["holdout"] = time.perf_counter() - t5
    return TrainResult(
        policy=fit.policy,
        n_train=n_train,
        n_holdout=n_holdout,
        average_loss=fit.average_loss,
        n_examples=fit.n_examples,
        reward_definition=joined.reward_definition,
        catalog_version=catalog.version,
        data_since=first.isoformat(),
        data_until=last.isoformat(),
        holdout_since=None if holdout_since is None else holdout_since.isoformat(),
        train_until=ts[n_train - 1].as_py().astimezone(UTC).date().isoformat(),
        passes=passes,
        seed=seed,
        holdout=report,
        timings=timings,
        join_counts=joined.counts.as_dict(),
        as_of="" if joined.as_of is None else joined.as_of.isoformat(),
        horizon=tuple(joined.horizon_lines()),
    )
