"""Join decisions to their outcomes: one reward per decision (docs/DESIGN.md, "Data contracts").

The join runs in DuckDB (embedded, the default) or Spark SQL, from one SQL
source (:data:`JOIN_SQL`, :data:`COUNTS_SQL`, :data:`NAMED_OUTCOMES_SQL`,
DuckDB's dialect): :mod:`nba.logs.engine` runs it on DuckDB as written and on
Spark through sqlglot's transpiler, with the same results. The SQL uses only
ANSI constructs (CTEs, ``GROUP BY``, ``LEFT JOIN``, ``CASE``, ``COALESCE``,
``LEAST``/``GREATEST``, ``ROUND``, ``ROW_NUMBER``) over integer microsecond
timestamps.

Semantics, for a reward definition with window ``W``:

1. Outcomes are de-duplicated on ``(event_id, type, source_id)``; of the copies
   the earliest is kept. Removed copies are counted (``duplicate_outcomes``).
   The key does not include ``action_id``: a writer reporting the same type
   about two suggestions gives them distinct ``source_id`` values (the service
   appends ``|<action_id>`` for a suggestion other than the chosen one).
2. Each remaining outcome is classified against its decision:

   - ``unknown``: no decision with that ``event_id`` (``unknown_event_outcomes``),
   - ``slot``: its ``action_id`` names a later slot (2..k) of the decision's
     ``slate`` (a list served with more than one slot). It is credited to that
     slot: each slot is joined like a decision of its own (same window, types,
     values, default), giving ``slot_rewards`` (slot 1 is ``reward``); used
     ones count as ``slot_outcomes``, early and late ones as below,
   - ``other_action``: its ``action_id`` names an action other than the
     decision's ``chosen_action_id`` that is not in its slate
     (``other_action_outcomes``): a rep's feedback or an HCP's response about
     another suggestion of the same decision. It is kept in the log but never
     credited, whatever its time,
   - ``early``: ``outcome.ts < decision.ts`` (``early_outcomes``),
   - ``late``: ``outcome.ts > decision.ts + W`` (``late_outcomes``),
   - ``used``: ``decision.ts <= outcome.ts <= decision.ts + W``.

   An outcome with a null ``action_id`` concerns the chosen action.

3. The reward of a decision is :meth:`nba.reward.RewardDefinition.reward_of`
   of the distinct types of its used outcomes: the sum (or max) of their
   weights (types without a weight weigh 0), clipped, rounded to 12 decimals;
   the definition's default when it has no used outcome. Outcome ``value`` is
   used only for the definition's ``value_types``: such a type contributes
   ``weight * value`` of its earliest used outcome (ties broken by
   ``source_id``). A definition with ``costs`` then subtracts the cost of the
   chosen action's channel from every decision's reward (default included).

Open reward windows (right-censoring). Every join has an ``as_of`` horizon:
the time up to which outcomes are known. A decision whose window is still open
at ``as_of`` (``decision.ts + W > as_of``) may still receive outcomes; its
partial reward is not its reward. Such decisions are left out
(:attr:`OpenWindows.EXCLUDE`, the default) and counted
(``open_window_decisions``, their outcomes ``open_window_outcomes``); outcomes
stamped after ``as_of`` are ignored and counted (``outcomes_after_as_of``,
whatever else they are). A window closing exactly at ``as_of`` is closed.
:attr:`OpenWindows.PARTIAL` keeps them with their partial reward instead, which
is biased toward the default reward; :meth:`JoinResult.horizon_lines` says so.
:attr:`OpenWindows.DELAY_CORRECTED` keeps them with a delay-corrected reward:
the expected final reward given the chosen action's channel and the reward
observed by the decision's age (whole days from ``ts`` to ``as_of``), estimated
by :class:`nba.delay.DelayCorrection` from the closed decisions of the same
join, whose partial reward at that same age is computed from their outcomes
stamped before ``ts + age``. It is unbiased per (channel, partial reward) cell,
not per HCP (docs/push_vs_pull.md, "Learning as outcomes arrive").

``n_outcomes`` of a decision counts its used outcomes after de-duplication
(two ``opened`` outcomes from different sources count 2 there, but their type
counts once in the reward); ``n_late_outcomes`` counts its late ones.

For weights written with a few decimals (as in any real definition) the SQL
reward equals ``reward_of`` exactly; for arbitrary binary fractions the two may
differ in the 12th decimal, where both round.

>>> from datetime import datetime, timedelta, UTC
>>> from nba.reward import RewardDefinition
>>> import pyarrow as pa
>>> from nba.logs.schema import DECISIONS, OUTCOMES
>>> t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
>>> d = pa.Table.from_pylist([dict(event_id="e1", ts=t0, hcp_id="h1", requester="sim",
...     channels_requested=["email"], context="{}", catalog_version="v",
...     action_ids=["a@email", "b@email"], probabilities=[0.5, 0.5], chosen_index=0,
...     chosen_action_id="a@email", propensity=0.5,
...     policy="uniform", model_version="none", suppressed=[], activated=True)], schema=DECISIONS)
>>> o = pa.Table.from_pylist([
...     dict(event_id="e1", ts=t0 + timedelta(hours=1), type="opened", value=1.0,
...          source="hcp", source_id="s1"),
...     dict(event_id="e1", ts=t0 + timedelta(hours=1), type="opened", value=1.0,
...          source="hcp", source_id="s1"),
...     dict(event_id="e1", ts=t0 + timedelta(days=30), type="clicked", value=1.0,
...          source="hcp", source_id="s2"),
...     dict(event_id="e1", ts=t0 + timedelta(hours=2), type="clicked", value=1.0,
...          source="hcp", source_id="s3", action_id="b@email")], schema=OUTCOMES)
>>> res = join_rewards(d, o, RewardDefinition.default())
>>> res.table.column("reward").to_pylist(), res.counts.late_outcomes, res.counts.duplicate_outcomes
([0.2], 1, 1)
>>> res.counts.other_action_outcomes
1
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nba.logs import io
from nba.logs.engine import SqlEngine, Statement, get_engine
from nba.logs.io import LogError
from nba.logs.schema import DECISIONS, JOINED, TABLES
from nba.reward import RewardDefinition

if TYPE_CHECKING:
    import numpy.typing as npt

_US_PER_DAY = 86_400 * 1_000_000
DECISIONS_NAMES = tuple(DECISIONS.names)

#: The join, parameterised by ``$window_us`` and ``$default_reward``; ``{reward}``
#: is the aggregation and clip expression over ``agg.s`` / ``agg.m``.
JOIN_SQL = """
WITH ranked AS (
    SELECT event_id, type, source_id, ts_us, value, action_id,
        ROW_NUMBER() OVER (
            PARTITION BY event_id, type, source_id ORDER BY ts_us, value
        ) AS copy_no
    FROM outcomes
),
dedup AS (
    SELECT event_id, type, source_id, ts_us, value, action_id FROM ranked WHERE copy_no = 1
),
classified AS (
    SELECT o.event_id, o.type, o.source_id, o.ts_us, o.value, d.row_id,
        CASE
            WHEN d.row_id IS NULL THEN 'unknown'
            WHEN o.action_id IS NOT NULL AND o.action_id <> d.chosen_action_id
                THEN 'other_action'
            WHEN o.ts_us < d.ts_us THEN 'early'
            WHEN o.ts_us > d.ts_us + $window_us THEN 'late'
            ELSE 'used'
        END AS status
    FROM dedup AS o
    LEFT JOIN decisions AS d ON o.event_id = d.event_id
),
used_ranked AS (
    SELECT row_id, type, value,
        ROW_NUMBER() OVER (PARTITION BY row_id, type ORDER BY ts_us, source_id) AS type_no
    FROM classified
    WHERE status = 'used'
),
used_types AS (
    SELECT row_id, type, value FROM used_ranked WHERE type_no = 1
),
contrib AS (
    SELECT t.row_id,
        COALESCE(w.weight, 0.0) * (CASE WHEN w.by_value THEN t.value ELSE 1.0 END) AS c
    FROM used_types AS t
    LEFT JOIN weights AS w ON t.type = w.type
),
agg AS (
    SELECT t.row_id,
        SUM(t.c) AS s,
        MAX(t.c) AS m
    FROM contrib AS t
    GROUP BY t.row_id
),
per_decision AS (
    SELECT row_id,
        SUM(CASE WHEN status = 'used' THEN 1 ELSE 0 END) AS n_used,
        SUM(CASE WHEN status = 'late' THEN 1 ELSE 0 END) AS n_late
    FROM classified
    WHERE row_id IS NOT NULL
    GROUP BY row_id
)
SELECT d.row_id,
    ROUND(
        (CASE WHEN agg.row_id IS NULL THEN $default_reward ELSE {reward} END) - d.cost, 12
    ) AS reward,
    CAST(COALESCE(p.n_used, 0) AS INTEGER) AS n_outcomes,
    CAST(COALESCE(p.n_late, 0) AS INTEGER) AS n_late_outcomes,
    agg.row_id IS NULL AS reward_is_default
FROM decisions AS d
LEFT JOIN agg ON agg.row_id = d.row_id
LEFT JOIN per_decision AS p ON p.row_id = d.row_id
ORDER BY d.row_id
"""

#: Outcome counts by status, same de-duplication and classification as :data:`JOIN_SQL`.
COUNTS_SQL = """
WITH ranked AS (
    SELECT event_id, ts_us, action_id,
        ROW_NUMBER() OVER (
            PARTITION BY event_id, type, source_id ORDER BY ts_us, value
        ) AS copy_no
    FROM outcomes
),
dedup AS (
    SELECT event_id, ts_us, action_id FROM ranked WHERE copy_no = 1
)
SELECT
    CASE
        WHEN d.row_id IS NULL THEN 'unknown'
        WHEN o.action_id IS NOT NULL AND o.action_id <> d.chosen_action_id
            THEN 'other_action'
        WHEN o.ts_us < d.ts_us THEN 'early'
        WHEN o.ts_us > d.ts_us + $window_us THEN 'late'
        ELSE 'used'
    END AS status,
    COUNT(*) AS n
FROM dedup AS o
LEFT JOIN decisions AS d ON o.event_id = d.event_id
GROUP BY 1
"""


#: De-duplicated outcomes that name an action (same de-duplication as :data:`JOIN_SQL`).
NAMED_OUTCOMES_SQL = """
WITH ranked AS (
    SELECT event_id, type, source_id, ts_us, value, action_id,
        ROW_NUMBER() OVER (
            PARTITION BY event_id, type, source_id ORDER BY ts_us, value
        ) AS copy_no
    FROM outcomes
)
SELECT event_id, type, source_id, ts_us, value, action_id
FROM ranked WHERE copy_no = 1 AND action_id IS NOT NULL
"""

#: Separates a decision's event id from a slot's action id in the keys of the slot join.
_SLOT_KEY_SEP = "\x1f"


@dataclass(frozen=True)
class JoinCounts:
    """What the join did with its inputs.

    ``outcomes == outcomes_used + late_outcomes + early_outcomes
    + unknown_event_outcomes + duplicate_outcomes + unselected_outcomes
    + other_action_outcomes + slot_outcomes + outcomes_after_as_of
    + open_window_outcomes``.

    Attributes
    ----------
    decisions : int
        Decisions joined (rows of the result).
    outcomes : int
        Outcome rows given (or read).
    outcomes_used : int
        De-duplicated outcomes inside their decision's window.
    late_outcomes : int
        De-duplicated outcomes after ``decision.ts + window`` (ignored).
    duplicate_outcomes : int
        Extra copies of an ``(event_id, type, source_id)`` (ignored).
    unknown_event_outcomes : int
        Outcomes whose ``event_id`` names no logged decision (ignored).
    early_outcomes : int
        Outcomes stamped before their decision (ignored).
    default_decisions : int
        Decisions without a used outcome, given the default reward.
    other_action_outcomes : int
        De-duplicated outcomes about another action of their decision than the
        chosen one that is not in its slate (kept, never credited).
    slot_outcomes : int
        De-duplicated outcomes about a later slot (2..k) of their decision's
        slate, inside the window: credited to that slot (``slot_rewards``).
        Those early or late count in ``early_outcomes`` / ``late_outcomes``.
    unselected_outcomes : int
        :func:`load_joined` only: outcomes of logged decisions that were not
        selected (outside ``since``/``until`` or not activated).
    open_window_decisions : int
        Decisions whose reward window is still open at ``as_of``: left out
        (:attr:`OpenWindows.EXCLUDE`, not in ``decisions``) or kept with a
        partial reward (:attr:`OpenWindows.PARTIAL`, also in ``decisions``).
    open_window_outcomes : int
        Outcomes (up to ``as_of``) of the decisions left out for an open window.
    outcomes_after_as_of : int
        Outcomes stamped after ``as_of`` (ignored, whatever else they are;
        :func:`load_joined` counts those of unselected decisions as unselected).
    delay_closed_decisions : int
        :attr:`OpenWindows.DELAY_CORRECTED` only: closed decisions the
        correction of open ones was estimated from.
    """

    decisions: int = 0
    outcomes: int = 0
    outcomes_used: int = 0
    late_outcomes: int = 0
    duplicate_outcomes: int = 0
    unknown_event_outcomes: int = 0
    early_outcomes: int = 0
    default_decisions: int = 0
    unselected_outcomes: int = 0
    other_action_outcomes: int = 0
    open_window_decisions: int = 0
    open_window_outcomes: int = 0
    outcomes_after_as_of: int = 0
    delay_closed_decisions: int = 0
    slot_outcomes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class OpenWindows(enum.Enum):
    """What a join does with decisions whose reward window is open at ``as_of``.

    A delay-aware label (e.g. a reward estimated from the outcomes seen so far
    and the outcome delay distribution) would be a further member here.
    """

    #: Leave them out of the result and count them (the default).
    EXCLUDE = "exclude"
    #: Keep them with the reward of the outcomes seen up to ``as_of``: biased
    #: toward the default reward (low for engagement rewards). Explicit only.
    PARTIAL = "partial"
    #: Keep them with E[final reward | channel, reward observed by their age],
    #: estimated from the closed decisions of the same join. Explicit only.
    DELAY_CORRECTED = "delay-corrected"


#: Manifest keys (``DIR/manifest.json``) a writer sets to say up to when its
#: outcomes are known: ``as_of`` (ISO 8601, UTC) and ``as_of_basis`` (why), or
#: ``outcomes_complete`` (true: every outcome its decisions will have is there,
#: e.g. imported DSJSON, whose labels are final).
MANIFEST_AS_OF = "as_of"
MANIFEST_AS_OF_BASIS = "as_of_basis"
MANIFEST_OUTCOMES_COMPLETE = "outcomes_complete"


def read_manifest(logs_dir: str | Path) -> dict[str, Any]:
    """``logs_dir/manifest.json`` as a dict (empty when there is none).

    Raises
    ------
    LogError
        When it exists but is not a JSON object.
    """
    path = Path(logs_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LogError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def manifest_as_of(logs_dir: str | Path) -> datetime | None:
    """The ``as_of`` recorded in ``logs_dir/manifest.json``, if any (validated)."""
    value = read_manifest(logs_dir).get(MANIFEST_AS_OF)
    if value is None:
        return None
    where = f"{Path(logs_dir) / 'manifest.json'}: field '{MANIFEST_AS_OF}'"
    return parse_as_of(str(value), where)


def update_manifest(logs_dir: str | Path, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into ``logs_dir/manifest.json`` (written whole, then renamed)."""
    root = Path(logs_dir)
    data = read_manifest(root)
    data.update(fields)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True, indent=1, default=str) + "\n", "utf-8")
    tmp.replace(root / "manifest.json")


@dataclass(frozen=True)
class JoinResult:
    """Decisions with their reward, and what the join counted.

    Attributes
    ----------
    table : pyarrow.Table
        Schema :data:`nba.logs.schema.JOINED`, one row per decision, input order.
    counts : JoinCounts
    reward_definition : str
        ``RewardDefinition.id`` of the definition used.
    as_of : datetime or None
        The horizon (UTC); None when the caller declared the outcomes complete.
    as_of_basis : str
        Where ``as_of`` came from (e.g. ``"given with --as-of"``,
        ``"store export time, from manifest.json"``).
    open_windows : OpenWindows
        What was done with decisions whose window is open at ``as_of``.
    extra_results : tuple of pyarrow.Table
        The results of :func:`load_joined`'s ``extra_sql`` over the joined
        table, one per statement (empty when none was given).
    """

    table: pa.Table
    counts: JoinCounts
    reward_definition: str
    as_of: datetime | None = None
    as_of_basis: str = "outcomes complete"
    open_windows: OpenWindows = OpenWindows.EXCLUDE
    extra_results: tuple[pa.Table, ...] = ()

    def horizon_lines(self) -> list[str]:
        """What the commands print about the horizon: one to three lines."""
        if self.as_of is None:
            return [f"reward windows: no as_of horizon ({self.as_of_basis})"]
        at = format_as_of(self.as_of)
        c = self.counts
        lines = [f"reward windows as of {at} ({self.as_of_basis})"]
        if self.open_windows is OpenWindows.EXCLUDE:
            lines.append(
                f"{c.open_window_decisions} decisions with open reward windows left out "
                f"(as of {at})"
            )
        elif self.open_windows is OpenWindows.DELAY_CORRECTED:
            lines.append(
                f"{c.open_window_decisions} decisions with open reward windows kept with "
                f"delay-corrected rewards (as of {at}): E[final reward | channel, reward so "
                f"far at their age] from {c.delay_closed_decisions} closed decisions"
            )
        else:
            lines.append(
                f"BIASED: {c.open_window_decisions} decisions with open reward windows kept "
                f"with partial rewards (as of {at}); their rewards lean toward the default"
            )
        if c.outcomes_after_as_of:
            lines.append(f"{c.outcomes_after_as_of} outcomes stamped after {at} ignored")
        return lines


def open_windows_hint(n_open: int, as_of: datetime | None) -> str:
    """Suffix for "no decisions" errors when open windows emptied the selection."""
    if not n_open or as_of is None:
        return ""
    return (
        f" whose reward window has closed: {n_open} decisions with open reward windows "
        f"left out (as of {format_as_of(as_of)}); select earlier days or give a later --as-of"
    )


def format_as_of(ts: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ssZ`` (UTC, whole seconds) for messages."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _end_of_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, microseconds=-1)


def parse_as_of(value: str | date | datetime, where: str | None = "--as-of") -> datetime:
    """An ``as_of`` horizon from a day (its last microsecond, UTC) or an aware datetime.

    >>> format_as_of(parse_as_of("2026-01-25"))
    '2026-01-25T23:59:59Z'
    >>> parse_as_of("2026-01-25T12:00:00+01:00").isoformat()
    '2026-01-25T11:00:00+00:00'

    Raises
    ------
    LogError
        When ``value`` is neither ``YYYY-MM-DD`` nor an ISO 8601 datetime with
        a time zone; the message starts with ``where`` (when given).
    """
    pre = "" if not where else f"{where}: "
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise LogError(f"{pre}{value.isoformat()!r} has no time zone (add Z or an offset)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return _end_of_day(value)
    text = str(value).strip()
    if len(text) == 10:
        try:
            return _end_of_day(date.fromisoformat(text))
        except ValueError:
            pass
    else:
        try:
            ts = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if ts.tzinfo is None:
                raise LogError(f"{pre}{text!r} has no time zone (add Z or an offset, e.g. {text}Z)")
            return ts.astimezone(UTC)
    raise LogError(
        f"{pre}{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime "
        "(e.g. 2026-01-25T18:00:00Z)"
    )


def _ts_us(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    return pc.cast(col, pa.int64())


def _reward_expr(reward_def: RewardDefinition) -> str:
    agg = {"sum": "agg.s", "max": "agg.m"}[reward_def.aggregation]
    if reward_def.clip is not None:
        lo, hi = reward_def.clip
        agg = f"LEAST(GREATEST({agg}, {lo!r}), {hi!r})"
    return f"ROUND({agg}, 12)"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


def join_rewards(
    decisions: pa.Table,
    outcomes: pa.Table,
    reward_def: RewardDefinition,
    as_of: datetime | None = None,
    open_windows: OpenWindows = OpenWindows.EXCLUDE,
    engine: str | SqlEngine | None = None,
) -> JoinResult:
    """One reward per decision from its outcomes (semantics in the module docstring).

    Parameters
    ----------
    decisions : pyarrow.Table
        Conforming to :data:`nba.logs.schema.DECISIONS`, ``event_id`` unique; n rows.
    outcomes : pyarrow.Table
        Conforming to :data:`nba.logs.schema.OUTCOMES`; any number of rows.
    reward_def : RewardDefinition
    as_of : aware datetime, optional
        The horizon up to which outcomes are known. None declares the given
        outcomes complete (no window is open); :func:`load_joined` always
        resolves one.
    open_windows : OpenWindows
        What to do with decisions whose window is open at ``as_of``.
    engine : str or SqlEngine, optional
        Where the SQL runs (:func:`nba.logs.engine.get_engine`): ``"duckdb"``
        (default) or ``"spark"``; the same statements, the same result.

    Returns
    -------
    JoinResult
        ``table`` has schema :data:`nba.logs.schema.JOINED` and one row per
        decision kept (n rows unless open windows were left out), in the
        order of ``decisions``.

    Raises
    ------
    LogError
        When a table does not conform to its schema or an ``event_id`` repeats.
    """
    sql_engine = get_engine(engine)
    decisions = io.conform(decisions, "decisions")
    outcomes = io.conform(outcomes, "outcomes")
    n = decisions.num_rows
    ids = decisions.column("event_id")
    if pc.count_distinct(ids).as_py() != n:
        vc = pc.value_counts(ids)
        dup = vc.filter(pc.greater(vc.field("counts"), 1))[0]["values"].as_py()
        raise LogError(f"decisions: column 'event_id': {dup!r} appears more than once")
    if not isinstance(open_windows, OpenWindows):
        raise LogError(f"open_windows: expected an OpenWindows member, got {open_windows!r}")
    window_us = round(float(reward_def.window_days) * _US_PER_DAY)
    n_given = outcomes.num_rows
    n_after = n_open = n_open_out = 0
    is_open: pa.ChunkedArray | pa.Array | None = None
    if as_of is not None:
        as_of = parse_as_of(as_of, "as_of")
        as_of_us = (as_of - _EPOCH) // timedelta(microseconds=1)
        after = pc.greater(_ts_us(outcomes.column("ts")), pa.scalar(as_of_us, pa.int64()))
        n_after = _count(after)
        outcomes = outcomes.filter(pc.invert(after))
        d_end = pc.add(_ts_us(decisions.column("ts")), pa.scalar(window_us, pa.int64()))
        is_open = pc.greater(d_end, pa.scalar(as_of_us, pa.int64()))
        n_open = _count(is_open)
        if open_windows is OpenWindows.EXCLUDE and n_open:
            open_ids = decisions.filter(is_open).column("event_id").combine_chunks()
            of_open = pc.is_in(outcomes.column("event_id"), value_set=open_ids)
            n_open_out = _count(of_open)
            outcomes = outcomes.filter(pc.invert(of_open))
            decisions = decisions.filter(pc.invert(is_open))
            n = decisions.num_rows
            ids = decisions.column("event_id")

    d_in = pa.table(
        {
            "row_id": pa.array(np.arange(n, dtype=np.int64)),
            "event_id": ids,
            "ts_us": _ts_us(decisions.column("ts")),
            "chosen_action_id": decisions.column("chosen_action_id"),
            "cost": _action_costs(reward_def, decisions.column("chosen_action_id")),
        }
    )
    o_in = pa.table(
        {
            "event_id": outcomes.column("event_id"),
            "type": outcomes.column("type"),
            "source_id": outcomes.column("source_id"),
            "ts_us": _ts_us(outcomes.column("ts")),
            "value": outcomes.column("value"),
            "action_id": outcomes.column("action_id"),
        }
    )
    w_in = _weights_table(reward_def)
    params = _join_params(reward_def, window_us)
    sql = JOIN_SQL.format(reward=_reward_expr(reward_def))
    slate_col = decisions.column("slate")
    has_slates = slate_col.null_count < n
    statements: list[Statement] = [
        (sql, params),
        (COUNTS_SQL, {"window_us": params["window_us"]}),
    ]
    if has_slates:
        statements.append((NAMED_OUTCOMES_SQL, {}))
    results = sql_engine.run({"decisions": d_in, "outcomes": o_in, "weights": w_in}, statements)
    return _assemble(
        decisions,
        results[0],
        results[1],
        results[2] if has_slates else None,
        outcomes,
        reward_def,
        sql_engine,
        as_of=as_of,
        open_windows=open_windows,
        is_open=is_open,
        n_given=n_given,
        n_after=n_after,
        n_open=n_open,
        n_open_out=n_open_out,
    )


def _weights_table(reward_def: RewardDefinition) -> pa.Table:
    """The join's ``weights`` input: ``type``, ``weight``, ``by_value``, one row per type."""
    return pa.table(
        {
            "type": pa.array(list(reward_def.weights), pa.string()),
            "weight": pa.array(list(reward_def.weights.values()), pa.float64()),
            "by_value": pa.array([t in reward_def.value_types for t in reward_def.weights]),
        }
    )


def _join_params(reward_def: RewardDefinition, window_us: int) -> dict[str, Any]:
    return {"window_us": window_us, "default_reward": float(reward_def.default_reward)}


def _assemble(
    decisions: pa.Table,
    per: pa.Table,
    status_table: pa.Table,
    named: pa.Table | None,
    outcomes: pa.Table | None,
    reward_def: RewardDefinition,
    sql_engine: SqlEngine,
    *,
    as_of: datetime | None,
    open_windows: OpenWindows,
    is_open: pa.ChunkedArray | pa.Array | None,
    n_given: int,
    n_after: int,
    n_open: int,
    n_open_out: int,
) -> JoinResult:
    """The :class:`JoinResult` of a join's SQL results (both paths: Arrow inputs, log read).

    Parameters
    ----------
    decisions : pyarrow.Table
        The decisions joined (:data:`DECISIONS`), n rows, in ``row_id`` order.
    per, status_table, named : pyarrow.Table
        The results of :data:`JOIN_SQL` (n rows, ``row_id`` order),
        :data:`COUNTS_SQL` and (when some decision has a slate)
        :data:`NAMED_OUTCOMES_SQL`.
    outcomes : pyarrow.Table or None
        The outcomes given to the join (:data:`OUTCOMES`); only read to
        delay-correct open windows.
    is_open : array of bool, shape (n,), optional
        Which decisions' windows are open (delay correction only).
    """
    n = decisions.num_rows
    window_us = round(float(reward_def.window_days) * _US_PER_DAY)
    sql = JOIN_SQL.format(reward=_reward_expr(reward_def))
    params = _join_params(reward_def, window_us)
    by_status = _status_counts(status_table)
    slot_rewards: pa.Array = pa.nulls(n, JOINED.field("slot_rewards").type)
    slot_status: dict[str, int] = {}
    if named is not None and decisions.column("slate").null_count < n:
        d_in = pa.table(
            {"event_id": decisions.column("event_id"), "ts_us": _ts_us(decisions.column("ts"))}
        )
        slot_rewards, slot_status = _slot_rewards(
            decisions,
            d_in,
            named,
            per.column("reward"),
            sql,
            params,
            _weights_table(reward_def),
            reward_def,
            sql_engine,
        )
    n_default = int(pc.sum(per.column("reward_is_default").cast(pa.int64())).as_py() or 0)
    n_dedup = sum(by_status.values())
    table = decisions
    for name in ("reward", "n_outcomes", "n_late_outcomes", "reward_is_default"):
        field = JOINED.field(name)
        table = table.append_column(field, per.column(name).cast(field.type))
    table = table.append_column(
        JOINED.field("reward_definition"), pa.array([reward_def.id] * n, pa.string())
    )
    table = table.append_column(JOINED.field("slot_rewards"), slot_rewards)
    n_slot_all = sum(slot_status.get(k, 0) for k in ("used", "late", "early"))
    counts = JoinCounts(
        decisions=n,
        outcomes=n_given,
        outcomes_used=by_status.get("used", 0),
        late_outcomes=by_status.get("late", 0) + slot_status.get("late", 0),
        duplicate_outcomes=n_given - n_after - n_open_out - n_dedup,
        unknown_event_outcomes=by_status.get("unknown", 0),
        early_outcomes=by_status.get("early", 0) + slot_status.get("early", 0),
        default_decisions=n_default,
        other_action_outcomes=by_status.get("other_action", 0) - n_slot_all,
        slot_outcomes=slot_status.get("used", 0),
        open_window_decisions=n_open,
        open_window_outcomes=n_open_out,
        outcomes_after_as_of=n_after,
    )
    if open_windows is OpenWindows.DELAY_CORRECTED and as_of is not None and n_open:
        assert outcomes is not None and is_open is not None
        as_of_us = (as_of - _EPOCH) // timedelta(microseconds=1)
        table, n_closed = _delay_correct(
            table, outcomes, reward_def, is_open, as_of_us, window_us, sql_engine
        )
        counts = dataclasses.replace(counts, delay_closed_decisions=n_closed)
    return JoinResult(
        table=table.cast(JOINED),
        counts=counts,
        reward_definition=reward_def.id,
        as_of=as_of,
        as_of_basis="as_of given" if as_of is not None else "outcomes complete",
        open_windows=open_windows,
    )


def _status_counts(table: pa.Table) -> dict[str, int]:
    """``{status: n}`` of a :data:`COUNTS_SQL` result."""
    return {
        str(k): int(c)
        for k, c in zip(
            table.column("status").to_pylist(), table.column("n").to_pylist(), strict=True
        )
    }


def _action_costs(reward_def: RewardDefinition, action_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Cost of each action under ``reward_def`` (0 for a null), shape (n,), looked
    up once per distinct action."""
    if not reward_def.costs:
        return pa.array(np.zeros(len(action_ids)), pa.float64())
    if isinstance(action_ids, pa.ChunkedArray):
        action_ids = action_ids.combine_chunks()
    enc = pc.dictionary_encode(action_ids)
    each = np.array(
        [0.0] + [reward_def.cost_of(a) for a in enc.dictionary.to_pylist()], dtype=np.float64
    )
    codes = pc.fill_null(pc.add(enc.indices.cast(pa.int64()), 1), 0)
    return pa.array(each[np.asarray(codes.to_numpy(), dtype=np.int64)])


def _slot_rewards(
    decisions: pa.Table,
    d_in: pa.Table,
    named: pa.Table,
    reward: pa.ChunkedArray,
    sql: str,
    params: dict[str, Any],
    weights: pa.Table,
    reward_def: RewardDefinition,
    sql_engine: SqlEngine,
) -> tuple[pa.Array, dict[str, int]]:
    """Rewards of every slot of each decision's slate, and the slot outcomes by status.

    Each slot ``j >= 2`` is joined like a decision of its own, keyed
    ``event_id + SEP + action_id``, to the de-duplicated outcomes naming that
    action (``named``), with :data:`JOIN_SQL` itself: the same window, types,
    values and default. Slot 1 is the decision's ``reward``.

    Parameters
    ----------
    decisions : pyarrow.Table
        n rows, with ``slate``.
    d_in : pyarrow.Table
        The join's decision input (``row_id``, ``event_id``, ``ts_us``), n rows.
    named : pyarrow.Table
        De-duplicated outcomes with an ``action_id`` (:data:`NAMED_OUTCOMES_SQL`).
    reward : pyarrow.ChunkedArray, shape (n,)
        Slot 1's reward of each decision.
    reward_def : RewardDefinition
        The join's definition: a slot's reward is net of its own action's cost.
    sql_engine : SqlEngine
        The engine that ran the decisions' join.

    Returns
    -------
    slot_rewards : pyarrow.Array, shape (n,)
        A list per decision with a slate (its length), null for the others.
    status : dict of str to int
        Counts of slot outcomes ``used``, ``late`` and ``early``.
    """
    slots = _SlateSlots(decisions.column("slate"))
    later = slots.position > 0  # slot 1 is the decision's own reward
    row = slots.row[later]
    slot_action = slots.action_ids.filter(pa.array(later))
    # a slot without an action id is keyed by the text Python writes for None
    named_as = pc.fill_null(slot_action, "None")
    event_ids = d_in.column("event_id").combine_chunks().take(pa.array(row))
    ts_us = np.asarray(d_in.column("ts_us").to_numpy(), dtype=np.int64)
    s_in = pa.table(
        {
            "row_id": pa.array(np.arange(len(row), dtype=np.int64)),
            "event_id": pc.binary_join_element_wise(event_ids, named_as, _SLOT_KEY_SEP),
            "ts_us": pa.array(ts_us[row]),
            "chosen_action_id": slot_action,
            # a slot's reward, like slot 1's, is net of its own action's channel cost
            "cost": _action_costs(reward_def, slot_action),
        }
    )
    sep = pa.array([_SLOT_KEY_SEP] * named.num_rows, pa.string())
    o_key = pc.binary_join_element_wise(named.column("event_id"), named.column("action_id"), sep)
    o_in = named.set_column(0, "event_id", o_key)
    per, counted = sql_engine.run(
        {"decisions": s_in, "outcomes": o_in, "weights": weights},
        [(sql, params), (COUNTS_SQL, {"window_us": params["window_us"]})],
    )
    status = {k: c for k, c in _status_counts(counted).items() if k in ("used", "late", "early")}
    values = np.empty(len(slots.row), dtype=np.float64)
    first = np.asarray(reward.to_numpy(), dtype=np.float64)
    values[~later] = first[slots.row[~later]]
    values[later] = np.asarray(per.column("reward").to_numpy(), dtype=np.float64)
    return slots.lists(values, JOINED.field("slot_rewards").type), status


class _SlateSlots:
    """The slots of every decision's slate, flattened in row and slot order.

    A null or empty slate has no slots (and gets a null list back).

    Parameters
    ----------
    slate : pyarrow.ChunkedArray or pyarrow.Array, shape (n,)
        Lists of :data:`SLATE_SLOT` structs.

    Attributes
    ----------
    row : numpy.ndarray of int64, shape (m,)
        The decision of each slot.
    position : numpy.ndarray of int64, shape (m,)
        Its place in the slate (0 for slot 1).
    action_ids : pyarrow.StringArray, shape (m,)
        Its action.
    """

    def __init__(self, slate: pa.ChunkedArray | pa.Array) -> None:
        lists = slate.combine_chunks() if isinstance(slate, pa.ChunkedArray) else slate
        self.length = np.asarray(
            pc.fill_null(pc.list_value_length(lists), 0).to_numpy(), dtype=np.int64
        )
        n, m = len(self.length), int(self.length.sum())
        starts = np.cumsum(self.length) - self.length
        self.row = np.repeat(np.arange(n, dtype=np.int64), self.length)
        self.position = np.arange(m, dtype=np.int64) - np.repeat(starts, self.length)
        # list_flatten skips the children a null list may still span
        self.action_ids = pc.struct_field(pc.list_flatten(lists), "action_id")

    def lists(self, values: npt.NDArray[np.float64], type_: pa.DataType) -> pa.Array:
        """``values`` (shape (m,), one per slot) as one list per decision, null where
        the slate was null or empty; shape (n,)."""
        offsets = np.zeros(len(self.length) + 1, dtype=np.int32)
        np.cumsum(self.length, out=offsets[1:])
        empty = pa.array(self.length == 0)
        return pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(values, pa.float64()), type=type_, mask=empty
        )


def _delay_correct(
    table: pa.Table,
    outcomes: pa.Table,
    reward_def: RewardDefinition,
    is_open: pa.ChunkedArray | pa.Array,
    as_of_us: int,
    window_us: int,
    sql_engine: SqlEngine,
) -> tuple[pa.Table, int]:
    """Replace the partial rewards of the open rows of ``table`` (JOINED, n rows;
    ``is_open`` shape (n,)) by delay-corrected ones; returns the table and the
    number of closed decisions the correction was estimated from."""
    from nba.delay import DelayCorrection

    open_np = np.asarray(pc.fill_null(is_open, False).to_numpy(zero_copy_only=False), dtype=bool)
    ts = np.asarray(_ts_us(table.column("ts")).to_numpy(), dtype=np.int64)
    reward = np.asarray(table.column("reward").to_numpy(), dtype=np.float64).copy()
    channel_names = [a.rpartition("@")[2] for a in table.column("chosen_action_id").to_pylist()]
    channels = sorted(set(channel_names))
    ch = np.array([channels.index(c) for c in channel_names], dtype=np.int64)
    age = (as_of_us - ts) // _US_PER_DAY  # whole days the open decisions have been out
    closed_idx = np.flatnonzero(~open_np)
    closed = table.take(pa.array(closed_idx)).select(list(DECISIONS_NAMES))
    c_ids = closed.column("event_id").combine_chunks()
    mine = pc.is_in(outcomes.column("event_id"), value_set=c_ids)
    c_out = outcomes.filter(mine)
    d_ts = dict(zip(c_ids.to_pylist(), ts[closed_idx].tolist(), strict=True))
    o_age = np.asarray(_ts_us(c_out.column("ts")).to_numpy(), dtype=np.int64) - np.array(
        [d_ts[e] for e in c_out.column("event_id").to_pylist()], dtype=np.int64
    )
    for a in np.unique(age[open_np]):
        cut = int(a) * _US_PER_DAY
        partial_closed = join_rewards(
            closed, c_out.filter(pa.array(o_age < cut)), reward_def, engine=sql_engine
        ).table.column("reward")
        corr = DelayCorrection(channels)
        corr.observe(
            ch[closed_idx],
            np.asarray(partial_closed.to_numpy(), dtype=np.float64),
            reward[closed_idx],
        )
        rows = np.flatnonzero(open_np & (age == a))
        reward[rows] = np.round(corr.label(ch[rows], reward[rows]), 12)
    field = JOINED.field("reward")
    i = table.schema.get_field_index("reward")
    return table.set_column(i, field, pa.array(reward, field.type)), int(closed_idx.size)


def _upper_bound(until: date | datetime) -> datetime:
    if isinstance(until, datetime):
        if until.tzinfo is None:
            raise LogError(f"until {until!r} must be timezone-aware")
        return until.astimezone(UTC)
    return datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)


def _max_ts(root: Path, table: str, engine: SqlEngine | None = None) -> datetime | None:
    """The latest ``ts`` of log table ``table``, read by ``engine`` (default: pyarrow)."""
    files = io.part_files(root, table)
    if not files:
        return None
    if engine is None:
        ts = io.read(root, table, columns=["ts"]).column("ts")
        value = pc.max(ts).as_py() if len(ts) else None
        return None if value is None else value.astimezone(UTC)
    from nba.logs.engine import ParquetSource

    got = engine.run_parquet(
        {"t": ParquetSource(tuple(files), TABLES[table])},
        {},
        [],
        [("SELECT MAX(epoch_us(ts)) AS us FROM t", {})],
    )[0]
    us = got.column("us")[0].as_py()
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def default_as_of(
    logs_dir: str | Path, engine: SqlEngine | None = None
) -> tuple[datetime | None, str]:
    """The horizon a join of ``logs_dir`` uses when none is given, and its basis.

    1. ``manifest.json``'s ``as_of`` when the writer recorded one (a store
       export: its export time; the simulator: the end of its last day with
       ``--horizon-cut``, else the time by which every window it wrote has
       closed, its outcomes being complete);
    2. else the latest outcome time the directory holds;
    3. else (no outcomes at all) the latest decision time.

    ``(None, basis)`` means no horizon: the manifest declares
    ``outcomes_complete`` (or the directory holds no events at all).
    ``engine`` reads the latest times from the Parquet files (default: pyarrow).

    Raises
    ------
    LogError
        When ``manifest.json`` is not JSON or its ``as_of`` is not an aware
        ISO 8601 datetime.
    """
    root = Path(logs_dir)
    data = read_manifest(root)
    if data.get(MANIFEST_OUTCOMES_COMPLETE) is True:
        return None, f"outcomes complete ({data.get('writer', 'writer')}), from manifest.json"
    recorded = manifest_as_of(root)
    if recorded is not None:
        basis = str(data.get(MANIFEST_AS_OF_BASIS) or "recorded")
        return recorded, f"{basis}, from manifest.json"
    last = _max_ts(root, "outcomes", engine)
    if last is not None:
        return last, "latest outcome in the log"
    last = _max_ts(root, "decisions", engine)
    return last, "latest decision in the log; it holds no outcomes"


def load_joined(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    activated_only: bool = True,
    as_of: str | date | datetime | None = None,
    open_windows: OpenWindows = OpenWindows.EXCLUDE,
    columns: Sequence[str] | None = None,
    engine: str | SqlEngine | None = None,
    read_on_engine: bool | None = None,
    extra_sql: Sequence[Statement] = (),
) -> JoinResult:
    """Read decisions and outcomes from a log directory and join them.

    Parameters
    ----------
    logs_dir : path
        A log directory (layout in :mod:`nba.logs.schema`).
    reward_def : RewardDefinition
    since, until : date or aware datetime, optional
        Select decisions as :func:`nba.logs.io.read` does (``since`` inclusive;
        ``until`` inclusive for a date, exclusive for a datetime). Outcomes are
        read from ``since`` up to the end of the window of the last possible
        decision, so late outcomes are counted only up to that horizon.
    activated_only : bool
        Keep only decisions with ``activated`` true (deferred decisions that
        were never activated did not reach the HCP).
    as_of : date, aware datetime or str, optional
        The horizon (see :func:`parse_as_of`; a date means its last
        microsecond); default :func:`default_as_of`.
    open_windows : OpenWindows
        What to do with decisions whose window is open at ``as_of``.
    columns : sequence of str, optional
        The decision columns wanted in the result (default: all). The others
        are not read and are absent from ``table`` (the join's own columns are
        always there), so a caller that reads large columns such as
        ``context`` later, a day at a time, never holds all of them at once.
    engine : str or SqlEngine, optional
        Where the join's SQL runs (see :func:`join_rewards`).
    read_on_engine : bool, optional
        True: the engine reads the log's Parquet files itself and selects in SQL
        (:func:`join_log`), so on a cluster no log row passes through the
        driver before the join. False: pyarrow reads the log here and the
        join's inputs are handed to the engine. Default: the engine reads for
        Spark; for DuckDB pyarrow reads, which is faster on one machine
        (``bench/join_read.py``). Both give the same result (tested).
    extra_sql : sequence of (str, mapping), optional
        Statements (DuckDB SQL and parameters, as :meth:`SqlEngine.run` takes)
        over a table ``joined``: the joined rows (the wanted decision columns,
        ``reward``, ``n_outcomes``, ``n_late_outcomes``, ``reward_is_default``)
        and ``row_id``, whose order is the result's. The engine runs them where
        the joined table is: in the same call as the join when it reads the log
        itself (on Spark, before anything is collected; delay-corrected rewards
        excepted, which are corrected here), else over the returned table.
        Their results are ``extra_results`` (e.g. the OPE arrays and checks of
        :func:`nba.ope.logs.ope_statements`).

    Returns
    -------
    JoinResult
        Outcomes of logged decisions that were not selected are set aside and
        counted as ``unselected_outcomes``, not as unknown.
    """
    sql_engine = get_engine(engine)
    if read_on_engine is None:
        read_on_engine = sql_engine.name != "duckdb"
    root = Path(logs_dir)
    if not (root / "decisions").is_dir():
        raise LogError(f"{root}: not a log directory (no 'decisions' table)")
    if as_of is not None:
        horizon: datetime | None = parse_as_of(as_of)
        basis = "given with --as-of"
    else:
        horizon, basis = default_as_of(root, sql_engine if read_on_engine else None)
    wanted = None
    if columns is not None:
        unknown = sorted(set(columns) - set(DECISIONS_NAMES))
        if unknown:
            raise LogError(f"columns: {unknown[0]!r} is not a decisions column")
        wanted = [c for c in DECISIONS_NAMES if c in set(columns) | _JOIN_READS]
    if read_on_engine:
        if not isinstance(open_windows, OpenWindows):
            raise LogError(f"open_windows: expected an OpenWindows member, got {open_windows!r}")
        result, n_read, n_unselected = join_log(
            root,
            reward_def,
            since,
            until,
            activated_only,
            horizon,
            open_windows,
            wanted,
            sql_engine,
            extra_sql=extra_sql,
        )
    else:
        result, n_read, n_unselected = _join_read_here(
            root,
            reward_def,
            since,
            until,
            activated_only,
            horizon,
            open_windows,
            wanted,
            sql_engine,
        )
    counts = dataclasses.replace(result.counts, outcomes=n_read, unselected_outcomes=n_unselected)
    if wanted is not None:
        t = result.table
        result = dataclasses.replace(
            result,
            table=t.select([c for c in t.column_names if c in wanted or c not in DECISIONS_NAMES]),
        )
    if len(result.extra_results) != len(extra_sql):  # not run with the join: over its result
        t = result.table
        joined = t.append_column("row_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
        result = dataclasses.replace(
            result, extra_results=tuple(sql_engine.run({"joined": joined}, list(extra_sql)))
        )
    return dataclasses.replace(result, counts=counts, as_of_basis=basis)


#: decision columns the join itself reads (see :func:`join_rewards`)
_JOIN_READS = frozenset({"event_id", "ts", "chosen_action_id", "slate", "activated"})


def _join_read_here(
    root: Path,
    reward_def: RewardDefinition,
    since: date | datetime | None,
    until: date | datetime | None,
    activated_only: bool,
    horizon: datetime | None,
    open_windows: OpenWindows,
    wanted: list[str] | None,
    sql_engine: SqlEngine,
) -> tuple[JoinResult, int, int]:
    """The join of :func:`load_joined` with pyarrow reading the log in this process and
    Python selecting; returns the result, the outcomes read and the unselected ones.

    The outcomes are read in a thread while this one reads the decisions: Parquet
    decoding releases the GIL, and while ``nba train`` joins, the other core has
    nothing else to do (VW waits for its first examples)."""
    o_until: datetime | None = None
    if until is not None:
        o_until = _upper_bound(until) + timedelta(days=float(reward_def.window_days))
    with ThreadPoolExecutor(1, thread_name_prefix="read-outcomes") as pool:
        outcomes_read = pool.submit(io.read, root, "outcomes", since=since, until=o_until)
        decisions = io.read(root, "decisions", since=since, until=until, columns=wanted)
        outcomes = outcomes_read.result()
    if wanted is not None:
        # the unread columns hold placeholders through the join, then are dropped
        for f in DECISIONS:
            if f.name not in wanted:
                decisions = decisions.append_column(f, _placeholder(f, decisions.num_rows))
    # every decision of the log is selected when no range is given: the ids read
    # above are then the log's, not read a second time
    whole_log = since is None and until is None
    all_ids = decisions.column("event_id") if whole_log else None
    if activated_only and not pc.all(decisions.column("activated")).as_py():
        # (a filter copies every column, the contexts too: only when it drops rows)
        decisions = decisions.filter(decisions.column("activated"))
        whole_log = False
    n_read = outcomes.num_rows
    n_unselected = 0
    if not whole_log:  # (else every logged decision is selected: none is unselected)
        if all_ids is None:
            all_ids = io.read(root, "decisions", columns=["event_id"]).column("event_id")
        logged = pc.is_in(outcomes.column("event_id"), value_set=all_ids.combine_chunks())
        selected = pc.is_in(
            outcomes.column("event_id"), value_set=decisions.column("event_id").combine_chunks()
        )
        unselected = pc.and_(logged, pc.invert(selected))
        n_unselected = int(pc.sum(unselected.cast(pa.int64())).as_py() or 0)
        if n_unselected:
            outcomes = outcomes.filter(pc.invert(unselected))
    result = join_rewards(
        decisions,
        outcomes,
        reward_def,
        as_of=horizon,
        open_windows=open_windows,
        engine=sql_engine,
    )
    return result, n_read, n_unselected


def _placeholder(field: pa.Field, n: int) -> pa.Array:
    """n values of ``field``'s type that are never read: empty strings and lists,
    zeros, false, else nulls."""
    t = field.type
    if n == 0:
        return pa.array([], t)
    if pa.types.is_list(t):
        # n empty lists from their offsets (all zero): a repeated list scalar cost
        # 50-300 ms per column at 195,553 rows, this a fraction of a millisecond
        offsets = pa.array(np.zeros(n + 1, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array([], t.value_type), type=t)
    value: Any
    if pa.types.is_string(t):
        value = ""
    elif pa.types.is_boolean(t):
        value = False
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        value = 0
    else:
        return pa.nulls(n, t)
    return pa.repeat(pa.scalar(value, t), n)


#: ``as_of`` in microseconds when there is none: no window is open, no outcome after it.
_NO_HORIZON_US = 2**62
#: Row ids of a log read by the engine: the file's number times this, plus the row's
#: index in its file (the order :func:`nba.logs.io.read` gives, without a global sort).
_FILE_STRIDE = 2**40

#: The selection of a log directory read by the engine, as views over the Parquet
#: inputs ``decisions_log`` (the part files of the selected days), ``decision_ids``
#: (every decisions part file; only ``event_id`` is read), ``outcomes_log`` and the
#: Arrow inputs ``files`` (``file_key``, ``file_no``) and ``costs`` (``channel``,
#: ``cost``). ``{...}`` are integers (microseconds), the SQL of a condition, or
#: the decision columns wanted. Without a date range, ``decision_ids`` is
#: ``decisions_log`` (the same files, read once).
LOG_VIEWS: tuple[tuple[str, str], ...] = (
    (
        "d_sel",
        """
SELECT {d_cols}, epoch_us(d.ts) AS ts_us,
    f.file_no * {file_stride} + d.nba_row AS row_id,
    epoch_us(d.ts) + {window_us} > {as_of_us} AS is_open
FROM decisions_log AS d
JOIN files AS f ON regexp_extract(d.nba_file, '[^/]+/[^/]+$', 0) = f.file_key
WHERE epoch_us(d.ts) >= {lo_us} AND epoch_us(d.ts) < {hi_us} AND {activated}
""",
    ),
    (
        "o_flag",
        """
SELECT o.event_id, o.ts, o.type, o.value, o.source, o.source_id, o.action_id,
    epoch_us(o.ts) AS ts_us, o.nba_file, o.nba_row,
    a.event_id IS NOT NULL AND s.event_id IS NULL AS unselected,
    COALESCE(s.is_open, FALSE) AS of_open
FROM outcomes_log AS o
LEFT JOIN (SELECT DISTINCT event_id FROM decision_ids) AS a ON a.event_id = o.event_id
LEFT JOIN (SELECT event_id, is_open FROM d_sel) AS s ON s.event_id = o.event_id
WHERE epoch_us(o.ts) >= {o_lo_us} AND epoch_us(o.ts) < {o_hi_us}
""",
    ),
    (
        "o_kept",
        """
SELECT * FROM o_flag
WHERE NOT unselected AND ts_us <= {as_of_us} AND NOT ({exclude_open} AND of_open)
""",
    ),
    (
        "decisions",
        """
SELECT d.row_id, d.event_id, d.ts_us, d.chosen_action_id, COALESCE(c.cost, 0.0) AS cost
FROM d_sel AS d
LEFT JOIN costs AS c ON regexp_extract(d.chosen_action_id, '[^@]*$', 0) = c.channel
WHERE NOT ({exclude_open} AND d.is_open)
""",
    ),
    (
        "outcomes",
        "SELECT event_id, type, source_id, ts_us, value, action_id FROM o_kept",
    ),
)

#: What the selection counted: outcomes read, unselected, after ``as_of`` and of
#: decisions with open windows (those left out), and the open decisions. One pass
#: over each view (on Spark each scalar subquery was a job of its own).
LOG_COUNTS_SQL = """
SELECT o.n_read, o.n_unselected, o.n_after, o.n_open_out, d.n_open, d.n_kept
FROM (
    SELECT COUNT(*) AS n_read,
        COALESCE(SUM(CASE WHEN unselected THEN 1 ELSE 0 END), 0) AS n_unselected,
        COALESCE(SUM(CASE WHEN NOT unselected AND ts_us > $as_of_us THEN 1 ELSE 0 END), 0)
            AS n_after,
        COALESCE(SUM(CASE WHEN NOT unselected AND ts_us <= $as_of_us AND of_open
            AND $exclude_open = 1 THEN 1 ELSE 0 END), 0) AS n_open_out
    FROM o_flag
) AS o
CROSS JOIN (
    SELECT COALESCE(SUM(CASE WHEN is_open THEN 1 ELSE 0 END), 0) AS n_open,
        COALESCE(SUM(CASE WHEN NOT ($exclude_open = 1 AND is_open) THEN 1 ELSE 0 END), 0)
            AS n_kept
    FROM d_sel
) AS d
"""

#: :data:`NAMED_OUTCOMES_SQL` over the selection, empty unless a decision kept has a slate.
LOG_NAMED_SQL = f"""
SELECT * FROM ({NAMED_OUTCOMES_SQL}) AS named
WHERE (
    SELECT COUNT(*) FROM d_sel WHERE slate IS NOT NULL AND NOT ($exclude_open = 1 AND is_open)
) > 0
"""

#: The first ``event_id`` selected more than once (none: an empty result).
LOG_DUPLICATE_SQL = """
SELECT event_id FROM d_sel GROUP BY event_id HAVING COUNT(*) > 1 ORDER BY event_id LIMIT 1
"""


def _us(ts: datetime | None, default: int) -> int:
    return default if ts is None else (ts - _EPOCH) // timedelta(microseconds=1)


def join_log(
    root: Path,
    reward_def: RewardDefinition,
    since: date | datetime | None,
    until: date | datetime | None,
    activated_only: bool,
    as_of: datetime | None,
    open_windows: OpenWindows,
    wanted: Sequence[str] | None,
    sql_engine: SqlEngine,
    extra_sql: Sequence[Statement] = (),
) -> tuple[JoinResult, int, int]:
    """The join of a log directory, the engine reading its Parquet files itself.

    The driver lists the part files (and reads nothing else); the selection
    (``since``/``until``, activated decisions, the ``as_of`` horizon, open
    windows, outcomes of unselected decisions) is the SQL of :data:`LOG_VIEWS`,
    the join :data:`JOIN_SQL` and its companions over those views, all run by
    ``sql_engine`` in one call. Only the results come back: the selected
    decisions (the ``wanted`` columns), the per-decision rewards and the counts.
    Same result as :func:`join_rewards` over :func:`nba.logs.io.read`'s tables.
    ``extra_sql`` (see :func:`load_joined`) runs in the same call, over a view
    ``joined`` of the selected decisions and their rewards, unless the rewards
    are delay-corrected (then ``extra_results`` is left empty).

    Returns
    -------
    result : JoinResult
        ``counts.outcomes`` counts the outcomes given to the join (as
        :func:`join_rewards` does); the caller sets the read total.
    n_read : int
        Outcome rows read (in the outcomes' time range).
    n_unselected : int
        Outcomes of logged decisions that were not selected.
    """
    from nba.logs.engine import ParquetSource
    from nba.logs.schema import OUTCOMES

    lo, hi = io.time_bounds(since, until)
    o_hi: datetime | None = None
    if until is not None:
        o_hi = _upper_bound(until) + timedelta(days=float(reward_def.window_days))
    d_files = io.part_files_between(root, "decisions", lo, hi)
    all_files = io.part_files(root, "decisions")
    o_files = io.part_files_between(root, "outcomes", lo, o_hi)
    window_us = round(float(reward_def.window_days) * _US_PER_DAY)
    as_of_us = _NO_HORIZON_US if as_of is None else _us(as_of, 0)
    exclude = open_windows is OpenWindows.EXCLUDE
    cols = list(DECISIONS_NAMES) if wanted is None else list(wanted)
    fmt = {
        "file_stride": _FILE_STRIDE,
        "window_us": window_us,
        "as_of_us": as_of_us,
        "lo_us": _us(lo, -_NO_HORIZON_US),
        "hi_us": _us(hi, _NO_HORIZON_US),
        "o_lo_us": _us(lo, -_NO_HORIZON_US),
        "o_hi_us": _us(o_hi, _NO_HORIZON_US),
        "activated": "d.activated" if activated_only else "TRUE",
        "exclude_open": "TRUE" if exclude else "FALSE",
        "d_cols": ", ".join(f"d.{c}" for c in cols),
    }
    views = [(name, sql.format(**fmt)) for name, sql in LOG_VIEWS]
    sources = {
        "decisions_log": ParquetSource(tuple(d_files), DECISIONS),
        "outcomes_log": ParquetSource(tuple(o_files), OUTCOMES),
    }
    if d_files == all_files:
        views.insert(0, ("decision_ids", "SELECT event_id FROM decisions_log"))
    else:
        sources["decision_ids"] = ParquetSource(tuple(all_files), DECISIONS)
    files = pa.table(
        {
            "file_key": pa.array([f"{f.parent.name}/{f.name}" for f in all_files], pa.string()),
            "file_no": pa.array(np.arange(len(all_files), dtype=np.int64)),
        }
    )
    costs = pa.table(
        {
            "channel": pa.array(list(reward_def.costs), pa.string()),
            "cost": pa.array([float(c) for c in reward_def.costs.values()], pa.float64()),
        }
    )
    params = _join_params(reward_def, window_us)
    sql = JOIN_SQL.format(reward=_reward_expr(reward_def))
    # the join as a view (computed once), which the extra statements read too
    views.append(("rewards", _inline_params(sql[: sql.rindex("ORDER BY")], params)))
    statements: list[Statement] = [
        (LOG_DUPLICATE_SQL, {}),
        (LOG_COUNTS_SQL, {"as_of_us": as_of_us, "exclude_open": int(exclude)}),
        (
            "SELECT " + ", ".join(cols) + " FROM d_sel "
            "WHERE NOT ($exclude_open = 1 AND is_open) ORDER BY row_id",
            {"exclude_open": int(exclude)},
        ),
        ("SELECT * FROM rewards ORDER BY row_id", {}),
        (COUNTS_SQL, {"window_us": window_us}),
        (LOG_NAMED_SQL, {"exclude_open": int(exclude)}),
    ]
    delay = open_windows is OpenWindows.DELAY_CORRECTED and as_of is not None
    n_extra = 0 if open_windows is OpenWindows.DELAY_CORRECTED else len(extra_sql)
    if n_extra:
        views.append(
            (
                "joined",
                f"SELECT {fmt['d_cols']}, d.row_id, r.reward, r.n_outcomes, r.n_late_outcomes, "
                "r.reward_is_default FROM d_sel AS d JOIN rewards AS r ON r.row_id = d.row_id",
            )
        )
    if delay:
        statements.append(
            (
                "SELECT d.is_open FROM d_sel AS d ORDER BY d.row_id",
                {},
            )
        )
        statements.append(
            ("SELECT " + ", ".join(OUTCOMES.names) + " FROM o_kept ORDER BY nba_file, nba_row", {})
        )
    first_extra = len(statements)
    statements.extend(list(extra_sql)[:n_extra])
    results = sql_engine.run_parquet(
        sources,
        {"files": files, "costs": costs, "weights": _weights_table(reward_def)},
        views,
        statements,
    )
    dup = results[0].column("event_id").to_pylist()
    if dup:
        raise LogError(f"decisions: column 'event_id': {dup[0]!r} appears more than once")
    counted = {k: int(v[0] or 0) for k, v in results[1].to_pydict().items()}
    decisions = results[2]
    n = decisions.num_rows
    # the unread columns hold placeholders (dropped by the caller)
    decisions = pa.table(
        {
            f.name: decisions.column(f.name) if f.name in cols else _placeholder(f, n)
            for f in DECISIONS
        }
    )
    decisions = io.conform(decisions, "decisions")
    n_given = counted["n_read"] - counted["n_unselected"]
    result = _assemble(
        decisions,
        results[3],
        results[4],
        results[5],
        results[7].cast(OUTCOMES) if delay else None,
        reward_def,
        sql_engine,
        as_of=as_of,
        open_windows=open_windows,
        is_open=results[6].column("is_open") if delay else None,
        n_given=n_given,
        n_after=counted["n_after"],
        n_open=counted["n_open"],
        n_open_out=counted["n_open_out"],
    )
    if n_extra:
        result = dataclasses.replace(result, extra_results=tuple(results[first_extra:]))
    return result, counted["n_read"], counted["n_unselected"]


def _inline_params(sql: str, params: dict[str, Any]) -> str:
    """``sql`` with each ``$name`` written as its value, for a view (views take no
    parameters): an integer as itself, a float as ``CAST('<repr>' AS DOUBLE)``,
    which both engines parse to the same double.

    >>> _inline_params("SELECT $w + $d", {"w": 3, "d": 0.1})
    "SELECT 3 + CAST('0.1' AS DOUBLE)"
    """

    def value(m: re.Match[str]) -> str:
        v = params[m.group(1)]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise LogError(f"SQL parameter ${m.group(1)}: expected an int or a float, got {v!r}")
        return str(v) if isinstance(v, int) else f"CAST('{float(v)!r}' AS DOUBLE)"

    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", value, sql)
