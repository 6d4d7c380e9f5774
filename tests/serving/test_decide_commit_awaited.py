"""The fast decision route computes a decision in its small pool and awaits the
group commit on the event loop (serving/api/fast.py): the same answers and the same
stored rows as the FastAPI route (which waits for the commit in its thread), no
thread held while the group commits, and the committer's futures that the loop
awaits cannot be cancelled away from the write."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings
from test_serving_commit import decision

import serving.api.fast as fast
from serving.commit import GroupCommitter
from serving.main import create_app
from serving.store import DuplicateEventError, EventStore

HCPS = [f"P{i}" for i in range(6)]
AS_OF = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)


def _requests() -> list[dict[str, Any]]:
    """Varied decision requests, each with its own event id and time."""
    out: list[dict[str, Any]] = []
    for i in range(24):
        req: dict[str, Any] = {
            "hcp_id": HCPS[i % len(HCPS)],
            "event_id": f"PAR-{i:03d}",
            "as_of": (AS_OF + timedelta(hours=7 * i)).isoformat(),
            "k": 1 + i % 4,
        }
        if i % 3 == 0:
            req["channels"] = ["email"]
        if i % 5 == 1:
            req["explain"] = False
        if i % 4 == 2:
            req["defer_activation"] = True
        if i % 6 == 3:
            req["context"] = {"requester": "rep-7", "campaign": "spring"}
        out.append(req)
    return out


def _run(tmp: Path, fast_routes: bool) -> tuple[list[tuple[int, Any]], list[tuple[Any, ...]]]:
    """Every answer of the same requests, and the stored decision rows."""
    settings = make_settings(tmp, fast_routes=fast_routes, allow_client_time=True)
    answers: list[tuple[int, Any]] = []
    with TestClient(create_app(settings)) as c:
        for h in HCPS:
            assert c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")).status_code == 201
        reqs = _requests()
        for req in reqs:
            r = c.post("/v1/decisions", json=req, headers=auth("decide"))
            answers.append((r.status_code, r.json()))
        # an event id already used: 409 from either route, nothing stored twice
        r = c.post("/v1/decisions", json=reqs[0], headers=auth("decide"))
        answers.append((r.status_code, r.json()))
        # an outcome changes the next decision's context and reasons
        r = c.post("/v1/events/PAR-001/outcomes", json={"type": "opened"}, headers=auth("report"))
        answers.append((r.status_code, None))
        again = {**reqs[1], "event_id": "PAR-900", "as_of": (AS_OF + timedelta(days=9)).isoformat()}
        r = c.post("/v1/decisions", json=again, headers=auth("decide"))
        answers.append((r.status_code, r.json()))
    con = sqlite3.connect(tmp / "events.db")
    rows = con.execute("SELECT * FROM decisions ORDER BY event_id").fetchall()
    con.close()
    return answers, rows


def test_the_fast_route_answers_and_stores_what_the_fastapi_route_does(tmp_path: Path) -> None:
    fast_answers, fast_rows = _run(tmp_path / "fast", True)
    slow_answers, slow_rows = _run(tmp_path / "slow", False)
    assert fast_answers == slow_answers
    assert fast_rows == slow_rows
    statuses = [s for s, _ in fast_answers]
    assert statuses.count(201) == 25 and 409 in statuses
    assert fast_answers[24][1]["code"] == "event_id_conflict"
    assert len(fast_rows) == 25  # the 24 requests and the later one; the conflict not again


def test_no_decision_thread_waits_for_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the committer held, more decisions than the decision pool has threads
    reach it: the pool's threads hand over and go back to work. Nobody is answered
    before the held group commits."""
    n = 3 * fast.DECIDE_THREADS + 2
    release = threading.Event()
    submitted: list[str] = []
    real_commit = GroupCommitter._commit
    real_submit = GroupCommitter.submit_many

    def held_commit(self: GroupCommitter, items: list[Any]) -> None:
        release.wait(timeout=60)
        real_commit(self, items)

    def counted_submit(self: GroupCommitter, decisions: list[Any], deferred: bool = False) -> Any:
        submitted.extend(d.event_id for d in decisions)
        return real_submit(self, decisions, deferred)

    monkeypatch.setattr(GroupCommitter, "_commit", held_commit)
    monkeypatch.setattr(GroupCommitter, "submit_many", counted_submit)
    statuses: list[int] = []
    with TestClient(create_app(make_settings(tmp_path))) as c:
        for h in HCPS:
            assert c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")).status_code == 201
        release.clear()  # the HCPs' writes went through; decisions are held from here

        def one(i: int) -> None:
            r = c.post("/v1/decisions", json={"hcp_id": HCPS[i % 6]}, headers=auth("decide"))
            statuses.append(r.status_code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(submitted) < n and datetime.now(UTC) < deadline:
            threading.Event().wait(0.02)
        handed_over = len(submitted)
        answered_early = len(statuses)
        release.set()
        for t in threads:
            t.join(timeout=60)
        store = EventStore(tmp_path / "events.db")
        stored = [e for e in submitted if store.get_decision(e) is not None]
    assert handed_over == n, f"only {handed_over} of {n} decisions reached the committer"
    assert answered_early == 0
    assert statuses == [201] * n
    assert sorted(stored) == sorted(submitted)


def test_a_submitted_group_is_written_even_if_its_waiter_gives_up(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db", synchronous="NORMAL")
    gc = GroupCommitter(store)
    fut = gc.submit_many([decision("S1"), decision("S2")])
    assert fut.cancel() is False  # handed over: the write goes on
    assert fut.result(timeout=30) is None
    assert store.get_decision("S1") is not None and store.get_decision("S2") is not None
    dup = gc.submit_many([decision("S3"), decision("S1")])
    with pytest.raises(DuplicateEventError):
        dup.result(timeout=30)
    assert store.get_decision("S3") is None  # all or none
    gc.close()
