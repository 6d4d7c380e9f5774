"""The fast outcome route's split work (serving/api/fast.py): the outcome checked
against its decision in the outcome pool with one read
(:meth:`EventStore.outcome_target`), its commit awaited on the event loop
(:meth:`OutcomeCommitter.submit_many`).

The read must give what the whole decision and the override lookup gave; the
rows a server with the fast routes stores must be those a server answering
through FastAPI stores (two real servers on 127.0.0.1, real SQLite files).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.domain import Decision, Outcome, Touch
from serving.commit_outcomes import OutcomeCommitter
from serving.store import EventStore, OutcomeWrite, _from_us

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _earliest_override(store: EventStore, event_id: str) -> datetime | None:
    """The reference: the earliest touch overriding ``event_id``, read apart."""
    (us,) = (
        store._conn()
        .execute("SELECT MIN(ts_us) FROM touches WHERE overrides_event_id=?", (event_id,))
        .fetchone()
    )
    return None if us is None else _from_us(us)


def _decision(event_id: str) -> Decision:
    return Decision(
        event_id,
        T0,
        "H1",
        "r",
        ("email",),
        "{}",
        "c",
        ("a@email", "b@email"),
        (0.5, 0.5),
        1,
        "b@email",
        0.5,
        "uniform",
        "v",
    )


def test_outcome_target_is_the_decision_and_its_override(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.add_decisions([_decision("E1"), _decision("E2")])
    assert store.outcome_target("NOPE") is None
    # an override of E2 only, and a later one: the earliest counts
    store.add_touch(Touch("H1", T0 + timedelta(hours=3), "email", "x"))
    store.add_touch(Touch("H1", T0 + timedelta(hours=2), "email", "y"))
    with store._write() as c:
        c.execute("UPDATE touches SET overrides_event_id='E2'")
    for event_id in ("E1", "E2"):
        target = store.outcome_target(event_id)
        decision = store.get_decision(event_id)
        assert target is not None and decision is not None
        assert (target.event_id, target.ts, target.hcp_id, target.chosen_action_id) == (
            decision.event_id,
            decision.ts,
            decision.hcp_id,
            decision.chosen_action_id,
        )
        assert target.overridden == _earliest_override(store, event_id)
    assert store.outcome_target("E2").overridden == T0 + timedelta(hours=2)  # type: ignore[union-attr]
    assert store.outcome_target("E1").overridden is None  # type: ignore[union-attr]
    store.close()


def test_submitted_outcomes_are_answered_once_committed(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.add_decisions([_decision("E1")])
    oc = OutcomeCommitter(store)
    o = Outcome("E1", T0 + timedelta(hours=1), "opened", source_id="s1")
    done = oc.submit_many([OutcomeWrite(o), OutcomeWrite(o)])
    assert not done.cancel()  # handed over: it is written whoever waits for it
    assert done.result(timeout=30) == [True, False]
    bad = oc.submit_many([OutcomeWrite(Outcome("NOPE", T0, "opened"))]).result(timeout=30)
    assert len(bad) == 1 and "NOPE" in str(bad[0])
    oc.close()
    with pytest.raises(RuntimeError, match="closed"):
        oc.submit_many([OutcomeWrite(o)])
    assert [s.outcome.source_id for s in store.outcomes_of("E1")] == ["s1"]
    store.close()


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, Path]]]:
    """A server with the fast routes and one without, each on its own store."""
    procs: list[Any] = []
    out: dict[str, tuple[str, Path]] = {}
    try:
        for name, on in (("fast", "true"), ("fastapi", "false")):
            tmp = tmp_path_factory.mktemp(name)
            proc, base = start_server(tmp, NBA_FAST_ROUTES=on)
            procs.append(proc)
            out[name] = (base, tmp / "events.db")
            with httpx.Client(base_url=base, timeout=60) as c:
                r = c.put("/v1/hcps/H1", json=HCP_BODY, headers=auth("report"))
                assert r.status_code == 201, r.text
        yield out
    finally:
        for p in procs:
            stop_server(p)


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rows outcomes write, without what differs between two stores by
    construction (row ids, the time of receipt)."""
    con = sqlite3.connect(db)
    try:
        return {
            "outcomes": con.execute(
                "SELECT event_id, ts_us, type, value, source, source_id, kind, late, action_id"
                " FROM outcomes ORDER BY id"
            ).fetchall(),
            "feedback": con.execute(
                "SELECT event_id, hcp_id, ts_us, type, action_id, content_id, reason_code,"
                " snooze_until_us FROM feedback ORDER BY outcome_id"
            ).fetchall(),
            "touches": con.execute(
                "SELECT hcp_id, ts_us, channel, content_id, origin, kind FROM touches ORDER BY id"
            ).fetchall(),
        }
    finally:
        con.close()


def test_the_fast_route_stores_what_fastapi_stores(
    two_servers: dict[str, tuple[str, Path]],
) -> None:
    """The same decision and outcome reports, good and bad, to both servers: the
    same statuses and bodies, and the same rows stored."""
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    ts = at.isoformat().replace("+00:00", "Z")
    answers: dict[str, list[tuple[int, bytes]]] = {}
    for name, (base, _) in two_servers.items():
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post(
                "/v1/decisions",
                json={"hcp_id": "H1", "channels": ["email"], "k": 3, "event_id": "OP-E1"},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            other = [s["action_id"] for s in r.json()["suggestions"]][1]
            url = "/v1/events/OP-E1/outcomes"
            bodies: list[dict[str, Any]] = [
                {"type": "opened", "source_id": "m1", "ts": ts},
                {"type": "opened", "source_id": "m1", "ts": ts},  # a repeat
                {"type": "clicked", "source_id": "m1", "ts": ts, "action_id": other},
                {"type": "opened", "ts": "2020-01-01T00:00:00Z"},  # before its decision
                {"type": "dismissed", "reason_code": "not_relevant", "ts": ts},
                {"type": "snoozed", "until": "2020-01-01", "ts": ts},
                {"type": "opened", "until": "2030-01-01"},  # not rep feedback
                {"type": "clicked", "action_id": "NOT-OFFERED@email", "ts": ts},
                {"type": "unsubscribed", "source_id": "u1", "ts": ts},
            ]
            answers[name] = []
            for body in bodies:
                r = c.post(
                    url,
                    content=json.dumps(body).encode(),
                    headers={**auth("report"), "content-type": "application/json"},
                )
                # the two decisions were made a moment apart: their time is masked
                seen = re.sub(rb"its decision \([^)]+\)", b"its decision (T)", r.content)
                answers[name].append((r.status_code, seen))
    assert answers["fast"] == answers["fastapi"]
    statuses = [s for s, _ in answers["fast"]]
    assert statuses[:4] == [201, 200, 201, 422], answers["fast"]
    assert b"before its decision (T)" in answers["fast"][3][1]
    fast_rows, slow_rows = (_rows(db) for _, db in two_servers.values())
    assert fast_rows == slow_rows
    assert len(fast_rows["outcomes"]) >= 2 and fast_rows["touches"]
