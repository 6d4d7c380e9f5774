"""KPIs over a real SQLite event store: a hand-built week whose every figure is
worked out below, and a table of bad parameters refused with their name."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nba.domain import Decision, Outcome, Suppression
from nba.reward import RewardDefinition
from serving.store import EventStore
from serving.store_kpis import KpiError, kpis, parse_bound

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
VALUE = RewardDefinition(
    "v",
    "1",
    {"opened": 1.0, "clicked": 2.0, "meeting_held": 80.0, "rx_signal": 400.0},
    costs={"email": 0.5, "rep_visit": 100.0},
)


def decision(
    eid: str,
    chosen: str,
    market: str = "US",
    offset: timedelta = timedelta(0),
    model: str = "m1",
    suppressed: tuple[Suppression, ...] = (),
    activated: bool = True,
) -> Decision:
    actions = (chosen, "other@email") if chosen != "other@email" else (chosen,)
    p = tuple(1.0 / len(actions) for _ in actions)
    return Decision(
        eid,
        T0 + offset,
        f"h-{eid}",
        "test",
        ("email", "rep_visit"),
        json.dumps({"hcp": {"market": market}}),
        "cat",
        actions,
        p,
        0,
        chosen,
        p[0],
        "uniform",
        model,
        suppressed,
        activated,
    )


@pytest.fixture
def store(tmp_path: Path, store_at: Callable[..., str | Path]) -> EventStore:
    s = EventStore(store_at("events.db"))
    s.add_decisions(
        [
            decision(
                "E1",
                "a@email",
                suppressed=(Suppression("b@email", "frequency_cap:email:2/7d"),),
            ),
            decision("E2", "a@email", market="DE", offset=timedelta(days=1)),
            decision("E3", "v@rep_visit", offset=timedelta(days=2), model="holdout:baseline:x"),
            decision(
                "E4",
                "v@rep_visit",
                market="DE",
                suppressed=(
                    Suppression("w@rep_visit", "no_see"),
                    Suppression("b@email", "consent"),
                ),
            ),
            # made after the period: not counted
            decision("E9", "a@email", offset=timedelta(days=8)),
        ]
    )
    s.add_decision(decision("E5", "a@email", offset=timedelta(days=3), activated=False), True)
    h = timedelta(hours=1)
    for o in [
        Outcome("E1", T0 + h, "opened"),
        Outcome("E1", T0 + 2 * h, "opened", source_id="again"),  # a type counts once
        Outcome("E1", T0 + 3 * h, "clicked"),
        Outcome("E1", T0 + 4 * h, "rx_signal"),
        # about the other suggestion: kept, never credited
        Outcome("E2", T0 + 25 * h, "opened", action_id="other@email"),
        # a delivery receipt is not a response: in outcome_rates, not in outcome_rate
        Outcome("E2", T0 + 25 * h, "delivered"),
        Outcome("E3", T0 + timedelta(days=3), "meeting_held"),
        # after the 14-day window: not counted
        Outcome("E4", T0 + timedelta(days=15), "meeting_held"),
        Outcome("E4", T0 + timedelta(days=1), "accepted"),
    ]:
        s.add_outcome(o)
    return s


def test_kpis_by_channel_worked_out_by_hand(store: EventStore) -> None:
    rep = kpis(store, SINCE, UNTIL, "channel", VALUE)
    email, rep_visit = rep.groups
    assert (email.key, email.decisions, email.executed, email.holdout) == ("email", 3, 2, 0)
    # E1 has outcomes (opened, clicked, rx_signal); E2 a delivery and one about another action
    assert email.outcome_rate == 0.5 and email.engagement_rate == 0.5
    assert email.outcome_rates == {
        "clicked": 0.5,
        "delivered": 0.5,
        "opened": 0.5,
        "rx_signal": 0.5,
    }
    assert email.value == 1.0 + 2.0 + 400.0 and email.cost == 2 * 0.5
    assert email.net_value == 403.0 - 1.0
    # suppressions by the suppressed action's channel
    assert email.suppressions == {"consent": 1, "frequency_cap:email:2/7d": 1}
    assert (rep_visit.decisions, rep_visit.executed, rep_visit.holdout) == (2, 2, 1)
    # E3 meeting held (engaged); E4 accepted (an outcome, not engagement), meeting late
    assert rep_visit.outcome_rate == 1.0 and rep_visit.engagement_rate == 0.5
    assert rep_visit.value == 80.0 and rep_visit.cost == 200.0 and rep_visit.net_value == -120.0
    assert rep_visit.suppressions == {"no_see": 1}
    t = rep.total
    assert (t.key, t.decisions, t.executed, t.holdout) == ("all", 5, 4, 1)
    assert t.outcome_rate == 0.75 and t.engagement_rate == 0.5
    assert t.value == 483.0 and t.cost == 201.0 and t.net_value == 282.0
    assert t.suppressions == {"consent": 1, "frequency_cap:email:2/7d": 1, "no_see": 1}
    assert rep.value_definition == VALUE.id and rep.window_days == 14.0


def test_kpis_by_market_and_content(store: EventStore) -> None:
    by_market = {g.key: g for g in kpis(store, SINCE, UNTIL, "market", VALUE).groups}
    assert set(by_market) == {"DE", "US"}
    assert by_market["US"].decisions == 3 and by_market["DE"].decisions == 2
    assert by_market["US"].value == 483.0 and by_market["DE"].value == 0.0
    # suppressions by the decision's market when grouped by market
    assert by_market["DE"].suppressions == {"consent": 1, "no_see": 1}
    by_content = {g.key: g for g in kpis(store, SINCE, UNTIL, "content", VALUE).groups}
    # 'b' and 'w' were only ever suppressed: they appear with zero decisions
    assert set(by_content) == {"a", "b", "v", "w"}
    assert by_content["b"].decisions == 0 and by_content["b"].suppressions["consent"] == 1
    assert by_content["b"].outcome_rate is None  # nothing executed: no rate, not 0


def test_period_bounds(store: EventStore) -> None:
    # a period of E2's day only
    rep = kpis(store, T0 + timedelta(days=1), T0 + timedelta(days=1, seconds=1), "channel", VALUE)
    assert rep.total.decisions == 1 and rep.total.value == 0.0
    # the default engagement definition has no costs
    rep = kpis(store, SINCE, UNTIL, "channel", RewardDefinition.business_value())
    assert rep.total.cost > 0
    empty = kpis(store, datetime(2025, 1, 1, tzinfo=UTC), SINCE, "channel", VALUE)
    assert empty.groups == [] and empty.total.decisions == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((UNTIL, SINCE, "channel", VALUE), "since: .* is not before until"),
        ((SINCE, SINCE, "channel", VALUE), "since: .* is not before until"),
        ((SINCE.replace(tzinfo=None), UNTIL, "channel", VALUE), "since: .* has no timezone"),
        ((SINCE, UNTIL, "specialty", VALUE), "by: 'specialty' is not one of channel, content"),
        (
            (SINCE, UNTIL, "channel", RewardDefinition("m", "1", {"opened": 1}, aggregation="max")),
            "m@1#.*: KPIs add values per decision",
        ),
    ],
)
def test_bad_parameters_are_named(store: EventStore, args: tuple, match: str) -> None:
    with pytest.raises(KpiError, match=match):
        kpis(store, *args)


@pytest.mark.parametrize(
    ("value", "name", "match"),
    [
        ("2026-13-01", "since", "since: '2026-13-01' is not a date"),
        ("last week", "until", "until: 'last week' is neither a date"),
        ("2026-01-05T06:00:00", "since", "since: .* has no timezone"),
    ],
)
def test_bad_bounds_are_named(value: str, name: str, match: str) -> None:
    with pytest.raises(KpiError, match=match):
        parse_bound(value, name, end=name == "until")
