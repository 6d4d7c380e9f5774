"""Join decisions to their outcomes: one reward per decision (docs/DESIGN.md, "Data contracts").

The join runs in DuckDB (embedded). Its SQL uses only ANSI constructs (CTEs,
``GROUP BY``, ``LEFT JOIN``, ``CASE``, ``COALESCE``, ``LEAST``/``GREATEST``,
``ROUND``) over integer microsecond timestamps, so the same statement runs on a
cluster engine (Spark SQL, Trino, BigQuery) once the three inputs are tables
there.

Semantics, for a reward definition with window ``W``:

1. Outcomes are de-duplicated on ``(event_id, type, source_id)``; of the copies
   the earliest is kept. Removed copies are counted (``duplicate_outcomes``).
   The key does not include ``action_id``: a writer reporting the same type
   about two suggestions gives them distinct ``source_id`` values (the service
   appends ``|<action_id>`` for a suggestion other than the chosen one).
2. Each remaining outcome is classified against its decision:

   - ``unknown``: no decision with that ``event_id`` (``unknown_event_outcomes``),
   - ``other_action``: its ``action_id`` names an action other than the
     decision's ``chosen_action_id`` (``other_action_outcomes``): a rep's
     feedback or an HCP's response about another suggestion of the same
     decision. It is kept in the log but never credited to the chosen action,
     whatever its time,
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
   ``source_id``).

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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nba.logs import io
from nba.logs.io import LogError
from nba.logs.schema import JOINED
from nba.reward import RewardDefinition

_US_PER_DAY = 86_400 * 1_000_000

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
    CASE WHEN agg.row_id IS NULL THEN $default_reward ELSE {reward} END AS reward,
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


@dataclass(frozen=True)
class JoinCounts:
    """What the join did with its inputs.

    ``outcomes == outcomes_used + late_outcomes + early_outcomes
    + unknown_event_outcomes + duplicate_outcomes + unselected_outcomes
    + other_action_outcomes``.

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
        chosen one (kept, never credited).
    unselected_outcomes : int
        :func:`load_joined` only: outcomes of logged decisions that were not
        selected (outside ``since``/``until`` or not activated).
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

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


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
    """

    table: pa.Table
    counts: JoinCounts
    reward_definition: str


def _ts_us(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    return pc.cast(col, pa.int64())


def _reward_expr(reward_def: RewardDefinition) -> str:
    agg = {"sum": "agg.s", "max": "agg.m"}[reward_def.aggregation]
    if reward_def.clip is not None:
        lo, hi = reward_def.clip
        agg = f"LEAST(GREATEST({agg}, {lo!r}), {hi!r})"
    return f"ROUND({agg}, 12)"


def join_rewards(
    decisions: pa.Table, outcomes: pa.Table, reward_def: RewardDefinition
) -> JoinResult:
    """One reward per decision from its outcomes (semantics in the module docstring).

    Parameters
    ----------
    decisions : pyarrow.Table
        Conforming to :data:`nba.logs.schema.DECISIONS`, ``event_id`` unique; n rows.
    outcomes : pyarrow.Table
        Conforming to :data:`nba.logs.schema.OUTCOMES`; any number of rows.
    reward_def : RewardDefinition

    Returns
    -------
    JoinResult
        ``table`` has schema :data:`nba.logs.schema.JOINED` and n rows, in the
        order of ``decisions``.

    Raises
    ------
    LogError
        When a table does not conform to its schema or an ``event_id`` repeats.
    """
    decisions = io.conform(decisions, "decisions")
    outcomes = io.conform(outcomes, "outcomes")
    n = decisions.num_rows
    ids = decisions.column("event_id")
    if pc.count_distinct(ids).as_py() != n:
        vc = pc.value_counts(ids)
        dup = vc.filter(pc.greater(vc.field("counts"), 1))[0]["values"].as_py()
        raise LogError(f"decisions: column 'event_id': {dup!r} appears more than once")

    d_in = pa.table(
        {
            "row_id": pa.array(np.arange(n, dtype=np.int64)),
            "event_id": ids,
            "ts_us": _ts_us(decisions.column("ts")),
            "chosen_action_id": decisions.column("chosen_action_id"),
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
    w_in = pa.table(
        {
            "type": pa.array(list(reward_def.weights), pa.string()),
            "weight": pa.array(list(reward_def.weights.values()), pa.float64()),
            "by_value": pa.array([t in reward_def.value_types for t in reward_def.weights]),
        }
    )
    params: dict[str, Any] = {
        "window_us": round(float(reward_def.window_days) * _US_PER_DAY),
        "default_reward": float(reward_def.default_reward),
    }
    con = duckdb.connect(":memory:")
    try:
        con.register("decisions", d_in)
        con.register("outcomes", o_in)
        con.register("weights", w_in)
        sql = JOIN_SQL.format(reward=_reward_expr(reward_def))
        per = con.sql(sql, params=params).to_arrow_table()
        status_rows = con.execute(COUNTS_SQL, {"window_us": params["window_us"]}).fetchall()
    finally:
        con.close()

    by_status = {str(s): int(c) for s, c in status_rows}
    n_default = int(pc.sum(per.column("reward_is_default").cast(pa.int64())).as_py() or 0)
    n_dedup = sum(by_status.values())
    table = decisions
    for name in ("reward", "n_outcomes", "n_late_outcomes", "reward_is_default"):
        field = JOINED.field(name)
        table = table.append_column(field, per.column(name).cast(field.type))
    table = table.append_column(
        JOINED.field("reward_definition"), pa.array([reward_def.id] * n, pa.string())
    )
    counts = JoinCounts(
        decisions=n,
        outcomes=outcomes.num_rows,
        outcomes_used=by_status.get("used", 0),
        late_outcomes=by_status.get("late", 0),
        duplicate_outcomes=outcomes.num_rows - n_dedup,
        unknown_event_outcomes=by_status.get("unknown", 0),
        early_outcomes=by_status.get("early", 0),
        default_decisions=n_default,
        other_action_outcomes=by_status.get("other_action", 0),
    )
    return JoinResult(table=table.cast(JOINED), counts=counts, reward_definition=reward_def.id)


def _upper_bound(until: date | datetime) -> datetime:
    if isinstance(until, datetime):
        if until.tzinfo is None:
            raise LogError(f"until {until!r} must be timezone-aware")
        return until.astimezone(UTC)
    return datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)


def load_joined(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    activated_only: bool = True,
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

    Returns
    -------
    JoinResult
        Outcomes of logged decisions that were not selected are set aside and
        counted as ``unselected_outcomes``, not as unknown.
    """
    root = Path(logs_dir)
    if not (root / "decisions").is_dir():
        raise LogError(f"{root}: not a log directory (no 'decisions' table)")
    decisions = io.read(root, "decisions", since=since, until=until)
    if activated_only:
        decisions = decisions.filter(decisions.column("activated"))
    o_until: datetime | None = None
    if until is not None:
        o_until = _upper_bound(until) + timedelta(days=float(reward_def.window_days))
    outcomes = io.read(root, "outcomes", since=since, until=o_until)
    all_ids = io.read(root, "decisions", columns=["event_id"]).column("event_id")
    logged = pc.is_in(outcomes.column("event_id"), value_set=all_ids.combine_chunks())
    selected = pc.is_in(
        outcomes.column("event_id"), value_set=decisions.column("event_id").combine_chunks()
    )
    unselected = pc.and_(logged, pc.invert(selected))
    n_unselected = int(pc.sum(unselected.cast(pa.int64())).as_py() or 0)
    result = join_rewards(decisions, outcomes.filter(pc.invert(unselected)), reward_def)
    counts = dataclasses.replace(
        result.counts, outcomes=outcomes.num_rows, unselected_outcomes=n_unselected
    )
    return dataclasses.replace(result, counts=counts)
