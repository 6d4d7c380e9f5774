"""The rep's co-pilot against a real ``nba serve`` on 127.0.0.1: territories and rep
keys (403 outside), alignment history, the day's list (capacity, contact rules,
idempotent, logged decisions), overrides (recorded, reported, exported, never
credited) and an HCP's paged timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_testkit import HCP_BODY, KEYS, auth, start_server, stop_server

from nba.catalog import Catalog
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from serving.settings import hash_key
from serving.store import EventStore

REP_KEYS = {"R1": "test-key-rep-r1-4c2a", "R2": "test-key-rep-r2-8e0d"}
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _today_at_each_test() -> None:
    """TODAY taken again when each test starts: taken once at import, it is a day
    behind the service's clock for a test that runs after midnight UTC."""
    global TODAY
    TODAY = datetime.now(UTC).date()


def rep_auth(rep: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {REP_KEYS[rep]}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("rep-day")
    keys = [
        {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
        for scope, key in KEYS.items()
    ] + [
        {"name": f"rep-{rep}", "sha256": hash_key(key), "scopes": [f"rep:{rep}"]}
        for rep, key in REP_KEYS.items()
    ]
    proc, base = start_server(tmp, NBA_API_KEYS=json.dumps(keys))
    try:
        yield base, tmp
    finally:
        stop_server(proc)


def _ok(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json()


def _setup(c: httpx.Client) -> None:
    """H1..H6 in R1's territory from 30 days ago; R2 takes H5 10 days ago; H4 was
    visited an hour ago (minimum gap); H6 is no-see without call consent."""
    deciles = {"H1": 3, "H2": 9, "H3": 6, "H4": 10, "H5": 5}
    for h, dec in deciles.items():
        _ok(c.put(f"/v1/hcps/{h}", json={**HCP_BODY, "decile": dec}, headers=auth("report")), 201)
    h6 = {**HCP_BODY, "decile": 10, "no_see": True, "consents": ["email", "rep_visit"]}
    _ok(c.put("/v1/hcps/H6", json=h6, headers=auth("report")), 201)
    body = {
        "name": "Anna",
        "capacity_per_day": 2,
        "hcp_ids": ["H1", "H2", "H3", "H4", "H5", "H6"],
        "effective_from": str(TODAY - timedelta(days=30)),
    }
    _ok(c.put("/v1/reps/R1", json=body, headers=auth("admin")), 201)
    r2 = {"capacity_per_day": 3, "hcp_ids": ["H5"], "effective_from": str(TODAY - timedelta(10))}
    _ok(c.put("/v1/reps/R2", json=r2, headers=auth("admin")), 201)
    touch = {
        "hcp_id": "H4",
        "channel": "email",
        "content_id": "VEL-EFF-01",
        "ts": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    _ok(c.post("/v1/touches", json=touch, headers=auth("report")), 201)


def test_rep_morning_over_http(server: tuple[str, Path]) -> None:
    base, tmp = server
    catalog = Catalog.default()
    with httpx.Client(base_url=base, timeout=60) as c:
        _setup(c)

        # --- alignment history: who owned H5 when
        hist = _ok(
            c.get(
                "/v1/hcps/H5/alignment",
                params={"date": str(TODAY - timedelta(20))},
                headers=auth("report"),
            )
        )
        assert hist["rep_id"] == "R1"
        assert _ok(c.get("/v1/hcps/H5/alignment", headers=auth("report")))["rep_id"] == "R2"
        assert [(h["rep_id"], h["valid_to"]) for h in hist["history"]] == [
            ("R1", str(TODAY - timedelta(10))),
            ("R2", None),
        ]
        before = _ok(
            c.get(
                "/v1/hcps/H5/alignment",
                params={"date": str(TODAY - timedelta(31))},
                headers=auth("report"),
            )
        )
        assert before["rep_id"] is None

        # --- a rep's key sees only its territory and its own rep routes
        r1 = rep_auth("R1")
        for method, url, payload in [
            ("GET", "/v1/hcps/H5", None),
            ("GET", "/v1/hcps/H5/timeline", None),
            ("GET", "/v1/hcps/H5/alignment", None),
            ("POST", "/v1/decisions", {"hcp_id": "H5", "channels": ["rep_visit"]}),
            ("POST", "/v1/decisions:batch", {"hcp_ids": ["H1", "H5"], "channels": ["email"]}),
            ("POST", "/v1/touches", {"hcp_id": "H5", "channel": "email", "content_id": "x"}),
        ]:
            r = c.request(method, url, json=payload, headers=r1)
            assert r.status_code == 403, (url, r.text)
            assert r.json()["code"] == "outside_territory" and "'H5'" in r.json()["message"]
        for url in ("/v1/reps/R2/suggestions", "/v1/reps/R2/hcps", "/v1/reps/R2/overrides"):
            r = c.get(url, headers=r1)
            assert r.status_code == 403 and "'R2'" in r.json()["message"], r.text
        r = c.put("/v1/reps/R1", json={"capacity_per_day": 9, "hcp_ids": []}, headers=r1)
        assert r.status_code == 403  # a rep cannot redraw territories (admin)
        assert c.get("/v1/hcps/H5", headers=rep_auth("R2")).status_code == 200
        assert c.get("/v1/reps/R9/hcps", headers=auth("admin")).status_code == 404

        # --- the day's list: capacity, contact rules, priority, logged decisions
        day = _ok(c.get("/v1/reps/R1/suggestions", params={"date": str(TODAY)}, headers=r1))
        assert day["capacity_per_day"] == 2 and len(day["suggestions"]) == 2
        # uniform baseline gives no scores: decile orders the HCPs (H4 is blocked)
        assert [s["hcp_id"] for s in day["suggestions"]] == ["H2", "H3"]
        assert day["over_capacity"] == ["H1"]
        blocked = {b["hcp_id"]: b["rules"] for b in day["blocked"]}
        assert "min_gap" in blocked["H4"]  # visited an hour ago: every action gapped
        assert set(blocked) == {"H4", "H6"}
        assert "no_see" in blocked["H6"] and "consent" in blocked["H6"]
        assert "H5" not in {s["hcp_id"] for s in day["suggestions"]} | set(blocked)
        for s in day["suggestions"]:
            assert s["channel"] in ("rep_visit", "remote_call") and s["reasons"]
            assert s["due"] == str(TODAY)
            assert s["expires_at"].startswith(str(TODAY + timedelta(days=1)))
        again = _ok(c.get("/v1/reps/R1/suggestions", headers=r1))
        assert again == day  # stored: the same list, no new decisions

        terr = _ok(c.get("/v1/reps/R1/hcps", headers=r1))
        assert [h["hcp_id"] for h in terr["hcps"]] == ["H1", "H2", "H3", "H4", "H6"]
        by_hcp = {h["hcp_id"]: h for h in terr["hcps"]}
        assert by_hcp["H4"]["last_touch"]["channel"] == "email"
        assert by_hcp["H1"]["last_touch"] is None and by_hcp["H1"]["open_suggestions"] == []
        assert [o["event_id"] for o in by_hcp["H2"]["open_suggestions"]] == [
            day["suggestions"][0]["event_id"]
        ]

        # --- override: the rep visits H2 on another topic than suggested
        first, second = day["suggestions"]
        # another rep's key cannot report on (or activate) a decision about H2
        for url, payload in [
            (f"/v1/events/{first['event_id']}/outcomes", {"type": "accepted"}),
            (f"/v1/events/{first['event_id']}/activate", None),
        ]:
            r = c.post(url, json=payload, headers=rep_auth("R2"))
            assert r.status_code == 403 and "'H2'" in r.json()["message"], r.text
        other = next(
            it
            for it in catalog.items
            if it.topic != first["topic"] and first["channel"] in it.channels
        )
        touch = {
            "hcp_id": "H2",
            "channel": first["channel"],
            "content_id": other.id,
            "overrides_event_id": first["event_id"],
        }
        got = _ok(c.post("/v1/touches", json=touch, headers=r1), 201)
        assert got["override_kind"] == "topic" and got["overrides_event_id"] == first["event_id"]
        # what was overridden cannot then be credited with a response to its action
        r = c.post(
            f"/v1/events/{first['event_id']}/outcomes",
            json={"type": "meeting_held" if first["channel"] == "rep_visit" else "call_held"},
            headers=r1,
        )
        assert r.status_code == 422 and "overridden" in r.json()["message"], r.text
        same = {**touch, "channel": first["channel"], "content_id": first["content_id"]}
        r = c.post("/v1/touches", json=same, headers=r1)
        assert r.status_code == 422 and "not an override" in r.json()["message"]
        r = c.post("/v1/touches", json={**touch, "overrides_event_id": "nope"}, headers=r1)
        assert r.status_code == 404
        # the second suggestion happened as suggested: that one is credited
        held = "meeting_held" if second["channel"] == "rep_visit" else "call_held"
        _ok(
            c.post(f"/v1/events/{second['event_id']}/outcomes", json={"type": held}, headers=r1),
            201,
        )
        until = (TODAY + timedelta(days=10)).isoformat()
        snooze = {"type": "snoozed", "until": until, "source_id": "rep-app-2"}
        _ok(c.post(f"/v1/events/{second['event_id']}/outcomes", json=snooze, headers=r1), 201)

        rep = _ok(c.get("/v1/reps/R1/overrides", headers=r1))
        assert (rep["suggestions"], rep["overridden"], rep["rate"]) == (2, 1, 0.5)
        assert rep["by_kind"] == {"hcp": 0, "channel": 0, "topic": 1, "content": 0}
        by_topic = {t["key"]: t for t in rep["by_topic"]}
        assert by_topic[first["topic"]]["overridden"] == 1

        # --- the timeline, paged newest first
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1}
            if cursor:
                params["before"] = cursor
            page = _ok(c.get("/v1/hcps/H3/timeline", params=params, headers=r1))
            assert len(page["items"]) <= 1
            items += page["items"]
            cursor = page["next_before"]
            if cursor is None:
                break
        # the held meeting is an outcome and, being proof of contact, our touch
        assert [i["type"] for i in items] == ["feedback", "outcome", "touch", "decision"]
        assert items[2]["origin"] == "ours" and items[2]["content_id"] == second["content_id"]
        ts = [i["ts"] for i in items]
        assert ts == sorted(ts, reverse=True)
        decision = items[-1]
        assert decision["event_id"] == second["event_id"]
        assert decision["policy"] == "uniform" and decision["model_version"] == day["model_version"]
        supp = page["active_suppressions"]
        assert [(s["content_id"], s["rule"]) for s in supp] == [(second["content_id"], "snoozed")]
        assert supp[0]["until"].startswith(until)
        h2 = _ok(c.get("/v1/hcps/H2/timeline", headers=r1))["items"]
        assert h2[0]["type"] == "touch" and h2[0]["overrides_event_id"] == first["event_id"]
        assert h2[0]["origin"] == "external"
        r = c.get("/v1/hcps/H2/timeline", params={"before": "garbage"}, headers=r1)
        assert r.status_code == 422 and "before" in r.json()["message"]

    # --- stored and exported: the override touch carries its link, never a reward
    store = EventStore(tmp / "events.db")
    for s in day["suggestions"]:
        d = store.get_decision(s["event_id"])
        assert d is not None and d.requester == "rep_app" and d.propensity == s["propensity"]
        assert d.chosen_action_id == s["action_id"] and d.activated
    assert store.counts()["decisions"] == 2  # the repeat call and the cut HCP logged nothing
    out = tmp / "logs"
    store.export(out)
    touches = logio.read(out, "touches").to_pylist()
    assert [t["overrides_event_id"] for t in touches if t["overrides_event_id"]] == [
        first["event_id"]
    ]
    joined = load_joined(
        out, RewardDefinition.default(), as_of=datetime.now(UTC) + timedelta(days=60)
    ).table.to_pylist()
    by_event = {j["event_id"]: j for j in joined}
    assert by_event[first["event_id"]]["reward_is_default"] is True
    assert by_event[first["event_id"]]["n_outcomes"] == 0
    assert by_event[second["event_id"]]["reward_is_default"] is False


def test_day_list_of_another_day_needs_client_time(server: tuple[str, Path]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, timeout=30) as c:
        _ok(c.put("/v1/hcps/T1", json=HCP_BODY, headers=auth("report")), 201)
        _ok(
            c.put(
                "/v1/reps/R3",
                json={"capacity_per_day": 1, "hcp_ids": ["T1"]},
                headers=auth("admin"),
            ),
            201,
        )
        r = c.get(
            "/v1/reps/R3/suggestions",
            params={"date": str(TODAY + timedelta(days=1))},
            headers=auth("decide"),
        )
        assert r.status_code == 422 and "NBA_ALLOW_CLIENT_TIME" in r.json()["message"], r.text


def test_concurrent_first_calls_store_one_list(tmp_path: Path) -> None:
    import threading

    proc, base = start_server(tmp_path, workers=2)
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            hcps = [f"C{i}" for i in range(6)]
            for h in hcps:
                _ok(c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")), 201)
            rep = {"capacity_per_day": 4, "hcp_ids": hcps}
            _ok(c.put("/v1/reps/RC", json=rep, headers=auth("admin")), 201)
        answers: list[Any] = []
        lock = threading.Lock()

        def ask() -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                got = _ok(c.get("/v1/reps/RC/suggestions", headers=auth("decide")))
            with lock:
                answers.append(got)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop_server(proc)
    assert len(answers) == 8 and all(a == answers[0] for a in answers)
    assert len(answers[0]["suggestions"]) == 4
    store = EventStore(tmp_path / "events.db")
    assert store.counts()["decisions"] == 4  # the losers' decisions were never stored
