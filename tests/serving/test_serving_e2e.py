"""Against a real ``nba serve`` (uvicorn) on 127.0.0.1: the main flows, several
workers sharing one store, and a SIGKILL during load after which every
acknowledged decision and outcome is in the store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.domain import Action
from serving.store import EventStore


def test_end_to_end_over_http(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.put("/v1/hcps/E1", json=HCP_BODY, headers=auth("report")).status_code == 201
            r = c.post(
                "/v1/decisions",
                json={"hcp_id": "E1", "channels": ["rep_visit"], "k": 3},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            ev = r.json()
            assert ev["model_version"] == "baseline:uniform"
            assert all(s["channel"] == "rep_visit" and s["reasons"] for s in ev["suggestions"])
            r = c.post(
                f"/v1/events/{ev['event_id']}/outcomes",
                json={"type": "accepted"},
                headers=auth("report"),
            )
            assert r.status_code == 201 and r.json()["kind"] == "rep_feedback"
            r = c.post(
                "/v1/decisions:batch",
                json={"hcp_ids": ["E1", "E2"], "channels": ["email"]},
                headers=auth("decide"),
            )
            assert r.status_code == 201 and r.json()["unknown_hcp_ids"] == ["E2"]
            cur = c.get("/v1/models/current", headers=auth("decide")).json()
            assert cur["is_baseline"] is True
            assert "nba_decisions_total" in c.get("/metrics").text
            assert c.post("/v1/decisions", json={"hcp_id": "E1"}).status_code == 401
    finally:
        stop_server(proc)
    store = EventStore(tmp_path / "events.db")
    stored = store.get_decision(ev["event_id"])
    assert stored is not None and stored.chosen_action_id == ev["chosen_action_id"]
    assert store.counts()["decisions"] == 2


@pytest.mark.slow
def test_sigkill_during_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, workers=2)
    n_hcps = 40
    acked_decisions: list[str] = []
    acked_outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(n_hcps):
            body = {**HCP_BODY, "consents": ["email", "portal", "webinar"]}
            assert c.put(f"/v1/hcps/K{i}", json=body, headers=auth("report")).status_code == 201

    def client_loop(worker: int) -> None:
        i = worker
        with httpx.Client(base_url=base, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v1/decisions",
                        json={"hcp_id": f"K{i % n_hcps}", "channels": ["portal"]},
                        headers=auth("decide"),
                    )
                    if r.status_code == 201:
                        eid = r.json()["event_id"]
                        with lock:
                            acked_decisions.append(eid)
                        r2 = c.post(
                            f"/v1/events/{eid}/outcomes",
                            json={"type": "visited", "source_id": f"s{i}"},
                            headers=auth("report"),
                        )
                        if r2.status_code == 201:
                            with lock:
                                acked_outcomes.append((eid, f"s{i}"))
                except httpx.HTTPError:
                    if proc.poll() is not None:
                        return
                i += 4

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(acked_outcomes) < 150:
        time.sleep(0.1)
    # metrics from both workers are aggregated (prometheus multiprocess mode)
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert "nba_decisions_total" in metrics and "nba_model_info{" in metrics
    stop_server(proc, kill=True)  # SIGKILL the whole server (master and workers)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked_decisions) > 20, "the load generator should have made progress"
    store = EventStore(tmp_path / "events.db")
    missing = [e for e in acked_decisions if store.get_decision(e) is None]
    assert missing == []
    stored = {
        (o.outcome.event_id, o.outcome.source_id)
        for e, _ in acked_outcomes
        for o in store.outcomes_of(e)
    }
    assert [k for k in acked_outcomes if k not in stored] == []
    # and the store is consistent: decisions still read back with their propensities
    for e in acked_decisions[:20]:
        d = store.get_decision(e)
        assert d is not None
        assert d.propensity == pytest.approx(d.probabilities[d.chosen_index])
        assert Action.parse(d.chosen_action_id).channel == "portal"
