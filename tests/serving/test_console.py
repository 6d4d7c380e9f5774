"""The console without a browser (TestClient on a real SQLite store): sessions,
CSRF, scopes and territories, the console secret's settings, and bad input."""

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
from pydantic import ValidationError
from serving_testkit import HCP_BODY, KEYS, auth, make_settings

from serving.console.session import COOKIE
from serving.main import create_app
from serving.settings import Settings, hash_key

TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _clock_at_each_test() -> None:
    """TODAY taken again when each test starts: taken once at import, they are a
    day behind the service's clock for a test that runs after midnight UTC."""
    global TODAY
    TODAY = datetime.now(UTC).date()


def _text(r: Any) -> str:
    """The page's text with HTML entities resolved."""
    return html.unescape(r.text)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def login(c: TestClient, key: str) -> str:
    """Log in with ``key``; returns the session's CSRF token."""
    page = c.get("/console/login")
    r = c.post(
        "/console/login",
        data={"csrf_token": _csrf(page.text), "api_key": key, "next": "/console"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return _csrf(c.get("/console").text)


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, api_keys=console_keys(), console_secret=CONSOLE_SECRET)


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        for h in ("H1", "H2", "H3"):
            assert c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")).status_code == 201
        since = str(TODAY - timedelta(days=5))
        for rep, hcps in (("R1", ["H1", "H2"]), ("R2", ["H3"])):
            body = {"capacity_per_day": 2, "hcp_ids": hcps, "effective_from": since}
            assert c.put(f"/v1/reps/{rep}", json=body, headers=auth("admin")).status_code == 201
        yield c


def test_root_redirects_to_the_console(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console"
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login?next=%2Fconsole"


def test_session_cookie_flags_and_headers(client: TestClient) -> None:
    r = client.get("/console/login")
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "Path=/console" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_login_refuses_unknown_and_empty_keys_inline(client: TestClient) -> None:
    token = _csrf(client.get("/console/login").text)
    r = client.post("/console/login", data={"csrf_token": token, "api_key": "nope"})
    assert r.status_code == 401 and "Unknown API key" in r.text
    assert 'aria-invalid="true"' in r.text
    r = client.post("/console/login", data={"csrf_token": token, "api_key": "  "})
    assert r.status_code == 401 and "Enter an API key." in r.text


def test_posts_without_the_sessions_csrf_token_are_refused(client: TestClient) -> None:
    r = client.post("/console/login", data={"api_key": KEYS["admin"]})
    assert r.status_code == 403 and "security token" in r.text
    login(client, KEYS["admin"])
    text = client.get("/v1/rules", headers=auth("report")).json()["text"]
    for token in ("", "forged-token"):
        r = client.post(
            "/console/rules",
            data={"csrf_token": token, "action": "apply", "text": text + "\n", "comment": "x"},
        )
        assert r.status_code == 403 and "security token" in r.text
    assert client.get("/v1/rules", headers=auth("report")).json()["store_version"] == 1


def test_next_is_kept_inside_the_console(client: TestClient) -> None:
    for bad in ("https://elsewhere.example/", "//elsewhere.example/console", "/v1/rules"):
        client.cookies.clear()
        page = client.get("/console/login")
        r = client.post(
            "/console/login",
            data={"csrf_token": _csrf(page.text), "api_key": KEYS["report"], "next": bad},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/console", bad


def test_forged_cookie_and_removed_key_log_out(
    client: TestClient, app_settings: Settings, tmp_path: Path
) -> None:
    login(client, KEYS["report"])
    assert client.get("/console/kpis").status_code == 200
    cookie = client.cookies.get(COOKIE)
    assert cookie is not None
    client.cookies.set(COOKIE, cookie[:-3] + "abc", path="/console")
    r = client.get("/console/kpis", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    # the same secret, but the key is no longer configured: its session is dead
    others = [k for k in console_keys() if k["name"] != "report-client"]
    cfg = make_settings(tmp_path, api_keys=others, console_secret=CONSOLE_SECRET)
    with TestClient(create_app(cfg)) as other:
        other.cookies.set(COOKIE, cookie, path="/console")
        r = other.get("/console/kpis", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_report_key_reads_but_does_not_change_rules(client: TestClient) -> None:
    csrf = login(client, KEYS["report"])
    page = client.get("/console/rules")
    assert page.status_code == 200 and "readonly" in page.text
    assert 'value="apply"' not in page.text and "Roll back" not in page.text
    text = client.get("/v1/rules", headers=auth("report")).json()["text"]
    r = client.post(
        "/console/rules",
        data={"csrf_token": csrf, "action": "apply", "text": text + "\n", "comment": "x"},
    )
    assert r.status_code == 403 and "lacks the 'admin' scope" in _text(r)
    # checking a text is allowed, and an invalid one is named inline with its line
    r = client.post(
        "/console/rules", data={"csrf_token": csrf, "action": "diff", "text": "min_gap = [\n"}
    )
    assert r.status_code == 422 and 'id="rules-error"' in r.text
    r = client.get("/console/reps/R1")
    assert r.status_code == 403 and "lacks the 'decide' scope" in _text(r)
    for path in ("/console/kpis", "/console/catalog", "/console/models", "/console/journeys"):
        assert client.get(path).status_code == 200, path


def test_apply_without_a_comment_is_refused_inline(client: TestClient) -> None:
    csrf = login(client, KEYS["admin"])
    text = client.get("/v1/rules", headers=auth("report")).json()["text"]
    new = text.replace("days = 21", "days = 28", 1)
    r = client.post(
        "/console/rules", data={"csrf_token": csrf, "action": "apply", "text": new, "comment": ""}
    )
    assert r.status_code == 422 and "comment" in r.text and "days = 28" in r.text
    assert client.get("/v1/rules", headers=auth("report")).json()["store_version"] == 1
    r = client.post("/console/rules/rollback", data={"csrf_token": csrf, "version": "9"})
    assert r.status_code == 422 and "comment" in r.text


def test_rep_key_stays_in_its_territory(client: TestClient) -> None:
    csrf = login(client, REP_KEYS["R1"])
    for path in ("/console", "/console/rep"):
        r = client.get(path, follow_redirects=False)
        assert r.headers["location"] == "/console/reps/R1", path
    day = client.get("/v1/reps/R2/suggestions", headers=auth("admin")).json()
    foreign = day["suggestions"][0]["event_id"]
    assert client.get("/console/hcps/H3").status_code == 403
    assert client.get("/console/reps/R2").status_code == 403
    assert client.get("/console/kpis").status_code == 403
    assert client.get("/console/models/runs/x/artifacts/a.png").status_code == 403
    r = client.post(
        "/console/reps/R1/feedback",
        data={"csrf_token": csrf, "event_id": foreign, "type": "accepted"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "outside+the+territory" in r.headers["location"]
    assert (
        client.get(
            f"/v1/hcps/{day['suggestions'][0]['hcp_id']}/timeline", headers=auth("report")
        ).json()["items"][0]["type"]
        == "decision"
    )  # nothing stored


def test_bad_feedback_is_named_and_nothing_is_stored(client: TestClient) -> None:
    csrf = login(client, REP_KEYS["R1"])
    assert client.get("/console/reps/R1").status_code == 200
    day = client.get("/v1/reps/R1/suggestions", headers=auth("admin")).json()
    s = day["suggestions"][0]
    cases = [
        ({"type": "snoozed", "until": str(TODAY - timedelta(days=1))}, "is not after"),
        ({"type": "snoozed", "until": "someday"}, "until"),
        ({"type": "dismissed", "reason_code": ""}, "a dismissal needs a reason code"),
        ({"type": "liked"}, "unknown outcome type"),
    ]
    for extra, message in cases:
        r = client.post(
            "/console/reps/R1/feedback",
            data={"csrf_token": csrf, "event_id": s["event_id"], **extra},
        )
        assert r.status_code == 200 and message in _text(r), extra
        assert 'role="alert"' in r.text
    tl = client.get(f"/v1/hcps/{s['hcp_id']}/timeline", headers=auth("report")).json()
    assert [i["type"] for i in tl["items"]] == ["decision"]
    r = client.post("/console/reps/R1/notifications/99/ack", data={"csrf_token": csrf})
    assert "has no notification 99" in _text(r)


def test_bad_query_and_unknown_artifact(client: TestClient) -> None:
    login(client, KEYS["admin"])
    assert client.get("/console/kpis?days=5").status_code == 422
    assert client.get("/console/kpis?alpha=0.9").status_code == 422
    r = client.get("/console/models/runs/nope/artifacts/../../etc/passwd.png")
    assert r.status_code == 404
    assert client.get("/console/reps/R9").status_code == 404
    assert client.get("/console/hcps/H9").status_code == 404


def test_console_off_without_a_secret(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        r = c.get("/console/login")
        assert r.status_code == 503 and "NBA_CONSOLE_SECRET" in r.text


def test_auth_disabled_needs_no_login(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auth_disabled=True))) as c:
        r = c.get("/console")
        assert r.status_code == 200 and "auth-disabled" in r.text


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("changethis", "well-known default"),
        ("secret", "well-known default"),
        ("x" * 31, "shorter than 32"),
    ],
)
def test_default_or_short_secret_refused_with_auth_on(secret: str, match: str) -> None:
    keys = [{"name": "a", "sha256": hash_key("a-real-key-123"), "scopes": ["admin"]}]
    with pytest.raises(ValidationError, match=match):
        Settings(api_keys=keys, console_secret=secret)
    Settings(auth_disabled=True, console_secret=secret)  # a local demo may use anything


def test_decide_only_key_sees_the_day_but_reports_nothing(client: TestClient) -> None:
    csrf = login(client, KEYS["decide"])
    assert client.get("/console/reps/R1").status_code == 200
    day = client.get("/v1/reps/R1/suggestions", headers=auth("admin")).json()
    s = day["suggestions"][0]
    r = client.post(
        "/console/reps/R1/feedback",
        data={"csrf_token": csrf, "event_id": s["event_id"], "type": "accepted"},
    )
    assert r.status_code == 403 and "lacks the 'report' scope" in _text(r)
    r = client.get(f"/console/hcps/{s['hcp_id']}")
    assert r.status_code == 403 and "see HCP timelines" in _text(r)
    tl = client.get(f"/v1/hcps/{s['hcp_id']}/timeline", headers=auth("report")).json()
    assert [i["type"] for i in tl["items"]] == ["decision"]
