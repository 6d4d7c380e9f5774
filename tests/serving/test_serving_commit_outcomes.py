"""Group commit of outcomes: concurrent reports are all stored exactly once,
repeats are idempotent, and a bad outcome in a group fails alone."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nba.domain import Decision, Outcome
from serving.commit_outcomes import OutcomeCommitter
from serving.store import EventStore, OutcomeWrite, StoreError, UnknownEventError

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def decision(eid: str) -> Decision:
    return Decision(
        eid,
        T0,
        "h1",
        "r",
        ("email",),
        "{}",
        "cat",
        ("a@email", "b@email"),
        (0.25, 0.75),
        1,
        "b@email",
        0.75,
        "uniform",
        "v1",
    )


def outcome(
    eid: str, type_: str = "opened", source_id: str = "s", action_id: str | None = None
) -> Outcome:
    return Outcome(eid, T0 + timedelta(hours=1), type_, 1.0, "hcp", source_id, action_id)


def stored_rows(store: EventStore) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(store.path)
    try:
        return sorted(con.execute("SELECT event_id, type, source_id FROM outcomes").fetchall())
    finally:
        con.close()


def test_concurrent_outcomes_are_stored_exactly_once(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db", synchronous="NORMAL")
    store.add_decisions([decision(f"E{i:03d}") for i in range(50)])
    oc = OutcomeCommitter(store)
    # every outcome is sent twice, by different threads: one new, one repeat
    sends = [(f"E{i:03d}", t) for i in range(50) for t in ("delivered", "opened", "clicked")]
    answers: dict[tuple[str, str], list[bool]] = {s: [] for s in sends}
    lock = threading.Lock()

    def worker(part: list[tuple[str, str]]) -> None:
        for eid, t in part:
            ok = oc.add(OutcomeWrite(outcome(eid, t)))
            with lock:
                answers[(eid, t)].append(ok)

    all_sends = sends + sends[::-1]
    threads = [threading.Thread(target=worker, args=(all_sends[k::16],)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oc.close()
    assert all(sorted(a) == [False, True] for a in answers.values())
    assert stored_rows(store) == sorted((e, t, "s") for e, t in sends)
    assert store.counts()["outcomes"] == len(sends)


def test_a_bad_outcome_in_a_group_fails_alone_with_add_outcomes_error(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.add_decisions([decision("E1"), decision("E2")])
    alone = EventStore(tmp_path / "alone.db")  # the same outcomes one by one
    alone.add_decisions([decision("E1"), decision("E2")])
    hooked: list[str] = []

    def failing_hook(c: sqlite3.Connection, hcp_id: str, action_id: str) -> None:
        c.execute(
            "INSERT INTO touches (hcp_id, ts_us, channel, content_id, origin)"
            " VALUES ('h1', 1, 'email', 'x', 'ours')"
        )
        raise RuntimeError("hook broke")

    writes = [
        OutcomeWrite(outcome("E1", "opened")),
        OutcomeWrite(outcome("NOPE", "opened")),  # unknown event
        OutcomeWrite(outcome("E1", "opened", source_id="t", action_id="z@email")),  # not offered
        OutcomeWrite(outcome("E2", "attended")),  # cannot happen on an email
        OutcomeWrite(outcome("E1", "opened")),  # repeat of the first, same group
        OutcomeWrite(outcome("E1", "clicked"), reason_code="x"),  # feedback detail on a response
        OutcomeWrite(outcome("E2", "clicked"), on_stored=failing_hook),
        OutcomeWrite(
            Outcome("E2", T0 + timedelta(hours=2), "snoozed", 0.0, "rep", "s", None),
            snooze_until=T0 + timedelta(days=3),
            on_stored=lambda c, h, a: hooked.append(a),
        ),
        OutcomeWrite(outcome("E2", "delivered")),
    ]
    results = store.add_outcomes(writes)
    assert [r if isinstance(r, bool) else type(r) for r in results] == [
        True,
        UnknownEventError,
        StoreError,
        StoreError,
        False,
        StoreError,
        RuntimeError,
        True,
        True,
    ]
    # the same errors, word for word, as storing each one on its own
    for w, r in zip(writes, results, strict=True):
        if isinstance(r, StoreError):
            with pytest.raises(type(r)) as info:
                alone.add_outcome(w.outcome, w.reason_code, w.snooze_until)
            assert str(info.value) == str(r)
    assert "z@email" in str(results[2]) and "attended" in str(results[3])
    # the others are committed; the failed hook's own write is rolled back with it
    assert stored_rows(store) == [
        ("E1", "opened", "s"),
        ("E2", "delivered", "s"),
        ("E2", "snoozed", "s"),
    ]
    assert store.counts()["touches"] == 0
    assert hooked == ["b@email"]
    assert [f.type for f in store.recent_feedback("h1", T0 + timedelta(days=1))] == ["snoozed"]


def test_each_request_gets_its_own_outcomes_error(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.add_decision(decision("E1"))
    oc = OutcomeCommitter(store)
    assert oc.add(OutcomeWrite(outcome("E1"))) is True
    with pytest.raises(StoreError, match="reason_code/snooze_until are only for rep feedback"):
        oc.add(OutcomeWrite(outcome("E1", "clicked"), reason_code="r"))
    with pytest.raises(UnknownEventError, match="no decision with event id 'E9'"):
        oc.add(OutcomeWrite(outcome("E9")))
    oc.close()
    with pytest.raises(RuntimeError, match="closed"):
        oc.add(OutcomeWrite(outcome("E1", "clicked")))
    with pytest.raises(ValueError, match="max_group"):
        OutcomeCommitter(store, max_group=0)
    assert stored_rows(store) == [("E1", "opened", "s")]


def test_concurrent_http_posts_are_acknowledged_once_and_stored(tmp_path: Path) -> None:
    """Real ``nba serve`` with two workers (group commit on, the default): 8 clients
    post every outcome twice and a bad one among them; each is stored once, the
    repeat answers 200 ``stored: false``, the bad one 422, and every 201 is in
    the store."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from serving_testkit import auth, start_server, stop_server

    store = EventStore(tmp_path / "events.db")
    store.add_decisions([decision(f"E{i:03d}") for i in range(30)])
    store.close()
    posts = [(f"E{i:03d}", t) for i in range(30) for t in ("delivered", "opened")]
    posts = [*posts, *posts, ("E001", "attended")]  # attended cannot happen on an email
    proc, base = start_server(tmp_path, workers=2)
    try:

        def post(p: tuple[str, str]) -> int:
            with httpx.Client(base_url=base, timeout=60) as c:
                r = c.post(
                    f"/v1/events/{p[0]}/outcomes",
                    json={"type": p[1], "source_id": "s", "ts": "2026-01-05T10:00:00Z"},
                    headers=auth("report"),
                )
                return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, posts))
    finally:
        stop_server(proc)
    by_post: dict[tuple[str, str], list[int]] = {}
    for p, code in zip(posts, codes, strict=True):
        by_post.setdefault(p, []).append(code)
    assert by_post.pop(("E001", "attended")) == [422]
    assert all(sorted(c) == [200, 201] for c in by_post.values()), by_post
    assert stored_rows(EventStore(tmp_path / "events.db")) == sorted(
        (e, t, "s") for e, t in by_post
    )
    # the first contact outcome of each decision made its touch, in the same transaction
    assert EventStore(tmp_path / "events.db").counts()["touches"] == 30
