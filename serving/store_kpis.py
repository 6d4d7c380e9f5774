"""Business KPIs over the event store: SQL on the store's ``decisions`` and
``outcomes`` tables, grouped by channel, content item or market.

For the decisions made in ``[since, until)`` (decision time), per group:

- ``decisions``: stored decisions; ``executed``: those activated (a deferred
  decision never activated did not reach anyone); ``holdout``: decisions for HCPs
  of the global holdout (``model_version`` ``holdout:...``).
- ``outcome_rate`` / ``engagement_rate``: share of executed decisions with at
  least one outcome other than ``delivered`` (a delivery receipt is not a
  response) / one engagement outcome (``nba.domain.ENGAGEMENT_TYPES``)
  credited to the chosen action (``action_id`` null or the chosen one) inside
  the value definition's reward window ``[ts, ts + window]``;
  ``outcome_rates[type]``: the same share per outcome type.
- ``suppressions[rule]``: actions the contact policy removed, by rule. Grouped by
  the suppressed action's channel or content item (by the decision's market for
  ``by=market``). Requests where every action was suppressed store no decision
  and are not counted here (``/metrics`` counts them).
- ``value``: the summed weights (reward definition ``weights``; each type once
  per decision; a ``value_types`` type weighs its earliest in-window value) of
  the credited in-window outcomes of executed decisions; ``cost``: the channel
  cost of each executed decision (``costs``); ``net_value = value - cost``.

The market is the one in the decision's logged context (what the HCP's profile
said when the decision was made). Grouping by journey uses the journey step each
decision recorded (``"<journey>/<step>"``, ``"none"`` when no journey step
governed it; docs/journeys.md); its suppressions are grouped by the decision's
journey step too.

>>> import tempfile
>>> from datetime import UTC, date, datetime, timedelta
>>> from nba.domain import Decision, Outcome
>>> from nba.reward import RewardDefinition
>>> from serving.store import EventStore
>>> store = EventStore(tempfile.mkdtemp() + "/events.db")
>>> store.add_decision(Decision("E1", datetime(2026, 1, 5, 9, tzinfo=UTC), "h1", "app",
...     ("email",), "{}", "c", ("c1@email", "c2@email"), (0.5, 0.5), 1, "c2@email", 0.5,
...     "uniform", "m1"))
>>> _ = store.add_outcome(Outcome("E1", datetime(2026, 1, 6, tzinfo=UTC), "opened"))
>>> rep = kpis(store, datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC),
...     "channel", RewardDefinition.business_value())
>>> g = rep.groups[0]
>>> (g.key, g.decisions, g.engagement_rate, g.value, g.cost)
('email', 1, 1.0, 0.5, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nba.domain import ENGAGEMENT_TYPES, ValidationError
from nba.reward import RewardDefinition
from serving.store import EventStore, _to_us
from serving.store_sql import Dialect

#: what ``by`` may be
GROUPINGS: tuple[str, ...] = ("channel", "content", "market", "journey")
#: groupings named so that their refusal can say why (none at present)
NOT_AVAILABLE: Mapping[str, str] = {}
#: the ``by=journey`` group of decisions no journey step governed
NO_JOURNEY = "none"
_US = 1_000_000


class KpiError(ValidationError):
    """A KPI query parameter is wrong; the message names it."""


@dataclass(frozen=True)
class KpiGroup:
    """KPIs of one group (or of every decision, key ``"all"``)."""

    key: str
    decisions: int
    executed: int
    holdout: int
    outcome_rate: float | None
    engagement_rate: float | None
    outcome_rates: dict[str, float] = field(default_factory=dict)
    suppressions: dict[str, int] = field(default_factory=dict)
    value: float = 0.0
    cost: float = 0.0
    net_value: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KpiReport:
    """KPIs of a period, by group, and over every decision."""

    since: datetime
    until: datetime
    by: str
    value_definition: str
    window_days: float
    total: KpiGroup
    groups: list[KpiGroup]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
            "value_definition": self.value_definition,
            "window_days": self.window_days,
            "total": self.total.as_dict(),
            "groups": [g.as_dict() for g in self.groups],
        }


def check_period(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Both bounds timezone-aware and ``since < until``; returned in UTC."""
    for name, v in (("since", since), ("until", until)):
        if v.tzinfo is None:
            raise KpiError(f"{name}: {v.isoformat()} has no timezone; give UTC (…Z)")
    s, u = since.astimezone(UTC), until.astimezone(UTC)
    if not s < u:
        raise KpiError(f"since: {s.isoformat()} is not before until {u.isoformat()}")
    return s, u


def parse_bound(value: str, name: str, end: bool) -> datetime:
    """A period bound from ``YYYY-MM-DD`` or an ISO 8601 time with a timezone.

    A whole day starts the period (``since``) or ends it inclusively (``until``:
    the start of the next day); a time is used as given (``until`` exclusive).

    >>> parse_bound("2026-01-11", "until", end=True).isoformat()
    '2026-01-12T00:00:00+00:00'
    >>> parse_bound("2026-01-05T06:00:00Z", "since", end=False).isoformat()
    '2026-01-05T06:00:00+00:00'
    """
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise KpiError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise KpiError(
            f"{name}: {value!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 time"
        ) from None
    if ts.tzinfo is None:
        raise KpiError(f"{name}: {value!r} has no timezone; give UTC (…Z)")
    return ts.astimezone(UTC)


def check_by(by: str) -> str:
    if by in NOT_AVAILABLE:
        raise KpiError(f"by: {by!r} is not available: {NOT_AVAILABLE[by]}")
    if by not in GROUPINGS:
        raise KpiError(f"by: {by!r} is not one of {', '.join(GROUPINGS)}")
    return by


def check_definition(value_def: RewardDefinition) -> RewardDefinition:
    if value_def.aggregation != "sum" or value_def.clip is not None:
        raise KpiError(
            f"{value_def.id}: KPIs add values per decision; the definition must use "
            "aggregation 'sum' without clip"
        )
    return value_def


def _key(dialect: Dialect, by: str) -> str:
    """The SQL of a decision's group key ``by`` (over ``decisions AS d``)."""
    at = dialect.instr("d.chosen_action_id", "'@'")
    return {
        "channel": f"substr(d.chosen_action_id, {at} + 1)",
        "content": f"substr(d.chosen_action_id, 1, {at} - 1)",
        "market": f"COALESCE({dialect.json_text('d.context', 'hcp', 'market')}, '')",
        "journey": f"COALESCE(d.journey, '{NO_JOURNEY}')",
    }[by]


def _suppressed_key(dialect: Dialect, by: str) -> str:
    """The SQL of a suppression's group key ``by`` (over the CTE ``s``)."""
    at = dialect.instr("s.aid", "'@'")
    return {
        "channel": f"substr(s.aid, {at} + 1)",
        "content": f"substr(s.aid, 1, {at} - 1)",
        "market": "s.market",
        "journey": "s.journey",
    }[by]


#: decisions of the period with their group key; credited in-window outcome types,
#: each type once per decision with its earliest value
_BASE = """
WITH d0 AS (
    SELECT d.event_id, d.ts_us, d.chosen_action_id, d.activated,
        substr(d.chosen_action_id, {at} + 1) AS channel,
        CASE WHEN d.model_version LIKE 'holdout:%' THEN 1 ELSE 0 END AS holdout,
        {key} AS grp
    FROM decisions AS d
    WHERE d.ts_us >= {lo} AND d.ts_us < {hi}
),
ranked AS (
    SELECT o.event_id, o.type, o.value,
        ROW_NUMBER() OVER (PARTITION BY o.event_id, o.type ORDER BY o.ts_us, o.source_id) AS n
    FROM outcomes AS o
    JOIN d0 ON o.event_id = d0.event_id
    WHERE d0.activated = 1
        AND (o.action_id IS NULL OR o.action_id = d0.chosen_action_id)
        AND o.ts_us >= d0.ts_us AND o.ts_us <= d0.ts_us + {win}
),
t AS (SELECT event_id, type, value FROM ranked WHERE n = 1)
"""

_PER_GROUP = (
    _BASE
    + """,
w(type, weight, by_value) AS (SELECT * FROM (VALUES {weights}) AS wv),
c(channel, cost) AS (SELECT * FROM (VALUES {costs}) AS cv),
per AS (
    SELECT d0.event_id, d0.grp, d0.activated, d0.holdout,
        COALESCE(c.cost, 0.0) * d0.activated AS cost,
        SUM(CASE WHEN t.type IS NOT NULL AND t.type <> 'delivered' THEN 1 ELSE 0 END)
            AS n_types,
        SUM(CASE WHEN t.type IN ({engagement}) THEN 1 ELSE 0 END) AS n_eng,
        COALESCE(SUM(w.weight * CASE WHEN w.by_value = 1 THEN t.value ELSE 1.0 END), 0.0)
            AS value
    FROM d0
    LEFT JOIN t ON t.event_id = d0.event_id
    LEFT JOIN w ON w.type = t.type
    LEFT JOIN c ON c.channel = d0.channel
    GROUP BY d0.event_id, d0.grp, d0.activated, d0.holdout, c.cost
)
SELECT grp, COUNT(*), SUM(activated), SUM(holdout),
    SUM(CASE WHEN n_types > 0 THEN 1 ELSE 0 END),
    SUM(CASE WHEN n_eng > 0 THEN 1 ELSE 0 END),
    SUM(value), SUM(cost)
FROM per
GROUP BY grp
ORDER BY grp
"""
)

_PER_TYPE = (
    _BASE
    + """
SELECT d0.grp, t.type, COUNT(*)
FROM t JOIN d0 ON d0.event_id = t.event_id
GROUP BY d0.grp, t.type
"""
)

_SUPPRESSIONS = """
WITH s AS (
    SELECT {aid} AS aid, {rule} AS rule,
        COALESCE({market}, '') AS market,
        COALESCE(d.journey, 'none') AS journey
    FROM decisions AS d, {elements}
    WHERE d.ts_us >= {lo} AND d.ts_us < {hi}
)
SELECT {key} AS grp, s.rule, COUNT(*) FROM s GROUP BY grp, s.rule
"""


def _values(rows: list[tuple[Any, ...]], empty: tuple[Any, ...]) -> tuple[str, list[Any]]:
    """A ``VALUES`` list of placeholders and its parameters (one dummy row if empty)."""
    rows = rows or [empty]
    ph = ", ".join("(" + ", ".join("?" for _ in r) + ")" for r in rows)
    return ph, [v for r in rows for v in r]


def kpis(
    store: EventStore,
    since: datetime,
    until: datetime,
    by: str,
    value_def: RewardDefinition,
) -> KpiReport:
    """KPIs of the decisions made in ``[since, until)``, grouped ``by``.

    Parameters
    ----------
    store : EventStore
    since, until : datetime
        Timezone-aware; ``since < until``.
    by : {"channel", "content", "market", "journey"}
    value_def : RewardDefinition
        Weights value the outcomes, ``costs`` cost the contacts, its window
        decides which outcomes count (aggregation ``sum`` without clip).

    Raises
    ------
    KpiError
        A bad period, grouping or definition, naming it.
    """
    lo_dt, hi_dt = check_period(since, until)
    check_by(by)
    check_definition(value_def)
    # the bounds are integers computed here, so they are formatted into the SQL;
    # everything else is a parameter
    bounds = {
        "lo": _to_us(lo_dt),
        "hi": _to_us(hi_dt),
        "win": round(float(value_def.window_days) * 86_400 * _US),
    }
    w_rows = [
        (t, float(wt), 1 if t in value_def.value_types else 0)
        for t, wt in value_def.weights.items()
    ]
    w_ph, w_args = _values(w_rows, ("", 0.0, 0))
    c_ph, c_args = _values(list(value_def.costs.items()), ("", 0.0))
    eng = sorted(ENGAGEMENT_TYPES)
    eng_ph = ", ".join("?" for _ in eng)
    dialect = store.dialect
    key = _key(dialect, by)
    at = dialect.instr("d.chosen_action_id", "'@'")
    con = store._conn()
    rows = con.execute(
        _PER_GROUP.format(key=key, at=at, weights=w_ph, costs=c_ph, engagement=eng_ph, **bounds),
        [*w_args, *c_args, *eng],
    ).fetchall()
    type_rows = con.execute(_PER_TYPE.format(key=key, at=at, **bounds)).fetchall()
    supp_rows = con.execute(
        _SUPPRESSIONS.format(
            key=_suppressed_key(dialect, by),
            aid=dialect.json_text("j.value", 0),
            rule=dialect.json_text("j.value", 1),
            market=dialect.json_text("d.context", "hcp", "market"),
            elements=dialect.json_elements("d.suppressed", "j"),
            **bounds,
        )
    ).fetchall()

    types: dict[str, dict[str, int]] = {}
    for grp, typ, n in type_rows:
        types.setdefault(str(grp), {})[str(typ)] = int(n)
    supp: dict[str, dict[str, int]] = {}
    for grp, rule, n in supp_rows:
        supp.setdefault(str(grp), {})[str(rule)] = int(n)
    counts: dict[str, _Counts] = {}
    for grp, n, executed, holdout, n_out, n_eng, value, cost in rows:
        counts[str(grp)] = _Counts(
            int(n), int(executed), int(holdout), int(n_out), int(n_eng), float(value), float(cost)
        )
    for k in supp:
        counts.setdefault(k, _Counts())
    groups = [_group(k, counts[k], types.get(k, {}), supp.get(k, {})) for k in sorted(counts)]
    total = _group(
        "all",
        _Counts.sum(counts.values()),
        _merge(types.values()),
        _merge(supp.values()),
    )
    return KpiReport(lo_dt, hi_dt, by, value_def.id, float(value_def.window_days), total, groups)


@dataclass(frozen=True)
class _Counts:
    decisions: int = 0
    executed: int = 0
    holdout: int = 0
    with_outcome: int = 0
    engaged: int = 0
    value: float = 0.0
    cost: float = 0.0

    @staticmethod
    def sum(items: Iterable[_Counts]) -> _Counts:
        items = list(items)
        return _Counts(
            sum(c.decisions for c in items),
            sum(c.executed for c in items),
            sum(c.holdout for c in items),
            sum(c.with_outcome for c in items),
            sum(c.engaged for c in items),
            math.fsum(c.value for c in items),
            math.fsum(c.cost for c in items),
        )


def _merge(per_group: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for per in per_group:
        for k, n in per.items():
            out[k] = out.get(k, 0) + n
    return out


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 12) if d else None


def _group(key: str, c: _Counts, types: dict[str, int], supp: dict[str, int]) -> KpiGroup:
    value, cost = round(c.value, 9), round(c.cost, 9)
    return KpiGroup(
        key=key,
        decisions=c.decisions,
        executed=c.executed,
        holdout=c.holdout,
        outcome_rate=_rate(c.with_outcome, c.executed),
        engagement_rate=_rate(c.engaged, c.executed),
        outcome_rates={
            t: round(n / c.executed, 12) for t, n in sorted(types.items()) if c.executed
        },
        suppressions=dict(sorted(supp.items())),
        value=value,
        cost=cost,
        net_value=round(c.value - c.cost, 9),
    )
