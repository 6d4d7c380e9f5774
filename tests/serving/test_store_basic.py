"""Event store: round trips, idempotent outcomes, late flag, activation, feedback, purge."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nba.catalog import Catalog
from nba.contact import ContactPolicy, Feedback
from nba.domain import Action, Decision, HCPProfile, Outcome, Suppression, Touch, ValidationError
from serving.store import DuplicateEventError, EventStore, StoreError, UnknownEventError

T0 = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


def decision(event_id: str, ts: datetime = T0, hcp: str = "h1", **kw: Any) -> Decision:
    base: dict[str, Any] = {
        "event_id": event_id,
        "ts": ts,
        "hcp_id": hcp,
        "requester": "rep_app",
        "channels_requested": ("email", "portal"),
        "context": '{"v":1}',
        "catalog_version": "abc123",
        "action_ids": ("VEL-EFF-02@email", "VEL-EFF-04@email", "VEL-MOA-01@portal"),
        "probabilities": (0.1, 0.2, 0.7),
        "chosen_index": 2,
        "chosen_action_id": "VEL-MOA-01@portal",
        "propensity": 0.7,
        "policy": "vw",
        "model_version": "nba/3",
        "suppressed": (Suppression("VEL-EFF-01@rep_visit", "consent"),),
        "activated": True,
    }
    base.update(kw)
    return Decision(**base)


@pytest.fixture
def store(store_at: Callable[..., str | Path]) -> EventStore:
    return EventStore(store_at("db/events.db"), reward_window_days=14)


def test_wal_mode_and_synchronous(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "db" / "events.db")
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_hcp_round_trip_and_upsert(store: EventStore) -> None:
    h = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), True, 0.25)
    assert store.get_hcp("h1") is None
    store.upsert_hcp(h)
    assert store.get_hcp("h1") == h
    h2 = HCPProfile("h1", "cardiology", 8, "US", "considering", frozenset(), False, 0.75)
    store.upsert_hcp(h2)
    assert store.get_hcp("h1") == h2
    many = [HCPProfile(f"x{i}", "gp", 1 + i % 10, "DE", "unaware", frozenset()) for i in range(50)]
    assert store.upsert_hcps(many) == 50
    assert store.get_hcp("x7") == many[7]
    assert store.counts()["hcps"] == 51


def test_decision_round_trip_is_exact(store: EventStore) -> None:
    d = decision("E1", probabilities=(0.1, 0.2, 0.7))
    store.add_decision(d)
    back = store.get_decision("E1")
    assert back == d
    assert back is not None and back.ts == T0 and back.probabilities == (0.1, 0.2, 0.7)
    assert store.get_decision("nope") is None
    assert store.is_deferred("E1") is False


def test_duplicate_decisions_are_refused(store: EventStore) -> None:
    store.add_decision(decision("E1"))
    with pytest.raises(DuplicateEventError, match="'E1' is already stored"):
        store.add_decision(decision("E1"))
    with pytest.raises(DuplicateEventError, match="nothing was stored"):
        store.add_decisions([decision("E2"), decision("E1")])
    with pytest.raises(DuplicateEventError, match="'E3' appears twice"):
        store.add_decisions([decision("E3"), decision("E3")])
    assert store.counts()["decisions"] == 1
    assert store.add_decisions([decision(f"B{i}") for i in range(20)]) == 20
    assert store.counts()["decisions"] == 21


def test_deferred_activation(store: EventStore) -> None:
    store.add_decision(decision("E1", activated=False), deferred=True)
    assert store.is_deferred("E1")
    assert store.counts()["pending_activation"] == 1
    got = store.get_decision("E1")
    assert got is not None and got.activated is False
    assert store.activate("E1") is False  # this call activated it
    assert store.activate("E1") is True  # already
    got = store.get_decision("E1")
    assert got is not None and got.activated is True
    assert store.counts()["pending_activation"] == 0
    with pytest.raises(UnknownEventError, match="'E404'"):
        store.activate("E404")
    with pytest.raises(StoreError, match="deferred but marked activated"):
        store.add_decision(decision("E2", activated=True), deferred=True)


def test_outcomes_idempotent_on_event_type_source(store: EventStore) -> None:
    store.add_decision(decision("E1"))
    o = Outcome("E1", T0 + timedelta(hours=2), "visited", 1.0, "portal", "msg-1")
    assert store.add_outcome(o) is True
    assert store.add_outcome(o) is False
    later_copy = Outcome("E1", T0 + timedelta(hours=5), "visited", 1.0, "portal", "msg-1")
    assert store.add_outcome(later_copy) is False
    assert store.add_outcome(Outcome("E1", T0 + timedelta(hours=3), "visited", 1.0, "x", "m2"))
    assert store.add_outcome(
        Outcome("E1", T0 + timedelta(hours=3), "downloaded", 1.0, "x", "msg-1")
    )
    assert store.counts()["outcomes"] == 3
    stored = store.outcomes_of("E1")
    assert [s.outcome.type for s in stored] == ["visited", "visited", "downloaded"]
    assert stored[0].outcome == o and stored[0].kind == "response" and not stored[0].late


def test_late_flag_relative_to_reward_window(store: EventStore) -> None:
    store.add_decision(decision("E1"))
    store.add_outcome(Outcome("E1", T0 + timedelta(days=14), "visited"))
    store.add_outcome(Outcome("E1", T0 + timedelta(days=14, microseconds=1), "downloaded"))
    late = {s.outcome.type: s.late for s in store.outcomes_of("E1")}
    assert late == {"visited": False, "downloaded": True}
    assert store.counts()["late_outcomes"] == 1
    short = EventStore(store.location, reward_window_days=1)
    short.add_outcome(Outcome("E1", T0 + timedelta(days=2), "unsubscribed"))
    assert {s.outcome.type: s.late for s in short.outcomes_of("E1")}["unsubscribed"] is True


@pytest.mark.parametrize(
    ("outcome", "kwargs", "exc", "match"),
    [
        (Outcome("E404", T0, "opened"), {}, UnknownEventError, "no decision with event id"),
        (Outcome("E1", T0 - timedelta(seconds=1), "opened"), {}, StoreError, "before its"),
        (Outcome("E1", T0, "opened"), {"reason_code": "x"}, StoreError, "only for rep feedback"),
        (
            Outcome("E1", T0, "dismissed"),
            {"snooze_until": T0 + timedelta(days=1)},
            StoreError,
            "only for 'snoozed'",
        ),
        (Outcome("E1", T0, "snoozed"), {"snooze_until": T0}, StoreError, "is not after its ts"),
        (
            Outcome("E1", T0, "snoozed"),
            {"snooze_until": datetime(2026, 5, 1)},
            ValidationError,
            "timezone-aware",
        ),
        (
            Outcome("E1", T0, "dismissed", action_id="X@email"),
            {},
            StoreError,
            "event 'E1': action_id 'X@email' was not offered in this decision",
        ),
        (
            Outcome("E1", T0, "opened", action_id="VEL-EFF-02@rep_visit"),
            {},
            StoreError,
            "action_id 'VEL-EFF-02@rep_visit' was not offered",
        ),
        # the chosen action is VEL-MOA-01@portal: an email response cannot concern it
        (
            Outcome("E1", T0, "opened"),
            {},
            StoreError,
            "event 'E1': action 'VEL-MOA-01@portal': outcome type 'opened' cannot happen "
            "on channel 'portal' \\(only on: email\\)",
        ),
        (
            Outcome("E1", T0, "visited", action_id="VEL-EFF-02@email"),
            {},
            StoreError,
            "outcome type 'visited' cannot happen on channel 'email' \\(only on: portal\\)",
        ),
    ],
)
def test_bad_outcomes(
    store: EventStore, outcome: Outcome, kwargs: dict[str, Any], exc: type, match: str
) -> None:
    store.add_decision(decision("E1"))
    with pytest.raises(exc, match=match):
        store.add_outcome(outcome, **kwargs)
    assert store.counts()["outcomes"] == 0


def test_bad_constructor_arguments(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="reward_window_days must be positive"):
        EventStore(tmp_path / "a.db", reward_window_days=0)
    with pytest.raises(StoreError, match="synchronous must be one of"):
        EventStore(tmp_path / "a.db", synchronous="OFF")
    with pytest.raises(StoreError, match="expected a Decision"):
        EventStore(tmp_path / "a.db").add_decision("E1")  # type: ignore[arg-type]


def test_rep_feedback_kept_apart_and_read_back(store: EventStore) -> None:
    store.add_decision(decision("E1"))
    store.add_decision(decision("E2", ts=T0 + timedelta(hours=1)))
    t1 = T0 + timedelta(hours=2)
    assert store.add_outcome(
        Outcome("E1", t1, "dismissed", source="rep"), reason_code="not_relevant"
    )
    until = T0 + timedelta(days=5)
    assert store.add_outcome(
        Outcome("E2", t1, "snoozed", source="rep", action_id="VEL-EFF-04@email"),
        snooze_until=until,
    )
    assert store.add_outcome(Outcome("E2", t1, "accepted", source="rep"))
    assert store.add_outcome(Outcome("E2", t1, "visited"))
    assert store.counts()["feedback"] == 3
    fb = store.recent_feedback("h1", now=T0 + timedelta(days=1))
    assert fb == [
        Feedback("h1", "VEL-MOA-01", "dismissed", t1, "E1", "not_relevant", None),
        Feedback("h1", "VEL-EFF-04", "snoozed", t1, "E2", None, until),
    ]
    kinds = {(s.outcome.event_id, s.outcome.type): s.kind for s in store.recent_outcomes("h1", T0)}
    assert kinds == {
        ("E1", "dismissed"): "feedback",
        ("E2", "snoozed"): "feedback",
        ("E2", "accepted"): "feedback",
        ("E2", "visited"): "response",
    }
    snoozed = next(s for s in store.outcomes_of("E2") if s.outcome.type == "snoozed")
    assert snoozed.snooze_until == until and snoozed.reason_code is None
    # given before now only; a running snooze is returned even when older than the lookback
    assert store.recent_feedback("h1", now=T0) == []
    assert [f.type for f in store.recent_feedback("h1", T0 + timedelta(days=3), 1)] == ["snoozed"]
    assert store.recent_feedback("h2", now=T0 + timedelta(days=1)) == []
    with pytest.raises(StoreError, match="lookback_days must be >= 0"):
        store.recent_feedback("h1", T0, lookback_days=-1)


def test_feedback_from_the_store_drives_the_contact_policy(store: EventStore) -> None:
    cat = Catalog.default()
    pol = ContactPolicy.default()
    h = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email", "portal"}))
    store.add_decision(decision("E1"))
    store.add_outcome(Outcome("E1", T0 + timedelta(hours=1), "dismissed"), reason_code="no")
    now = T0 + timedelta(days=3)
    acts = [Action.parse("VEL-MOA-01@email"), Action.parse("VEL-EFF-02@email")]
    out = pol.filter(
        h,
        acts,
        now,
        store.recent_touches("h1", now - timedelta(days=90)),
        store.recent_feedback("h1", now),
        cat,
    )
    assert [(s.action_id, s.rule) for s in out.suppressed] == [("VEL-MOA-01@email", "dismissed")]
    assert [a.action_id for a in out.allowed] == ["VEL-EFF-02@email"]


def test_touches_round_trip(store: EventStore) -> None:
    ts = [
        Touch("h1", T0 + timedelta(days=i), "email", f"c{i}", "ours" if i % 2 else "external")
        for i in range(5)
    ]
    store.add_touch(ts[3])
    assert store.add_touches([ts[0], ts[4], ts[1], ts[2]]) == 4
    store.add_touch(Touch("h2", T0, "email", "c9"))
    assert store.recent_touches("h1", T0) == ts
    assert store.recent_touches("h1", T0 + timedelta(days=3)) == ts[3:]
    assert store.counts()["touches"] == 6


def test_purge_removes_old_events_with_their_outcomes(store: EventStore) -> None:
    old, new = T0 - timedelta(days=400), T0
    store.add_decision(decision("OLD", ts=old))
    store.add_decision(decision("NEW", ts=new))
    store.add_outcome(Outcome("OLD", old + timedelta(days=1), "visited"))
    store.add_outcome(Outcome("OLD", old + timedelta(days=1), "dismissed"))
    store.add_outcome(Outcome("NEW", new + timedelta(days=1), "visited"))
    store.add_touches([Touch("h1", old, "email", "c"), Touch("h1", new, "email", "c")])
    store.upsert_hcp(HCPProfile("h1", "gp", 1, "US", "aware", frozenset()))
    gone = store.purge(older_than=T0 - timedelta(days=365))
    assert gone == {
        "decisions": 1,
        "outcomes": 2,
        "feedback": 1,
        "touches": 1,
        "rep_days": 0,
        "trigger_events": 0,
        "rep_notifications": 0,
        "trigger_suppressions": 0,
    }
    c = store.counts()
    assert (c["decisions"], c["outcomes"], c["feedback"], c["touches"], c["hcps"]) == (
        1,
        1,
        0,
        1,
        1,
    )
    assert store.get_decision("OLD") is None and store.get_decision("NEW") is not None


def test_reopening_keeps_everything(store_at: Callable[..., str | Path]) -> None:
    path = store_at()
    with EventStore(path) as s:
        s.add_decision(decision("E1"))
    again = EventStore(path)
    assert again.get_decision("E1") == decision("E1")
    # a newer schema (written by newer code) is refused, and left as it is
    again._conn().execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    again.close()
    with pytest.raises(StoreError, match="schema version 99, this code reads version"):
        EventStore(path)
    assert _raw_schema_version(path) == "99"


def _raw_schema_version(location: str | Path) -> str:
    """``meta.schema_version`` read without the store."""
    if isinstance(location, Path):
        con = sqlite3.connect(location)
        try:
            return str(
                con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )
        finally:
            con.close()
    import psycopg

    with psycopg.connect(location) as pg:
        row = pg.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert row is not None
        return str(row[0])
