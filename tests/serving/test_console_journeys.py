"""The console's journeys page and the journeys on the HCP page, without a browser
(TestClient on a real SQLite store): rendering with and without journeys in force,
a bad text named inline with its key and line while the journeys in force stay,
apply and rollback with their audit rows, the admin scope, the CSRF token, and a
rep's territory on the HCP page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from console_kit import CONSOLE_SECRET, REP_KEYS, console_keys
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, KEYS, auth, make_settings
from test_console import login

from nba.paths import PROJECT_ROOT
from serving.main import create_app

EXAMPLE = (PROJECT_ROOT / "nba" / "data" / "journeys.toml").read_text(encoding="utf-8")
#: the example's first step window, reversed: refused naming its key and line
BROKEN = EXAMPLE.replace("after_days = [2, 5]", "after_days = [5, 2]", 1)
BROKEN_LINE = 1 + BROKEN.splitlines().index("after_days = [5, 2]")
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _clock_at_each_test() -> None:
    """TODAY taken again when each test starts: taken once at import, they are a
    day behind the service's clock for a test that runs after midnight UTC."""
    global TODAY
    TODAY = datetime.now(UTC).date()


def _text(r: Any) -> str:
    return html.unescape(r.text)


def _in_force(c: TestClient) -> dict[str, Any]:
    return c.get("/v1/journeys", headers=auth("report")).json()


def _history(c: TestClient) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = c.get("/v1/journeys/history", headers=auth("report")).json()[
        "versions"
    ]
    return versions


def _post(c: TestClient, csrf: str, **form: str) -> Any:
    return c.post("/console/journeys", data={"csrf_token": csrf, **form})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    cfg = make_settings(tmp_path, api_keys=console_keys(), console_secret=CONSOLE_SECRET)
    with TestClient(create_app(cfg)) as c:
        for h in ("H1", "H2", "H3"):
            assert c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")).status_code == 201
        since = str(TODAY - timedelta(days=5))
        for rep, hcps in (("R1", ["H1", "H2"]), ("R2", ["H3"])):
            body = {"capacity_per_day": 2, "hcp_ids": hcps, "effective_from": since}
            assert c.put(f"/v1/reps/{rep}", json=body, headers=auth("admin")).status_code == 201
        yield c


def _apply_example(c: TestClient, csrf: str, comment: str = "webinar follow-ups") -> Any:
    return c.post(
        "/console/journeys",
        data={
            "csrf_token": csrf,
            "action": "apply",
            "text": EXAMPLE,
            "comment": comment,
            "expected_version": "0",
        },
        follow_redirects=False,
    )


def test_no_journeys_in_force_then_an_admin_applies_the_first(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    page = client.get("/console/journeys")
    assert page.status_code == 200
    assert 'id="no-journeys"' in page.text and "No journeys are in force" in page.text
    assert "Write a first version below" in page.text and 'value="apply"' in page.text
    assert "No journeys version was ever applied." in page.text
    r = _apply_example(client, csrf)
    assert r.status_code == 303 and r.headers["location"] == "/console/journeys?applied=1"
    # the audit row: who, what, why; and the journeys are in force in the service
    [row] = _history(client)
    assert (row["version"], row["who"], row["action"], row["comment"]) == (
        1,
        "admin-client",
        "apply",
        "webinar follow-ups",
    )
    assert [j["name"] for j in _in_force(client)["journeys"]] == [
        "webinar-followup",
        "safety-nurture",
    ]
    page = client.get(r.headers["location"])
    text = _text(page)
    assert 'id="no-journeys"' not in page.text
    assert "Version 1 applied and in force." in text
    assert "Version 1 in force" in text and "apply by admin-client" in text
    # readable, not only the TOML: priority, entry, steps and windows, exit, exclusions
    assert "webinar-followup" in text and "priority 20" in text and "priority 10" in text
    assert "an HCP response attended on webinar, about any topic" in re.sub(r"<[^>]+>", "", text)
    assert "window 2 to 5 days after the entry" in text
    assert "nothing on its channels before the window opens" in text
    assert "repeated until the HCP engages with the topic, at most 3 attempts" in text
    assert "at most 30 days after the entry" in text
    assert "adoption stages advocate" in text
    history = re.search(r'<table id="history">.*?</table>', page.text, re.S)
    assert history is not None
    assert "admin-client" in history.group(0) and "webinar follow-ups" in history.group(0)
    assert "(in force)" in history.group(0)


def test_a_bad_text_is_named_inline_and_the_journeys_in_force_stay(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    assert _apply_example(client, csrf).status_code == 303
    before = _in_force(client)
    r = _post(client, csrf, action="apply", text=BROKEN, comment="wider", expected_version="1")
    assert r.status_code == 422
    err = re.search(r'<p class="error" role="alert" id="journeys-error">(.*?)</p>', r.text, re.S)
    assert err is not None
    message = html.unescape(err.group(0))
    assert f"line {BROKEN_LINE}" in message
    assert "journeys.0.steps.0.after_days" in message
    assert 'aria-invalid="true"' in r.text
    assert "after_days = [5, 2]" in _text(r)  # the text stays in the editor
    assert _in_force(client) == before and len(_history(client)) == 1
    # a TOML syntax error is named with its line too, also for "Check and diff"
    r = _post(client, csrf, action="diff", text=EXAMPLE + "\n[[journeys]\n")
    assert r.status_code == 422 and 'id="journeys-error"' in r.text
    assert re.search(r"line \d+", _text(r)), _text(r)[:2000]
    assert _in_force(client) == before


def test_check_and_diff_shows_the_change_against_the_version_in_force(
    client: TestClient,
) -> None:
    csrf = login(client, KEYS["admin"])
    assert _apply_example(client, csrf).status_code == 303
    new = EXAMPLE.replace("after_days = [2, 5]", "after_days = [2, 7]", 1)
    r = _post(client, csrf, action="diff", text=new)
    assert r.status_code == 200
    text = _text(r)
    assert "Diff against version 1" in text
    assert "-after_days = [2, 5]" in text and "+after_days = [2, 7]" in text
    r = _post(client, csrf, action="diff", text=EXAMPLE + "\n# a comment only\n")
    assert "does not change the journeys" in _text(r)
    assert len(_history(client)) == 1


def test_apply_without_a_comment_is_refused_inline(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    r = _post(client, csrf, action="apply", text=EXAMPLE, comment="  ", expected_version="0")
    assert r.status_code == 422 and "a comment is required" in _text(r)
    assert "webinar-followup" in r.text  # the text stays
    assert _history(client) == [] and _in_force(client)["version"] is None


def test_report_key_reads_and_checks_but_cannot_apply(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    assert _apply_example(client, csrf).status_code == 303
    client.cookies.clear()
    csrf = login(client, KEYS["report"])
    page = client.get("/console/journeys")
    assert page.status_code == 200 and "readonly" in page.text
    assert 'value="apply"' not in page.text and "Roll back" not in page.text
    new = EXAMPLE.replace("priority = 20", "priority = 30", 1)
    r = _post(client, csrf, action="apply", text=new, comment="x", expected_version="1")
    assert r.status_code == 403 and "lacks the 'admin' scope" in _text(r)
    r = client.post(
        "/console/journeys/rollback", data={"csrf_token": csrf, "version": "1", "comment": "x"}
    )
    assert r.status_code == 403
    assert _post(client, csrf, action="diff", text=new).status_code == 200
    assert len(_history(client)) == 1
    # a rep's key does not open the marketer's page at all
    client.cookies.clear()
    login(client, REP_KEYS["R1"])
    assert client.get("/console/journeys").status_code == 403


def test_posts_without_the_csrf_token_change_nothing(client: TestClient) -> None:
    login(client, KEYS["admin"])
    for token in ("", "forged-token"):
        r = client.post(
            "/console/journeys",
            data={"csrf_token": token, "action": "apply", "text": EXAMPLE, "comment": "x"},
        )
        assert r.status_code == 403 and "security token" in r.text
        r = client.post(
            "/console/journeys/rollback",
            data={"csrf_token": token, "version": "1", "comment": "x"},
        )
        assert r.status_code == 403 and "security token" in r.text
    assert _history(client) == []


def test_rollback_to_an_earlier_version(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    assert _apply_example(client, csrf).status_code == 303
    new = EXAMPLE.replace("priority = 20", "priority = 30", 1)
    r = client.post(
        "/console/journeys",
        data={"csrf_token": csrf, "action": "apply", "text": new, "comment": "webinars first"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/journeys?applied=2"
    assert _in_force(client)["version"] == 2
    page = client.get("/console/journeys?diff=1")
    text = _text(page)
    assert "What a rollback to version 1 would change" in text
    assert "+priority = 20" in text and "Roll back to version 1" in text
    r = client.post("/console/journeys/rollback", data={"csrf_token": csrf, "version": "1"})
    assert r.status_code == 422 and "comment" in _text(r)
    r = client.post(
        "/console/journeys/rollback", data={"csrf_token": csrf, "version": "9", "comment": "x"}
    )
    assert r.status_code == 404 and "no journeys version 9" in _text(r)
    assert _in_force(client)["version"] == 2
    r = client.post(
        "/console/journeys/rollback",
        data={"csrf_token": csrf, "version": "1", "comment": "back to 20"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/journeys?applied=3"
    top = _history(client)[0]
    assert (top["version"], top["action"], top["who"]) == (3, "rollback", "admin-client")
    assert top["comment"] == "rollback to version 1: back to 20"
    assert "priority = 20" in _in_force(client)["text"]


def test_hcp_page_shows_where_the_hcp_stands_within_the_territory(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    page = client.get("/console/hcps/H1")
    assert page.status_code == 200 and "No journeys are in force." in page.text
    assert _apply_example(client, csrf).status_code == 303
    # H1 attends a webinar: it enters the follow-up journey, its step waiting
    d = client.post(
        "/v1/decisions", json={"hcp_id": "H1", "channels": ["webinar"]}, headers=auth("decide")
    )
    assert d.status_code == 201, d.text
    r = client.post(
        f"/v1/events/{d.json()['event_id']}/outcomes",
        json={"type": "attended"},
        headers=auth("report"),
    )
    assert r.status_code == 201, r.text
    api = client.get("/v1/hcps/H1/journeys", headers=auth("report")).json()
    follow = next(s for s in api["journeys"] if s["journey"] == "webinar-followup")
    assert follow["status"] == "waiting" and follow["label"] == "webinar-followup/1"
    text = _text(client.get("/console/hcps/H1"))
    table = re.search(r'<table id="hcp-journeys".*?</table>', text, re.S)
    assert table is not None
    for s in api["journeys"]:
        assert s["journey"] in table.group(0) and s["reason"] in table.group(0)
        assert s["status"].replace("_", " ") in table.group(0)
    start, end = follow["window"]
    assert "webinar-followup/1" in table.group(0) and f"{start} to {end}" in table.group(0)
    assert "No journey step is due now." in text
    # a rep's key sees the journeys of its own HCPs only
    client.cookies.clear()
    login(client, REP_KEYS["R1"])
    assert 'id="hcp-journeys"' in client.get("/console/hcps/H1").text
    r = client.get("/console/hcps/H3")
    assert r.status_code == 403 and 'id="hcp-journeys"' not in r.text
