"""Two ``nba serve`` replicas on one PostgreSQL database, under concurrent load of
decisions and outcomes, one SIGKILLed: every acknowledged write of both is in the
database, and no outcome is stored twice (the same outcome is posted to both)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from serving.store import EventStore

#: a response each consented channel can have
RESPONSE = {"email": "opened", "portal": "visited", "webinar": "registered"}


@pytest.mark.slow
def test_two_replicas_one_killed_lose_no_acknowledged_write(tmp_path: Path, postgres: Any) -> None:
    url = postgres.create_database("replicas_e2e")
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    # replica A takes the URL from NBA_STORE_URL, replica B from `nba serve --store URL`
    proc_a, base_a = start_server(dirs[0], NBA_STORE_URL=url)
    proc_b, base_b = start_server(dirs[1], serve_args=("--store", url))
    n_hcps = 400  # enough that contact caps do not stop the load
    with httpx.Client(base_url=base_a, timeout=30) as c:
        for i in range(n_hcps):
            body = {**HCP_BODY, "consents": ["email", "portal", "webinar"]}
            assert c.put(f"/v1/hcps/P{i}", json=body, headers=auth("report")).status_code == 201
    acked_decisions: list[tuple[str, str]] = []  # (event_id, replica)
    acked_outcomes: list[tuple[str, str]] = []  # (event_id, source_id)
    duplicates_answered: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    killed = threading.Event()

    def client_loop(worker: int, base: str, other: str) -> None:
        i = worker
        with (
            httpx.Client(base_url=base, timeout=10) as c,
            httpx.Client(base_url=other, timeout=10) as o,
        ):
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v1/decisions",
                        json={"hcp_id": f"P{i % n_hcps}", "channels": list(RESPONSE)},
                        headers=auth("decide"),
                    )
                    if r.status_code == 201:
                        eid = r.json()["event_id"]
                        channel = r.json()["chosen_action_id"].split("@")[1]
                        with lock:
                            acked_decisions.append((eid, base))
                        # the same outcome to both replicas: stored once, both say 2xx
                        out = {"type": RESPONSE[channel], "source_id": f"s{worker}-{i}"}
                        for client in (c, o):
                            try:
                                r2 = client.post(
                                    f"/v1/events/{eid}/outcomes", json=out, headers=auth("report")
                                )
                            except httpx.HTTPError:
                                continue  # that replica was killed; the other may answer
                            if 200 <= r2.status_code < 300:
                                with lock:
                                    acked_outcomes.append((eid, out["source_id"]))
                                    duplicates_answered.append(r2.status_code)
                except httpx.HTTPError:
                    if killed.is_set() and base == base_a:
                        return
                i += 6

    threads = [
        threading.Thread(target=client_loop, args=(w, base, other))
        for w, (base, other) in enumerate([(base_a, base_b), (base_b, base_a)] * 3)
    ]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(acked_outcomes) < 200:
            time.sleep(0.1)
        stop_server(proc_a, kill=True)  # SIGKILL replica A (master and workers) under load
        killed.set()
        n_at_kill = len(acked_decisions)
        time.sleep(3)  # replica B goes on alone
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        stop.set()
        stop_server(proc_a, kill=True)
        stop_server(proc_b)
    from_a = {e for e, b in acked_decisions if b == base_a}
    from_b = {e for e, b in acked_decisions if b == base_b}
    assert len(from_a) > 10 and len(from_b) > 10, "both replicas should have answered"
    assert len(acked_decisions) > n_at_kill, "replica B should go on after A is killed"
    store = EventStore(url)
    missing = [e for e, _ in acked_decisions if store.get_decision(e) is None]
    assert missing == []
    stored = {
        (o.outcome.event_id, o.outcome.source_id)
        for e, _ in acked_outcomes
        for o in store.outcomes_of(e)
    }
    assert sorted(set(acked_outcomes) - stored) == []
    # each outcome was acknowledged by both replicas most of the time, and stored once
    assert len(acked_outcomes) > len(set(acked_outcomes))
    con = store._conn()
    dup_outcomes = con.execute(
        "SELECT COUNT(*) FROM (SELECT event_id, type, source_id FROM outcomes"
        " GROUP BY event_id, type, source_id HAVING COUNT(*) > 1) AS d"
    ).fetchone()[0]
    assert dup_outcomes == 0
    n_out = con.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
    assert n_out >= len(set(acked_outcomes))
    assert len({e for e, _ in acked_decisions}) == len(acked_decisions)
