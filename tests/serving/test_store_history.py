"""``EventStore.history`` equals a hand computation of the nba.context definitions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nba.catalog import Catalog
from nba.context import History
from nba.domain import Decision, Outcome, Touch
from serving.store import EventStore, StoreError

DAY = date(2026, 3, 10)


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def dec(event_id: str, ts: datetime, chosen: str, hcp: str = "h1") -> Decision:
    return Decision(
        event_id,
        ts,
        hcp,
        "rep_app",
        ("email",),
        "{}",
        "v1",
        (chosen,),
        (1.0,),
        0,
        chosen,
        1.0,
        "uniform",
        "none",
    )


@pytest.fixture
def store(tmp_path: Path, store_at: Callable[..., str | Path]) -> EventStore:
    s = EventStore(store_at("events.db"))
    s.add_touches(
        [
            Touch("h1", at(2026, 3, 9, 23, 59), "email", "c1"),  # age 1
            Touch("h1", at(2026, 3, 3), "email", "c2", "external"),  # age 7: inside 7d
            Touch("h1", at(2026, 3, 2, 10), "rep_visit", "c3"),  # age 8
            Touch("h1", at(2025, 12, 10), "portal", "c4"),  # age 90: inside 90d
            Touch("h1", at(2025, 12, 9, 23), "portal", "c5"),  # age 91: outside
            Touch("h1", at(2026, 3, 10, 8), "email", "c6"),  # the decision day: outside
            Touch("h2", at(2026, 3, 8), "email", "c7"),  # another HCP
        ]
    )
    rows: list[tuple[Decision, list[tuple[datetime, str, str]]]] = [
        # D1 efficacy by email: opened twice (two sources) and clicked -> 2 engagements
        (
            dec("D1", at(2026, 2, 20), "VEL-EFF-02@email"),
            [
                (at(2026, 2, 21), "opened", "a"),
                (at(2026, 2, 22), "opened", "b"),
                (at(2026, 2, 21), "clicked", "a"),
                (at(2026, 2, 21), "delivered", "a"),  # not engagement
            ],
        ),
        # D2 mechanism on portal, downloaded 85 days before: topic only
        (dec("D2", at(2025, 12, 1), "VEL-MOA-01@portal"), [(at(2025, 12, 15), "downloaded", "")]),
        # D3 outcome on the decision day itself: outside every window
        (
            dec("D3", at(2026, 3, 9), "VEL-DOS-02@rep_visit"),
            [(at(2026, 3, 10, 10), "meeting_held", "")],
        ),
        # D4 content unknown to the catalog: counts for its channel, not for a topic
        (dec("D4", at(2026, 3, 1), "UNKNOWN-1@email"), [(at(2026, 3, 2), "opened", "")]),
        # D5 another HCP
        (dec("D5", at(2026, 3, 1), "VEL-EFF-02@email", hcp="h2"), [(at(2026, 3, 2), "opened", "")]),
        # D6 opened 37 days before (topic) and again 23 days before (channel and topic once)
        (
            dec("D6", at(2026, 1, 20), "VEL-EFF-04@email"),
            [(at(2026, 2, 1), "opened", "a"), (at(2026, 2, 15), "opened", "b")],
        ),
        # D7 unsubscribed is not engagement
        (dec("D7", at(2026, 3, 1), "VEL-GDL-01@email"), [(at(2026, 3, 2), "unsubscribed", "")]),
    ]
    for d, outs in rows:
        s.add_decision(d)
        for ts, kind, src in outs:
            s.add_outcome(Outcome(d.event_id, ts, kind, source_id=src))
    return s


def test_history_equals_hand_computation(store: EventStore) -> None:
    got = store.history("h1", DAY, Catalog.default())
    expected = History(
        touches_7d={"email": 2},
        touches_30d={"email": 2, "rep_visit": 1},
        touches_90d={"email": 2, "rep_visit": 1, "portal": 1},
        engagements_30d={"email": 4},
        topic_engagements_90d={"efficacy": 3, "mechanism": 1},
        days_since_touch={"email": 1, "rep_visit": 8, "portal": 90},
        last_content_id="c1",
        # D1 (opened, clicked) and D6 (opened) by email on efficacy; D2 on the portal
        topic_channel_engagements_90d={"efficacy@email": 3, "mechanism@portal": 1},
        # c5 is 91 days old, c6 from the decision day itself: neither counts
        days_since_content={"c1": 1, "c2": 7, "c3": 8, "c4": 90},
        # each engagement on the day of its earliest outcome: D1 opened and clicked
        # 17 days before, D6 opened 37 days before (efficacy); D2 85 days before
        interest={
            "efficacy": round(2 * 0.5 ** (17 / 14) + 0.5 ** (37 / 14), 3),
            "mechanism": round(0.5 ** (85 / 14), 3),
        },
    )
    assert got == expected
    assert got.interest == {"efficacy": 1.022, "mechanism": 0.015}


def test_history_of_an_unknown_hcp_is_empty(store: EventStore) -> None:
    assert store.history("nobody", DAY, Catalog.default()) == History()


def test_last_content_has_no_window(store: EventStore) -> None:
    # like the simulator: the latest touch before the day, even when older than 90 days
    old = store.history("h1", DAY + timedelta(days=200), Catalog.default())
    assert old.touches_90d == {} and old.days_since_touch == {}
    assert old.last_content_id == "c6"


@pytest.mark.parametrize("bad", [datetime(2026, 3, 10, tzinfo=UTC), "2026-03-10"])
def test_history_needs_a_date(store: EventStore, bad: Any) -> None:
    with pytest.raises(StoreError, match="'day' must be a date"):
        store.history("h1", bad, Catalog.default())


def test_history_a_day_later_moves_the_windows(store: EventStore) -> None:
    got = store.history("h1", DAY + timedelta(days=1), Catalog.default())
    # c6 (the old decision day) now counts; c2 is 8 days old; c4 is 91 days old
    assert got.touches_7d == {"email": 2}
    assert got.touches_90d == {"email": 3, "rep_visit": 1}
    assert got.days_since_touch == {"email": 1, "rep_visit": 9}
    assert got.last_content_id == "c6"
    assert got.days_since_content == {"c6": 1, "c1": 2, "c2": 8, "c3": 9}
    # D3's meeting on the old decision day now counts too
    assert got.topic_channel_engagements_90d == {
        "dosing@rep_visit": 1,
        "efficacy@email": 3,
        "mechanism@portal": 1,
    }


def test_days_since_content_is_the_latest_receipt_on_any_channel(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    s = EventStore(store_at("events.db"))
    s.add_touches(
        [
            Touch("h1", at(2026, 3, 7, 9), "rep_visit", "c1"),  # age 3, the latest
            Touch("h1", at(2026, 2, 28), "email", "c1"),  # age 10
            Touch("h1", at(2026, 3, 1), "email", "c2"),  # age 9
            Touch("h1", at(2026, 3, 8), "email", "c2", "external"),  # age 2, external counts
        ]
    )
    got = s.history("h1", DAY, Catalog.default())
    assert got.days_since_content == {"c1": 3, "c2": 2}
    s.close()


def test_interest_adds_pulls_each_topic_once_per_touch(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    s = EventStore(store_at("events.db"))
    s.add_touches(
        [
            # a detail 1 day before on two topics
            Touch(
                "h1",
                at(2026, 3, 9, 15),
                "rep_visit",
                "VEL-DOS-01",
                "ours",
                "detail_pull",
                topics=("dosing", "safety"),
            ),
            # a portal page 14 days before
            Touch(
                "h1",
                at(2026, 2, 24, 8),
                "portal",
                "page-1",
                "external",
                "portal_view",
                topics=("dosing",),
            ),
            # a webinar question 90 days before: inside; 91 days before: outside
            Touch(
                "h1",
                at(2025, 12, 10),
                "webinar",
                "web-1",
                "ours",
                "webinar_question",
                topics=("safety",),
            ),
            Touch(
                "h1",
                at(2025, 12, 9, 23),
                "webinar",
                "web-1",
                "ours",
                "webinar_question",
                topics=("efficacy",),
            ),
            # the decision day itself, another HCP, a contact: none count
            Touch(
                "h1",
                at(2026, 3, 10, 7),
                "portal",
                "page-2",
                "external",
                "portal_view",
                topics=("efficacy",),
            ),
            Touch(
                "h2",
                at(2026, 3, 9),
                "portal",
                "page-2",
                "external",
                "portal_view",
                topics=("efficacy",),
            ),
            Touch("h1", at(2026, 3, 9), "email", "VEL-EFF-02"),
        ]
    )
    s.add_decision(dec("E1", at(2026, 3, 2), "VEL-SAF-01@email"))
    s.add_outcome(Outcome("E1", at(2026, 3, 3), "opened", source_id="x"))  # 7 days before
    got = s.history("h1", DAY, Catalog.default())
    w1, w7, w14, w90 = (0.5 ** (a / 14) for a in (1, 7, 14, 90))
    assert got.interest == {
        "dosing": round(w1 + w14, 3),  # 0.952 + 0.5
        "safety": round(w1 + w7 + w90, 3),  # 0.952 + 0.707 + 0.012 (1.6705)
    }
    assert got.interest == {"dosing": 1.452, "safety": 1.67}
    # the same pull touches undecayed (engagements are not pulls): dosing 1 and 14 days
    # before, safety 1 and 90 days before
    assert got.topic_pulls_90d == {"dosing": 2, "safety": 2}
    # the pulls are no contacts
    assert got.touches_7d == {"email": 1}
    s.close()


def test_context_extras_latest_statements_in_the_window_and_attributes(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    from nba.domain import HCPProfile, StatedPreference
    from nba.hcp_features import HCPFeatures

    s = EventStore(store_at("events.db"))
    s.upsert_hcp(
        HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"})),
        {"rx_volume_decile": 9, "payer_mix_commercial": 0.4, "affiliations": ["idn", "aco"]},
    )
    s.upsert_hcp(HCPProfile("h2", "cardiology", 7, "US", "aware", frozenset({"email"})))
    for ts, topics, channels in [
        (at(2025, 3, 9), ("mechanism",), ("webinar",)),  # 366 days before: outside
        (at(2026, 1, 5), ("efficacy", "dosing"), ("email",)),
        (at(2026, 2, 1), (), ("portal",)),  # the latest naming channels
        (at(2026, 3, 10, 6), ("safety",), ("rep_visit",)),  # the decision day: not yet
    ]:
        s.add_stated_preference(StatedPreference("h1", ts, "rep-1", topics, channels))
    attrs, topics, channels = s.context_extras("h1", DAY) or ({}, (), ())
    assert topics == ("efficacy", "dosing") and channels == ("portal",)
    assert HCPFeatures.default().context_attributes(attrs) == {
        "affiliations": ["aco", "idn"],
        "payer_mix_commercial": 0.4,
        "rx_volume_decile": "ge8",
    }
    assert s.context_extras("h2", DAY) == ({}, (), ())
    assert s.context_extras("nobody", DAY) is None
    with pytest.raises(StoreError, match="context_extras: 'day' must be a date"):
        s.context_extras("h1", at(2026, 3, 10))  # type: ignore[arg-type]
    s.close()
