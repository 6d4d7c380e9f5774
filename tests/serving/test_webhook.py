"""The webhook deliverer against a real HTTP receiver on 127.0.0.1: signed bodies,
retries with backoff after a failure, the same Idempotency-Key on every attempt, a
bounded number of attempts, and state kept in the store (a new deliverer, as after a
restart, continues; a stopped deliverer's claim is taken over once it expires)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from webhook_receiver import Receiver

from nba.domain import HCPProfile
from nba.triggers import TriggerSet
from serving.store import EventStore
from serving.store_reps import put_rep
from serving.store_triggers import TriggerEvent, claim_delivery, delivery_state, fire
from serving.webhook import Deliverer, verify

SECRET = b"test-webhook-secret-5b1e"
NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _clock_at_each_test() -> None:
    """NOW taken again when each test starts: taken once at import, they are a
    day behind the service's clock for a test that runs after midnight UTC."""
    global NOW
    NOW = datetime.now(UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


def _store_with_notification(tmp_path: Path) -> tuple[EventStore, int]:
    store = EventStore(tmp_path / "events.db")
    store.upsert_hcp(HCPProfile("H1", "cardiology", 5, "US", "aware", frozenset({"email"})))
    put_rep(store, "R1", "Ann", 4, ["H1"], date.today() - timedelta(days=1))
    ev = TriggerEvent("visit_request", "H1", NOW, "portal", "form", key="k-1")
    with store._write() as c:
        fired = fire(c, TriggerSet.default(), ev, webhook=True)
    return store, fired.notifications[0]


def test_failed_first_attempt_is_retried_signed_and_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    store, nid = _store_with_notification(tmp_path)
    d = Deliverer(store, receiver.url, SECRET, max_attempts=5, backoff_s=0.3, timeout_s=5)
    assert d.run_once() == 1  # the receiver answers 500
    state = delivery_state(store, nid)
    assert state is not None and state.attempts == 1 and state.delivered_at is None
    assert state.last_error == "HTTP 500"
    assert d.run_once() == 0  # the retry is not due yet (backoff)
    time.sleep(0.35)
    assert d.run_once() == 1
    assert d.run_once() == 0  # delivered: never sent again
    got = receiver.got
    assert [(r.attempt, r.status) for r in got] == [("1", 500), ("2", 200)]
    assert {r.key for r in got} == {str(nid)}
    for r in got:
        assert verify(SECRET, r.body, r.signature)
        assert not verify(b"another-secret-0000", r.body, r.signature)
    body = json.loads(got[1].body)
    assert (body["id"], body["rep_id"], body["hcp_id"], body["trigger"]) == (
        nid,
        "R1",
        "H1",
        "visit-request",
    )
    state = delivery_state(store, nid)
    assert state is not None and state.attempts == 2 and state.delivered_at is not None


def test_attempts_are_bounded(tmp_path: Path) -> None:
    store, nid = _store_with_notification(tmp_path)
    r = Receiver(always_fail=True).start()
    try:
        d = Deliverer(store, r.url, SECRET, max_attempts=3, backoff_s=0.05, timeout_s=5)
        for _ in range(40):
            d.run_once()
            time.sleep(0.05)
        assert len(r.got) == 3
        state = delivery_state(store, nid)
        assert state is not None and state.gave_up and state.attempts == 3
    finally:
        r.stop()


def test_a_new_deliverer_continues_from_the_store(tmp_path: Path, receiver: Receiver) -> None:
    store, nid = _store_with_notification(tmp_path)
    Deliverer(store, receiver.url, SECRET, backoff_s=0.05, worker="before-restart").run_once()
    state = delivery_state(store, nid)
    assert state is not None and state.attempts == 1 and state.delivered_at is None
    store.close()
    reopened = EventStore(tmp_path / "events.db")
    time.sleep(0.1)
    assert Deliverer(reopened, receiver.url, SECRET, worker="after-restart").run_once() == 1
    assert [r.attempt for r in receiver.got] == ["1", "2"]
    assert len(receiver.delivered()) == 1


def test_a_claim_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    store, nid = _store_with_notification(tmp_path)
    t0 = datetime.now(UTC)
    first = claim_delivery(store, "w1", t0, lease_s=60)
    assert first is not None and first.notification.id == nid and first.attempt == 1
    assert claim_delivery(store, "w2", t0, lease_s=60) is None  # held by w1
    # w1 stopped without finishing: after the lease another worker takes it over
    later = claim_delivery(store, "w2", t0 + timedelta(seconds=61), lease_s=60)
    assert later is not None and later.notification.id == nid


def test_the_webhook_needs_a_secret(tmp_path: Path) -> None:
    from serving_testkit import make_settings

    with pytest.raises(ValueError, match="webhook_secret is missing or shorter than 16"):
        make_settings(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    with pytest.raises(ValueError, match="webhook_secret is missing or shorter than 16"):
        make_settings(tmp_path, webhook_url="http://127.0.0.1:9/hook", webhook_secret="short")
    with pytest.raises(ValueError, match="webhook_url"):
        make_settings(tmp_path, webhook_url="ftp://x", webhook_secret="0123456789abcdef")


def test_purge_removes_old_trigger_events_with_their_notifications_and_deliveries(
    tmp_path: Path,
) -> None:
    """Retention reaches the trigger tables: an event before the cut goes with the
    notification it raised and that notification's webhook delivery; a suppression
    still running at the cut stays, one that ended before it goes."""
    store, nid = _store_with_notification(tmp_path)
    old = NOW - timedelta(days=400)
    with store._write() as c:
        old_ev = TriggerEvent("visit_request", "H1", old, "portal", "f", key="k-0")
        old_fired = fire(c, TriggerSet.default(), old_ev)
        c.execute(
            "INSERT INTO trigger_suppressions (event_key, trigger, hcp_id, channel, content_id,"
            " since_us, until_us) VALUES ('k-old','t','H1','email',NULL,?,?)",
            (_us(old), _us(old + timedelta(days=7))),
        )
    assert old_fired.notifications == ()  # R1 was not aligned with H1 400 days ago
    gone = store.purge(older_than=NOW - timedelta(days=365))
    assert (gone["trigger_events"], gone["rep_notifications"]) == (1, 0)
    assert gone["trigger_suppressions"] == 1
    assert delivery_state(store, nid) is not None  # the recent notification stays
    gone = store.purge(older_than=NOW + timedelta(seconds=1))
    assert (gone["trigger_events"], gone["rep_notifications"]) == (1, 1)
    assert delivery_state(store, nid) is None
    con = store._conn()
    for table in ("trigger_events", "rep_notifications", "webhook_deliveries"):
        assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)
