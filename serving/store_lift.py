"""Holdout lift over the event store: treated vs holdout per decision, with an
HCP-clustered interval (:func:`nba.lift.holdout_lift`), next to the off-policy
estimate of the same lift from the same period's treated decisions.

Arms. Decisions made in ``[since, until)`` and executed (activated), split by
``model_version``: ``holdout:...`` is the holdout (it got the configured
``holdout_policy``), anything else treated (the served model, or its uniform
fallback). With ``holdout_policy="no_contact"`` the holdout's requests are the
``holdout_requests`` rows of the period: nothing reached those HCPs, so their
engagement, value and cost are 0 by construction. An outcome of an uncontacted
HCP (an imported Rx signal, say) has no decision to be joined to and is not
seen: the value lift against no contact is the value that followed our
contacts, not the HCPs' total prescriptions.

Measures per decision (value definition ``window_days``; credited outcomes,
each type once, as in :mod:`serving.store_kpis`): ``engagement`` (an engagement
outcome, 0/1), ``value`` (summed outcome weights) and ``net_value`` (value minus
the channel cost).

Off-policy estimate. The holdout policy's probabilities are computed on each
treated decision's logged context and eligible actions, and SNIPS estimates its
value from the treated log (logged propensities); the off-policy lift is the
treated arm's observed mean minus that estimate, with the paired Gaussian
interval of :meth:`nba.ope.estimators.BaseOffPolicyEstimator.estimate_difference`.
Where both agree, the holdout confirms what the logs say; where they differ,
the holdout is the measurement (it includes what one decision does to the
next: fatigue, stage changes). Against ``no_contact`` there is nothing to
estimate off-policy (the holdout's value is 0 by construction).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from nba.context import DecisionContext
from nba.domain import ENGAGEMENT_TYPES, Action
from nba.lift import LiftEstimate, holdout_lift
from nba.ope.data import LoggedData
from nba.ope.estimators import SNIPS, Interval
from nba.policies.base import Policy
from nba.reward import RewardDefinition
from serving.store import EventStore, _to_us
from serving.store_kpis import _BASE, KpiError, _values, check_definition, check_period

MEASURES: tuple[str, ...] = ("engagement", "value", "net_value")
NO_CONTACT = "no_contact"

_PER_DECISION = (
    _BASE
    + """,
w(type, weight, by_value) AS (SELECT * FROM (VALUES {weights}) AS wv),
c(channel, cost) AS (SELECT * FROM (VALUES {costs}) AS cv)
SELECT d0.event_id, d.hcp_id, d0.holdout,
    COALESCE(c.cost, 0.0),
    SUM(CASE WHEN t.type IN ({engagement}) THEN 1 ELSE 0 END),
    COALESCE(SUM(w.weight * CASE WHEN w.by_value = 1 THEN t.value ELSE 1.0 END), 0.0),
    d.context, d.action_ids, d.probabilities, d.chosen_index, d.propensity
FROM d0
JOIN decisions AS d ON d.event_id = d0.event_id
LEFT JOIN t ON t.event_id = d0.event_id
LEFT JOIN w ON w.type = t.type
LEFT JOIN c ON c.channel = d0.channel
WHERE d0.activated = 1
GROUP BY d0.event_id, d.hcp_id, d0.holdout, c.cost, d.context, d.action_ids,
    d.probabilities, d.chosen_index, d.propensity
ORDER BY d0.event_id
"""
)


def _interval_dict(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {"estimate": iv.estimate, "low": iv.low, "high": iv.high, "method": iv.method}


@dataclass(frozen=True)
class LiftReport:
    """Holdout lift and the off-policy lift of one period, per measure."""

    since: datetime
    until: datetime
    holdout_policy: str
    value_definition: str
    alpha: float
    holdout: dict[str, LiftEstimate]
    off_policy: dict[str, Interval | None]
    off_policy_note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "holdout_policy": self.holdout_policy,
            "value_definition": self.value_definition,
            "alpha": self.alpha,
            "holdout": {m: e.as_dict() for m, e in self.holdout.items()},
            "off_policy": {m: _interval_dict(iv) for m, iv in self.off_policy.items()},
            "off_policy_note": self.off_policy_note,
        }


def lift(
    store: EventStore,
    since: datetime,
    until: datetime,
    value_def: RewardDefinition,
    holdout_policy: Policy | str,
    alpha: float = 0.05,
) -> LiftReport:
    """Treated vs holdout per decision and the off-policy lift, per measure.

    Parameters
    ----------
    store : EventStore
    since, until : datetime
        Timezone-aware, ``since < until``.
    value_def : RewardDefinition
        Values, costs and window (aggregation ``sum`` without clip).
    holdout_policy : Policy or "no_contact"
        What the holdout got; a policy is also the off-policy target.
    alpha : float
        Intervals are ``1 - alpha``.

    Raises
    ------
    KpiError
        A bad period, definition or alpha, naming it.
    """
    lo_dt, hi_dt = check_period(since, until)
    check_definition(value_def)
    if not (isinstance(alpha, float | int) and 0.0 < float(alpha) < 1.0):
        raise KpiError(f"alpha: must be in (0, 1), got {alpha!r}")
    bounds = {
        "lo": _to_us(lo_dt),
        "hi": _to_us(hi_dt),
        "win": round(float(value_def.window_days) * 86_400 * 1_000_000),
    }
    w_ph, w_args = _values(
        [(t, w, 1 if t in value_def.value_types else 0) for t, w in value_def.weights.items()],
        ("", 0.0, 0),
    )
    c_ph, c_args = _values(list(value_def.costs.items()), ("", 0.0))
    eng = sorted(ENGAGEMENT_TYPES)
    sql = _PER_DECISION.format(
        key="''",
        at=store.dialect.instr("d.chosen_action_id", "'@'"),
        weights=w_ph,
        costs=c_ph,
        engagement=", ".join("?" for _ in eng),
        **bounds,
    )
    con = store._conn()
    rows = con.execute(sql, [*w_args, *c_args, *eng]).fetchall()
    no_contact = holdout_policy == NO_CONTACT
    held_rows: list[tuple[Any, ...]] = []
    if no_contact:
        held_rows = con.execute(
            "SELECT hcp_id FROM holdout_requests WHERE ts_us >= ? AND ts_us < ?",
            (bounds["lo"], bounds["hi"]),
        ).fetchall()
    n, m = len(rows), len(held_rows)
    hcp = np.array([r[1] for r in rows] + [r[0] for r in held_rows], dtype=object)
    hold = np.array([bool(r[2]) for r in rows] + [True] * m, dtype=bool)
    if no_contact:
        # decisions logged as holdout before the switch to no_contact are not this arm
        keep = np.concatenate([~hold[:n], np.ones(m, dtype=bool)])
    else:
        keep = np.ones(n, dtype=bool)
    cost = np.array([float(r[3]) for r in rows] + [0.0] * m)
    y = {
        "engagement": np.array([1.0 if r[4] else 0.0 for r in rows] + [0.0] * m),
        "value": np.array([float(r[5]) for r in rows] + [0.0] * m),
    }
    y["net_value"] = y["value"] - cost
    estimates = {k: holdout_lift(y[k][keep], hold[keep], hcp[keep], alpha) for k in MEASURES}

    off: dict[str, Interval | None] = dict.fromkeys(MEASURES)
    if no_contact:
        note = "no_contact: the holdout's value is 0 by construction; nothing to estimate"
        name = NO_CONTACT
    else:
        assert isinstance(holdout_policy, Policy)
        name = holdout_policy.name
        treated = [i for i in range(n) if not hold[i]]
        if not treated:
            note = "no treated decisions in the period"
        else:
            t_idx = np.array(treated, dtype=np.int64)
            base = _logged(rows, treated, holdout_policy, y["engagement"][t_idx])
            for k in MEASURES:
                d = dataclasses.replace(base, reward=y[k][t_idx])
                iv = SNIPS().estimate_difference(d, alpha=float(alpha), method="gaussian")
                # V(holdout policy) - observed  ->  observed - V(holdout policy)
                off[k] = Interval(-iv.estimate, -iv.high, -iv.low, iv.method, iv.alpha, iv.notes)
            note = (
                f"SNIPS estimate of the '{name}' holdout policy on the {len(treated)} treated "
                "decisions (their logged propensities); lift = treated mean - that estimate"
            )
    return LiftReport(lo_dt, hi_dt, name, value_def.id, float(alpha), estimates, off, note)


def _logged(
    rows: list[tuple[Any, ...]], treated: list[int], target: Policy, reward: np.ndarray
) -> LoggedData:
    """The treated decisions as logged bandit data with ``target``'s probabilities."""
    offsets = [0]
    dist: list[float] = []
    pscore, action = [], []
    for i in treated:
        ctx_json, ids_json, _, chosen, prop = rows[i][6:11]
        actions = [Action.parse(a) for a in json.loads(ids_json)]
        p = target.probabilities(DecisionContext.from_json(ctx_json), actions)
        dist.extend(float(x) for x in p)
        offsets.append(len(dist))
        pscore.append(float(prop))
        action.append(int(chosen))
    return LoggedData(
        offsets=np.array(offsets, dtype=np.int64),
        action_dist=np.array(dist),
        reward=reward,
        pscore=np.array(pscore),
        action=np.array(action, dtype=np.int64),
    )
