"""The holdout lift over a real SQLite store: arms, means and the off-policy
(SNIPS) lift checked against a computation by hand; the no-contact arm."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import Decision, HCPProfile, Outcome
from nba.lift import holdout_lift
from nba.policies.registry import create
from nba.reward import RewardDefinition
from serving.store import EventStore
from serving.store_kpis import KpiError
from serving.store_lift import lift

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
VALUE = RewardDefinition("v", "1", {"opened": 1.0, "clicked": 3.0}, costs={"email": 0.5})


def _ctx(hcp: str) -> str:
    profile = HCPProfile(hcp, "cardiology", 5, "US", "aware", frozenset({"email"}))
    return DecisionContext(hcp=profile, day=T0.date(), history=History()).to_json()


@pytest.fixture
def logged(tmp_path: Path, store_at: Callable[..., str | Path]):
    rng = np.random.default_rng(3)
    email = [a for a in Catalog.default().action_ids if a.endswith("@email")]
    store = EventStore(store_at("events.db"))
    rows = []
    for i in range(60):
        hcp = f"h{i % 20}"  # three decisions per HCP
        held = i % 20 >= 14  # 6 of 20 HCPs in the holdout
        k = int(rng.integers(2, 5))
        ids = tuple(str(a) for a in rng.choice(email, size=k, replace=False))
        p = rng.dirichlet(np.ones(k))
        chosen = int(rng.integers(k))
        d = Decision(
            f"E{i:03d}",
            T0 + timedelta(hours=i),
            hcp,
            "t",
            ("email",),
            _ctx(hcp),
            "c",
            ids,
            tuple(float(x) for x in p),
            chosen,
            ids[chosen],
            float(p[chosen]),
            "x",
            "holdout:baseline:uniform" if held else "m1",
        )
        store.add_decision(d)
        types = [
            t for t, q in (("opened", 0.4 if held else 0.6), ("clicked", 0.2)) if rng.random() < q
        ]
        if "clicked" in types and "opened" not in types:
            types.remove("clicked")
        for t in types:
            store.add_outcome(Outcome(d.event_id, d.ts + timedelta(hours=2), t))
        rows.append((hcp, held, k, float(p[chosen]), types))
    return store, rows


def test_arms_means_and_off_policy_by_hand(logged) -> None:
    store, rows = logged
    rep = lift(store, SINCE, UNTIL, VALUE, create("uniform"), alpha=0.1)
    hcp = np.array([r[0] for r in rows])
    hold = np.array([r[1] for r in rows])
    eng = np.array([1.0 if r[4] else 0.0 for r in rows])
    value = np.array([sum(VALUE.weights[t] for t in r[4]) for r in rows])
    for name, y in (("engagement", eng), ("value", value), ("net_value", value - 0.5)):
        assert rep.holdout[name] == holdout_lift(y, hold, hcp, alpha=0.1)
    # SNIPS of the uniform policy on the treated decisions: w = (1/k) / propensity
    t = ~hold
    w = np.array([1.0 / r[2] / r[3] for r in rows])[t]
    for name, y in (("engagement", eng), ("net_value", value - 0.5)):
        v_uniform = float(np.sum(w * y[t]) / np.sum(w))
        off = rep.off_policy[name]
        assert off is not None
        assert off.estimate == pytest.approx(y[t].mean() - v_uniform)
        assert off.low < off.estimate < off.high
    assert rep.holdout_policy == "uniform" and "SNIPS" in rep.off_policy_note


def test_no_contact_arm_is_the_recorded_requests(logged) -> None:
    store, rows = logged
    store.add_holdout_requests(
        [
            (f"R{i}", T0 + timedelta(hours=i), f"q{i % 4}", "t", json.dumps(["email"]))
            for i in range(8)
        ]
        + [("R-late", UNTIL + timedelta(hours=1), "q0", "t", "[]")]  # after the period
    )
    rep = lift(store, SINCE, UNTIL, VALUE, "no_contact")
    e = rep.holdout["engagement"]
    # decisions logged as holdout before the switch are in neither arm
    assert e.decisions_holdout == 8 and e.hcps_holdout == 4 and e.holdout_mean == 0.0
    assert e.decisions_treated == sum(1 for r in rows if not r[1])
    assert rep.holdout["net_value"].holdout_mean == 0.0
    assert all(v is None for v in rep.off_policy.values())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"alpha": 0.0}, r"alpha: must be in \(0, 1\)"),
        ({"since": UNTIL, "until": SINCE}, "since: .* is not before until"),
        (
            {"value_def": RewardDefinition("m", "1", {"opened": 1.0}, clip=(0.0, 1.0))},
            "KPIs add values per decision",
        ),
    ],
)
def test_bad_parameters(logged, kw: dict, match: str) -> None:
    store, _ = logged
    args = {"since": SINCE, "until": UNTIL, "value_def": VALUE, "holdout_policy": "no_contact"}
    with pytest.raises(KpiError, match=match):
        lift(store, **{**args, **kw})
