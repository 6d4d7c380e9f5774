"""Triggers in the service (in-process app, real SQLite store): events stored with
touches and outcomes fire once, in the same transaction; the HCP's current rep is
notified with the due time; suppressions are honoured by decisions and named; the
notification feed and its acknowledgement; bad event inputs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import auth

from nba.triggers import TriggerSet
from serving.settings import Settings
from serving.store_triggers import TriggerEvent, active_suppressions, event_recorded, fire


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    """Every route test of this module runs on both store backends."""
    return settings_on_both


TODAY = datetime.now(UTC).date()
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _clock_at_each_test() -> None:
    """TODAY and NOW taken again when each test starts: taken once at import, they are a
    day behind the service's clock for a test that runs after midnight UTC."""
    global TODAY, NOW
    TODAY = datetime.now(UTC).date()
    NOW = datetime.now(UTC).replace(microsecond=0)


def _ok(r: Any, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json()


@pytest.fixture
def world(client: TestClient, put_hcp: Callable[..., str]) -> TestClient:
    for h in ("H1", "H2", "H3"):
        put_hcp(h)
    body = {"capacity_per_day": 2, "hcp_ids": ["H1", "H2"], "effective_from": str(TODAY)}
    _ok(client.put("/v1/reps/R1", json=body, headers=auth("admin")), 201)
    _ok(
        client.put(
            "/v1/reps/R2",
            json={"capacity_per_day": 1, "hcp_ids": ["H3"], "effective_from": str(TODAY)},
            headers=auth("admin"),
        ),
        201,
    )
    return client


def _visit_request(c: TestClient, hcp: str, ts: datetime, source: str | None = "f1") -> Any:
    body: dict[str, Any] = {
        "hcp_id": hcp,
        "channel": "portal",
        "content_id": "portal/request-a-visit",
        "kind": "portal_view",
        "ts": ts.isoformat(),
        "event": "visit_request",
    }
    if source is not None:
        body["source_id"] = source
    return c.post("/v1/touches", json=body, headers=auth("report"))


def test_visit_request_notifies_the_current_rep_once(world: TestClient) -> None:
    c = world
    ts = NOW - timedelta(minutes=5)
    first = _ok(_visit_request(c, "H2", ts), 201)
    assert first["stored"] is True and first["event"] == "visit_request"
    assert len(first["notifications"]) == 1
    # the same event again (same source id): no second touch, no second notification
    again = _ok(_visit_request(c, "H2", ts + timedelta(seconds=30)), 201)
    assert again["stored"] is False and again["notifications"] == []
    feed = _ok(c.get("/v1/reps/R1/notifications", headers=auth("report")))["notifications"]
    assert len(feed) == 1
    n = feed[0]
    assert (n["rep_id"], n["hcp_id"], n["trigger"], n["action_id"], n["priority"]) == (
        "R1",
        "H2",
        "visit-request",
        "VEL-EFF-01@rep_visit",
        1,
    )
    assert datetime.fromisoformat(n["due_by"]) == ts + timedelta(hours=24)
    assert datetime.fromisoformat(n["event_ts"]) == ts
    assert _ok(c.get("/v1/reps/R2/notifications", headers=auth("report")))["notifications"] == []
    # one touch stored for the two posts
    timeline = _ok(c.get("/v1/hcps/H2/timeline", headers=auth("report")))["items"]
    assert [i["kind"] for i in timeline if i["type"] == "pull"] == ["portal_view"]
    # without a source id the key is the touch itself: the same time is the same event
    _ok(_visit_request(c, "H1", ts, source=None), 201)
    dup = _ok(_visit_request(c, "H1", ts, source=None), 201)
    assert dup["stored"] is False


def test_ack_and_unread_filter(world: TestClient) -> None:
    c = world
    nid = _ok(_visit_request(c, "H1", NOW), 201)["notifications"][0]
    r1 = "/v1/reps/R1/notifications"
    assert [
        n["id"]
        for n in _ok(c.get(r1, params={"unread": "true"}, headers=auth("report")))["notifications"]
    ] == [nid]
    first = _ok(c.post(f"{r1}/{nid}:ack", headers=auth("report")))
    assert first["already_read"] is False and first["notification"]["read_at"] is not None
    second = _ok(c.post(f"{r1}/{nid}:ack", headers=auth("report")))
    assert second["already_read"] is True
    assert second["notification"]["read_at"] == first["notification"]["read_at"]
    unread = _ok(c.get(r1, params={"unread": "true"}, headers=auth("report")))["notifications"]
    assert unread == []
    read = _ok(c.get(r1, params={"unread": "false"}, headers=auth("report")))["notifications"]
    assert [n["id"] for n in read] == [nid]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _ok(c.get(r1, params={"since": later}, headers=auth("report")))["notifications"] == []
    # another rep's notification id is not R2's
    err = _ok(c.post(f"/v1/reps/R2/notifications/{nid}:ack", headers=auth("report")), 404)
    assert err["code"] == "unknown_notification"
    assert _ok(c.get("/v1/reps/NOPE/notifications", headers=auth("report")), 404)["code"] == (
        "unknown_rep"
    )


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"event": "visit_requested"}, "event"),
        ({"event": None, "source_id": "x"}, "source_id: only a touch with an `event`"),
        ({"overrides_event_id": "E1"}, "event: an override of a suggestion is not a trigger"),
        ({"source_id": ""}, "source_id"),
    ],
)
def test_bad_event_touches_are_refused(
    world: TestClient, patch: dict[str, Any], match: str
) -> None:
    body = {
        "hcp_id": "H1",
        "channel": "portal",
        "content_id": "portal/request-a-visit",
        "kind": "portal_view",
        "event": "visit_request",
        **patch,
    }
    r = world.post("/v1/touches", json=body, headers=auth("report"))
    assert r.status_code == 422, r.text
    assert match in r.text
    assert (
        _ok(world.get("/v1/reps/R1/notifications", headers=auth("report")))["notifications"] == []
    )


def _email_decision(c: TestClient, hcp: str) -> dict[str, Any]:
    return dict(
        _ok(
            c.post(
                "/v1/decisions",
                json={"hcp_id": hcp, "channels": ["email"]},
                headers=auth("decide"),
            ),
            201,
        )
    )


def test_unsubscribe_suppresses_email_and_names_the_trigger(world: TestClient) -> None:
    c = world
    d = _email_decision(c, "H3")
    out = _ok(
        c.post(
            f"/v1/events/{d['event_id']}/outcomes",
            json={"type": "unsubscribed", "source_id": "esp-1"},
            headers=auth("report"),
        ),
        201,
    )
    assert out["trigger_event"] == "unsubscribe" and out["suppressions"] == 1
    assert out["notifications"] == []  # the packaged unsubscribe trigger only suppresses
    again = _ok(
        c.post(
            f"/v1/events/{d['event_id']}/outcomes",
            json={"type": "unsubscribed", "source_id": "esp-1"},
            headers=auth("report"),
        )
    )
    assert again["stored"] is False and again["suppressions"] == 0
    after = c.post(
        "/v1/decisions", json={"hcp_id": "H3", "channels": ["email"]}, headers=auth("decide")
    )
    assert after.status_code == 200, after.text
    body = after.json()
    assert body["event_id"] is None
    rules = {s["rule"] for s in body["suppressed"]}
    assert "trigger:unsubscribed" in rules
    # other channels are still offered
    visit = c.post(
        "/v1/decisions", json={"hcp_id": "H3", "channels": ["rep_visit"]}, headers=auth("decide")
    )
    assert visit.status_code == 201, visit.text


def test_safety_click_notifies_but_other_clicks_do_not(world: TestClient) -> None:
    c = world
    d = _email_decision(c, "H1")
    # any action the decision offered may be clicked (its action_ids, not only those shown)
    safety, other = "VEL-SAF-02@email", "VEL-EFF-02@email"
    plain = _ok(
        c.post(
            f"/v1/events/{d['event_id']}/outcomes",
            json={"type": "clicked", "source_id": "esp-2", "action_id": other},
            headers=auth("report"),
        ),
        201,
    )
    assert plain["trigger_event"] is None and plain["notifications"] == []
    click = _ok(
        c.post(
            f"/v1/events/{d['event_id']}/outcomes",
            json={"type": "clicked", "source_id": "esp-3", "action_id": safety},
            headers=auth("report"),
        ),
        201,
    )
    assert click["trigger_event"] == "safety_click" and len(click["notifications"]) == 1
    n = _ok(c.get("/v1/reps/R1/notifications", headers=auth("report")))["notifications"][0]
    assert (n["hcp_id"], n["trigger"], n["action_id"]) == (
        "H1",
        "safety-click",
        "VEL-SAF-04@remote_call",
    )


def test_event_of_an_hcp_without_a_rep_is_recorded_without_notification(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    put_hcp("H9")
    r = _ok(_visit_request(client, "H9", NOW), 201)
    assert r["stored"] is True and r["notifications"] == []
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert event_recorded(store, "touch:H9|visit_request|f1")


def test_a_failing_trigger_write_keeps_nothing_of_the_event(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    """fire() runs in the caller's transaction: when the transaction fails, neither the
    event nor its suppression is kept."""
    put_hcp("H1")
    store = client.app.state.services.store  # type: ignore[attr-defined]
    ev = TriggerEvent("unsubscribe", "H1", NOW, "email", "VEL-EFF-02", key="k1")
    with pytest.raises(RuntimeError), store._write() as c:
        fire(c, TriggerSet.default(), ev)
        raise RuntimeError("the touch insert failed")
    assert not event_recorded(store, "k1")
    assert active_suppressions(store, "H1", NOW + timedelta(seconds=1)) == []


def test_day_list_puts_triggered_suggestions_first_within_capacity(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    c = client
    for h, dec in (("H4", 2), ("H5", 3), ("H6", 10)):
        put_hcp(h, decile=dec)
    since = str(TODAY - timedelta(days=5))
    body = {"capacity_per_day": 1, "hcp_ids": ["H4", "H5", "H6"], "effective_from": since}
    _ok(c.put("/v1/reps/R3", json=body, headers=auth("admin")), 201)
    # H5 attended a webinar (priority 3), H4 asked for a visit (priority 1)
    webinar = {
        "hcp_id": "H5",
        "channel": "webinar",
        "content_id": "VEL-CLN-01",
        # 40 h ago: past the contact rules' minimum gap, within its 48 h
        "ts": (NOW - timedelta(hours=40)).isoformat(),
        "event": "webinar_attended",
    }
    _ok(c.post("/v1/touches", json=webinar, headers=auth("report")), 201)
    visit = _ok(_visit_request(c, "H4", NOW - timedelta(hours=1)), 201)["notifications"][0]
    day = _ok(c.get("/v1/reps/R3/suggestions", headers=auth("decide")))
    assert len(day["suggestions"]) == 1  # capacity 1: the most urgent trigger wins
    top = day["suggestions"][0]
    assert (top["hcp_id"], top["action_id"], top["trigger"], top["notification_id"]) == (
        "H4",
        "VEL-EFF-01@rep_visit",
        "visit-request",
        visit,
    )
    assert top["reasons"][0].startswith("Triggered by visit request on ")
    assert "(trigger 'visit-request'): due by " in top["reasons"][0]
    assert top["propensity"] == 1.0  # one eligible action: the trigger's
    assert sorted(day["over_capacity"]) == ["H5", "H6"], day["blocked"]
    feed = _ok(c.get("/v1/reps/R3/notifications", headers=auth("report")))["notifications"]
    carried = {n["id"]: n["day_event_id"] for n in feed}
    assert carried[visit] == top["event_id"]
    assert [v for k, v in carried.items() if k != visit] == [None]
    # the entry is a logged decision like any other
    store = c.app.state.services.store  # type: ignore[attr-defined]
    d = store.get_decision(top["event_id"])
    assert d is not None and d.action_ids == ("VEL-EFF-01@rep_visit",)


def test_openapi_documents_the_notification_routes_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    feed = spec["paths"]["/v1/reps/{rep_id}/notifications"]["get"]
    ack = spec["paths"]["/v1/reps/{rep_id}/notifications/{notification_id}:ack"]["post"]
    for op in (feed, ack):
        assert {"403", "404"} <= set(op["responses"])
    assert {p["name"] for p in feed["parameters"]} >= {"rep_id", "since", "unread"}
    schemas = spec["components"]["schemas"]
    from serving import schemas_triggers

    for name in ("NotificationPublic", "NotificationFeed", "AckResponse"):
        assert schemas[name]["examples"], name
        for ex in schemas[name]["examples"]:
            getattr(schemas_triggers, name).model_validate(ex)
    assert any(e.get("event") == "visit_request" for e in schemas["TouchRequest"]["examples"])
    assert "trigger" in schemas["DayEntry"]["properties"]
