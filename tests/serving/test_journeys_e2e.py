"""Journeys against a real ``nba serve`` on 127.0.0.1 (two workers, simulated time):
after a webinar attended, the email follow-up on the webinar's topic happens in
the window the journey names and the decision records the step; nothing goes
out by email before the window; a bad journeys file is refused naming the key
and the line, and the journeys in force stay; a good one reaches every worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.catalog import Catalog
from nba.journeys import JourneySet

DAY0 = datetime(2026, 3, 2, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("journeys")
    journeys = Path(__file__).resolve().parents[2] / "nba" / "data" / "journeys.toml"
    proc, base = start_server(
        tmp,
        workers=2,
        NBA_ALLOW_CLIENT_TIME="true",
        NBA_JOURNEYS_PATH=str(journeys),
        NBA_RULES_CHECK_MS="0",
    )
    try:
        yield base, tmp
    finally:
        stop_server(proc)


def _decide(c: httpx.Client, hcp: str, channels: list[str], at: datetime) -> httpx.Response:
    return c.post(
        "/v1/decisions",
        json={"hcp_id": hcp, "channels": channels, "as_of": at.isoformat()},
        headers=auth("decide"),
    )


def test_a_webinar_attended_gets_its_followup_in_the_window(server: tuple[str, Path]) -> None:
    base, _ = server
    topic_of = {it.id: it.topic for it in Catalog.default().items}
    with httpx.Client(base_url=base, timeout=30) as c:
        body = {**HCP_BODY, "consents": ["email", "webinar"]}
        assert c.put("/v1/hcps/J1", json=body, headers=auth("report")).status_code == 201
        r = _decide(c, "J1", ["webinar"], DAY0)
        assert r.status_code == 201, r.text
        web = r.json()
        assert web["journey"] is None
        topic = topic_of[web["chosen_action_id"].split("@")[0]]
        r = c.post(
            f"/v1/events/{web['event_id']}/outcomes",
            json={"type": "attended", "ts": (DAY0 + timedelta(hours=1)).isoformat()},
            headers=auth("report"),
        )
        assert r.status_code == 201, r.text

        day1 = DAY0 + timedelta(days=1, hours=3)  # past the rules' 24 h minimum gap
        r = c.get(
            "/v1/hcps/J1/journeys", params={"as_of": day1.isoformat()}, headers=auth("decide")
        )
        assert r.status_code == 200, r.text
        first = r.json()["journeys"][0]
        assert first["journey"] == "webinar-followup"
        assert (first["status"], first["holding"], first["topic"]) == ("waiting", True, topic)
        assert first["window"] == ["2026-03-04", "2026-03-07"]
        assert r.json()["governs"] is None
        # held: no email before the window opens, each action naming the hold
        r = _decide(c, "J1", ["email"], day1)
        assert r.status_code == 200 and r.json()["event_id"] is None
        rules = {s["rule"] for s in r.json()["suppressed"]}
        assert "journey_hold:webinar-followup/1" in rules

        day3 = DAY0 + timedelta(days=2, hours=14)  # 2026-03-04 07:00, the window's first day
        r = c.get(
            "/v1/hcps/J1/journeys", params={"as_of": day3.isoformat()}, headers=auth("decide")
        )
        assert r.json()["governs"] == "webinar-followup/1"
        r = _decide(c, "J1", ["email"], day3)
        assert r.status_code == 201, r.text
        follow = r.json()
        assert follow["journey"] == "webinar-followup/1"
        chosen = follow["chosen_action_id"]
        assert chosen.endswith("@email") and topic_of[chosen.split("@")[0]] == topic
        # every suggestion is on the webinar's topic; other emails name the step
        assert {s["topic"] for s in follow["suggestions"]} == {topic}
        others = [s for s in follow["suppressed"] if s["rule"] == "journey:webinar-followup/1"]
        assert others and all(topic_of[s["action_id"].split("@")[0]] != topic for s in others)

        later = DAY0 + timedelta(days=4)
        r = c.get(
            "/v1/hcps/J1/journeys", params={"as_of": later.isoformat()}, headers=auth("decide")
        )
        assert r.json()["journeys"][0]["status"] == "completed"
        # the KPIs group decisions by the step that allowed them
        r = c.get(
            "/v1/kpis",
            params={"since": "2026-03-01", "until": "2026-03-08", "by": "journey"},
            headers=auth("decide"),
        )
        assert r.status_code == 200, r.text
        groups = {g["key"]: g for g in r.json()["groups"]}
        assert groups["webinar-followup/1"]["decisions"] == 1
        assert groups["none"]["decisions"] == 1
        assert groups["none"]["suppressions"].get("journey_hold:webinar-followup/1", 0) == 0


def test_the_same_history_gives_the_same_answer_as_the_library(server: tuple[str, Path]) -> None:
    # the service's answer is the library's on the HCP's stored history
    base, tmp = server
    from nba.domain import HCPProfile
    from serving.journeys import journey_events
    from serving.store import EventStore

    at = DAY0 + timedelta(days=3)
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.get("/v1/hcps/J1/journeys", params={"as_of": at.isoformat()}, headers=auth("decide"))
    topic_of = {it.id: it.topic for it in Catalog.default().items}
    with EventStore(tmp / "events.db") as store:
        events = journey_events(store, "J1", at - timedelta(days=60), at, topic_of)
    hcp = HCPProfile("J1", "cardiology", 8, "US", "aware", frozenset({"email", "webinar"}))
    expect = [s.to_dict() for s in JourneySet.default().states(hcp, events, at)]
    assert r.json()["journeys"] == expect


def test_a_bad_journeys_file_is_refused_and_the_journeys_in_force_stay(
    server: tuple[str, Path],
) -> None:
    base, _ = server
    good = (Path(__file__).resolve().parents[2] / "nba" / "data" / "journeys.toml").read_text()
    with httpx.Client(base_url=base, timeout=30) as c:
        before = c.get("/v1/journeys", headers=auth("decide")).json()
        assert before["version"] == 1 and before["text"] == good
        assert [j["name"] for j in before["journeys"]] == ["webinar-followup", "safety-nurture"]
        bad = good.replace("after_days = [2, 5]", "after_days = [5, 2]")
        r = c.put(
            "/v1/journeys",
            content=bad,
            params={"comment": "try"},
            headers={**auth("admin"), "content-type": "application/toml"},
        )
        assert r.status_code == 422, r.text
        err = r.json()
        assert err["code"] == "invalid_journeys"
        assert err["details"][0]["loc"] == "journeys.0.steps.0.after_days"
        line = 1 + good.splitlines().index("after_days = [2, 5]")
        assert err["details"][0]["line"] == line and f"line {line}" in err["message"]
        # only an admin may change journeys
        r = c.put(
            "/v1/journeys",
            content=good,
            params={"comment": "x"},
            headers={**auth("decide"), "content-type": "application/toml"},
        )
        assert r.status_code == 403
        for _ in range(4):  # every worker still has version 1
            assert c.get("/v1/journeys", headers=auth("decide")).json()["version"] == 1
        changed = good.replace("after_days = [2, 5]", "after_days = [1, 3]")
        r = c.put(
            "/v1/journeys",
            content=changed,
            params={"comment": "follow up sooner"},
            headers={**auth("admin"), "content-type": "application/toml"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2 and "+after_days = [1, 3]" in r.json()["diff"]
        for _ in range(4):  # both workers answer with the new version
            now = c.get("/v1/journeys", headers=auth("decide")).json()
            assert now["version"] == 2
            assert now["journeys"][0]["steps"][0]["after_days"] == [1, 3]
        hist = c.get("/v1/journeys/history", headers=auth("decide")).json()
        assert [v["version"] for v in hist["versions"]] == [2, 1]
        r = c.post(
            "/v1/journeys:rollback",
            json={"version": 1, "comment": "back"},
            headers=auth("admin"),
        )
        assert r.status_code == 200 and r.json()["version"] == 3
        assert c.get("/v1/journeys", headers=auth("decide")).json()["text"] == good
