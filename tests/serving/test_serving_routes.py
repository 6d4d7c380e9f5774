"""Route contracts: happy and bad paths of every /v1 route, on a real SQLite store."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings

from nba.context import DecisionContext
from nba.domain import Action
from nba.policies.base import sample_index
from serving.settings import Settings


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    """Every route test of this module runs on both store backends."""
    return settings_on_both


def decide(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/decisions", json=body, headers=auth("decide"))


def store(client: TestClient) -> Any:
    return client.app.state.services.store  # type: ignore[attr-defined]


# ------------------------------------------------------------------ decisions
def test_decision_is_stored_with_served_probabilities(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    put_hcp("H1")
    r = decide(client, {"hcp_id": "H1", "k": 3, "context": {"requester": "rep_app", "x": 1}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["suggestions"]) == 3
    assert body["suggestions"][0]["action_id"] == body["chosen_action_id"]
    assert body["model_version"] == "baseline:uniform"
    d = store(client).get_decision(body["event_id"])
    assert d is not None and d.model_version == body["model_version"]
    # the logged propensity is the served probability of the chosen action
    chosen = d.action_ids.index(body["chosen_action_id"])
    assert d.chosen_index == chosen
    assert d.propensity == pytest.approx(d.probabilities[chosen])
    assert body["suggestions"][0]["probability"] == pytest.approx(d.propensity)
    for s in body["suggestions"]:
        assert s["probability"] == pytest.approx(
            d.probabilities[d.action_ids.index(s["action_id"])]
        )
        assert 1 <= len(s["reasons"]) <= 3
    # the choice is the replayable sample of the served vector
    seed = client.app.state.services.models.current.policy.seed  # type: ignore[attr-defined]
    assert sample_index(np.array(d.probabilities), seed, d.event_id) == chosen
    # the logged context is the exact DecisionContext built from store + request
    ctx = DecisionContext.from_json(d.context)
    assert ctx.hcp == store(client).get_hcp("H1")
    assert dict(ctx.request) == {"requester": "rep_app", "x": 1}
    assert d.requester == "rep_app"
    assert d.activated is True


def test_decision_respects_channels_exclude_and_reports_suppressions(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    put_hcp("H1", consents=["email"])
    first = decide(client, {"hcp_id": "H1", "channels": ["email"], "k": 10}).json()
    excluded = first["suggestions"][0]["action_id"]
    r = decide(client, {"hcp_id": "H1", "channels": ["email"], "k": 10, "exclude": [excluded]})
    assert r.status_code == 201
    body = r.json()
    assert all(s["channel"] == "email" for s in body["suggestions"])
    assert excluded not in {s["action_id"] for s in body["suggestions"]}
    rules = {s["action_id"]: s["rule"] for s in body["suppressed"]}
    assert rules[excluded] == "excluded_by_request"
    d = store(client).get_decision(body["event_id"])
    assert excluded not in d.action_ids
    assert {s.action_id for s in d.suppressed} == set(rules)


def test_nothing_allowed_answers_200_with_blocking_rules(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    put_hcp("H0", consents=[])
    r = decide(client, {"hcp_id": "H0", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["suggestions"] == [] and body["event_id"] is None
    assert body["chosen_action_id"] is None
    assert {s["rule"] for s in body["suppressed"]} <= {"consent", "approval"}
    assert "consent" in {s["rule"] for s in body["suppressed"]}
    assert store(client).counts()["decisions"] == 0


def test_no_see_hcp_never_gets_a_visit(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("NS", no_see=True)
    r = decide(client, {"hcp_id": "NS", "channels": ["rep_visit"]})
    assert r.status_code == 200 and r.json()["suggestions"] == []
    assert {s["rule"] for s in r.json()["suppressed"]} <= {"no_see", "approval"}


def test_event_id_reuse_is_a_conflict(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    eid = "01JCALLERCHOSENID000000001"
    assert decide(client, {"hcp_id": "H1", "event_id": eid}).status_code == 201
    r = decide(client, {"hcp_id": "H1", "event_id": eid})
    assert r.status_code == 409 and r.json()["code"] == "event_id_conflict"


@pytest.mark.parametrize(
    ("body", "status", "code", "match"),
    [
        ({"hcp_id": "H1", "k": 0}, 422, "invalid_input", "k"),
        ({"hcp_id": "H1", "k": 11}, 422, "invalid_input", "k"),
        ({"hcp_id": "H1", "channels": ["fax"]}, 422, "invalid_input", "unknown channel 'fax'"),
        ({"hcp_id": "H1", "channels": []}, 422, "invalid_input", "channels"),
        ({"hcp_id": "H1", "exclude": ["no-at-sign"]}, 422, "invalid_input", "exclude"),
        ({"hcp_id": "H1", "context": {"a": [1, 2]}}, 422, "invalid_input", "context"),
        ({"hcp_id": "H1", "surprise": 1}, 422, "invalid_input", "surprise"),
        ({"k": 1}, 422, "invalid_input", "hcp_id"),
        ({"hcp_id": ""}, 422, "invalid_input", "hcp_id"),
        ({"hcp_id": "NOPE"}, 404, "unknown_hcp", "NOPE"),
    ],
)
def test_bad_decision_requests(
    client: TestClient,
    put_hcp: Callable[..., str],
    body: dict[str, Any],
    status: int,
    code: str,
    match: str,
) -> None:
    put_hcp("H1")
    r = decide(client, body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert match in r.json()["message"]


# ---------------------------------------------------------------------- batch
def test_batch_one_event_per_hcp(client: TestClient, put_hcp: Callable[..., str]) -> None:
    for h in ("B1", "B2", "B3"):
        put_hcp(h)
    put_hcp("B4", consents=[])
    r = client.post(
        "/v1/decisions:batch",
        json={"hcp_ids": ["B1", "B2", "B3", "B4", "GHOST"], "channels": ["email"]},
        headers=auth("decide"),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["n_decisions"] == 3 and body["n_blocked"] == 1
    assert body["unknown_hcp_ids"] == ["GHOST"]
    by_hcp = {d["hcp_id"]: d for d in body["decisions"]}
    assert by_hcp["B4"]["event_id"] is None and "consent" in by_hcp["B4"]["blocked_by"]
    for h in ("B1", "B2", "B3"):
        d = store(client).get_decision(by_hcp[h]["event_id"])
        assert d.hcp_id == h and d.chosen_action_id == by_hcp[h]["chosen_action_id"]
        assert Action.parse(d.chosen_action_id).channel == "email"
    assert store(client).counts()["decisions"] == 3


@pytest.mark.parametrize(
    ("hcp_ids", "match"),
    [
        ([], "hcp_ids"),
        (["A", "A"], "listed twice"),
        ([f"H{i}" for i in range(6)], "at most 5"),
    ],
)
def test_bad_batches(tmp_path: Any, hcp_ids: list[str], match: str) -> None:
    from serving.main import create_app

    with TestClient(create_app(make_settings(tmp_path, max_batch=5))) as c:
        r = c.post("/v1/decisions:batch", json={"hcp_ids": hcp_ids}, headers=auth("decide"))
        assert r.status_code == 422 and r.json()["code"] == "invalid_input"
        assert match in r.json()["message"]


# ------------------------------------------------------------------- outcomes
def _event(client: TestClient, put_hcp: Callable[..., str], **kw: Any) -> dict[str, Any]:
    """A decision for H1; on the email channel unless ``channels`` says otherwise (the
    outcome tests report email responses, which only an email action can have)."""
    put_hcp("H1")
    r = decide(client, {"hcp_id": "H1", "k": 3, "channels": ["email"], **kw})
    assert r.status_code == 201
    return dict(r.json())


def post_outcome(client: TestClient, eid: str, body: dict[str, Any]) -> Any:
    return client.post(f"/v1/events/{eid}/outcomes", json=body, headers=auth("report"))


def test_outcomes_are_idempotent(client: TestClient, put_hcp: Callable[..., str]) -> None:
    eid = _event(client, put_hcp)["event_id"]
    r1 = post_outcome(client, eid, {"type": "opened", "source_id": "m-1"})
    r2 = post_outcome(client, eid, {"type": "opened", "source_id": "m-1"})
    r3 = post_outcome(client, eid, {"type": "opened", "source_id": "m-2"})
    assert (r1.status_code, r2.status_code, r3.status_code) == (201, 200, 201)
    assert r1.json()["stored"] and not r2.json()["stored"]
    assert r1.json()["kind"] == "hcp_response"
    assert len(store(client).outcomes_of(eid)) == 2


def test_late_outcome_is_stored_and_flagged(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    eid = _event(client, put_hcp)["event_id"]
    late_ts = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    r = post_outcome(client, eid, {"type": "clicked", "ts": late_ts})
    assert r.status_code == 201 and r.json()["late"] is True
    (stored,) = store(client).outcomes_of(eid)
    assert stored.late is True


def test_rep_feedback_is_kept_apart_and_changes_later_offers(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    ev = _event(client, put_hcp, channels=["email"], k=2)
    chosen, other = ev["suggestions"][0]["action_id"], ev["suggestions"][1]["action_id"]
    until = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    r = post_outcome(
        client, ev["event_id"], {"type": "snoozed", "until": until, "action_id": other}
    )
    assert r.status_code == 201 and r.json()["kind"] == "rep_feedback"
    r = post_outcome(client, ev["event_id"], {"type": "dismissed", "reason_code": "not_relevant"})
    assert r.status_code == 201
    nxt = decide(client, {"hcp_id": "H1", "channels": ["email"], "k": 10}).json()
    rules = {s["action_id"]: s["rule"] for s in nxt["suppressed"]}
    assert rules[chosen] == "dismissed"
    assert rules[other] == "snoozed"
    kinds = {o.outcome.type: o for o in store(client).outcomes_of(ev["event_id"])}
    assert (
        kinds["dismissed"].kind == "feedback" and kinds["dismissed"].reason_code == "not_relevant"
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"type": "teleported"}, "unknown outcome type"),
        ({"type": "dismissed"}, "reason code"),
        ({"type": "opened", "reason_code": "x"}, "rep feedback"),
        ({"type": "accepted", "until": "2030-01-01"}, "only a snooze"),
        ({"type": "snoozed", "until": "2000-01-01"}, "not after"),
        ({"type": "opened", "ts": "2026-01-05T10:00:00"}, "timezone"),
        ({"type": "opened", "ts": "2000-01-05T10:00:00Z"}, "before its decision"),
        ({"type": "opened", "value": "NaN"}, "value"),
        ({"type": "accepted", "action_id": "VEL-NOPE@email"}, "was not offered"),
        ({"type": "clicked", "action_id": "VEL-EFF-01@rep_visit"}, "was not offered"),
        ({"type": "meeting_held"}, "type 'meeting_held' cannot happen on channel 'email'"),
        ({"type": "visited"}, "(only on: portal)"),
    ],
)
def test_bad_outcomes(
    client: TestClient, put_hcp: Callable[..., str], body: dict[str, Any], match: str
) -> None:
    eid = _event(client, put_hcp)["event_id"]
    r = post_outcome(client, eid, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input" and match in r.json()["message"]


def test_outcome_for_unknown_event(client: TestClient) -> None:
    r = post_outcome(client, "01UNKNOWNEVENT000000000000", {"type": "opened"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_event"


def test_first_contact_outcome_records_our_touch(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    ev = _event(client, put_hcp, channels=["email"])
    post_outcome(client, ev["event_id"], {"type": "delivered"})
    post_outcome(client, ev["event_id"], {"type": "opened"})
    touches = client.get("/v1/hcps/H1", headers=auth("report")).json()["recent_touches"]
    assert [(t["origin"], t["channel"]) for t in touches] == [("ours", "email")]
    assert touches[0]["content_id"] == Action.parse(ev["chosen_action_id"]).content_id


# ----------------------------------------------------------------- activation
def test_deferred_activation(client: TestClient, put_hcp: Callable[..., str]) -> None:
    ev = _event(client, put_hcp, defer_activation=True)
    assert ev["activated"] is False
    assert store(client).get_decision(ev["event_id"]).activated is False
    r = client.post(f"/v1/events/{ev['event_id']}/activate", headers=auth("decide"))
    assert r.status_code == 200 and r.json() == {
        "event_id": ev["event_id"],
        "activated": True,
        "already_active": False,
    }
    assert store(client).get_decision(ev["event_id"]).activated is True
    again = client.post(f"/v1/events/{ev['event_id']}/activate", headers=auth("decide"))
    assert again.json()["already_active"] is True
    r = client.post("/v1/events/01UNKNOWNEVENT000000000000/activate", headers=auth("decide"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_event"


# -------------------------------------------------------------------- touches
def test_external_touches_count_for_caps(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    now = datetime.now(UTC)
    for days in (5, 3):
        r = client.post(
            "/v1/touches",
            json={
                "hcp_id": "H1",
                "channel": "email",
                "content_id": "EXT-1",
                "ts": (now - timedelta(days=days)).isoformat(),
            },
            headers=auth("report"),
        )
        assert r.status_code == 201, r.text
    r = decide(client, {"hcp_id": "H1", "channels": ["email"]})
    assert r.status_code == 200 and r.json()["suggestions"] == []
    assert "frequency_cap:email:2/7d" in {s["rule"] for s in r.json()["suppressed"]}
    detail = client.get("/v1/hcps/H1", headers=auth("report")).json()
    assert [t["origin"] for t in detail["recent_touches"]] == ["external", "external"]


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"hcp_id": "GHOST", "channel": "email", "content_id": "c"}, 404, "GHOST"),
        (
            {"hcp_id": "H1", "channel": "pigeon", "content_id": "c"},
            422,
            "channel: 'pigeon' is not one of the catalog's channels: rep_visit, remote_call",
        ),
        (
            {"hcp_id": "H1", "channel": "email", "content_id": "c", "ts": "2026-01-01T00:00:00"},
            422,
            "timezone",
        ),
        ({"hcp_id": "H1", "channel": "email", "content_id": "c", "origin": "alien"}, 422, "origin"),
        ({"channel": "email", "content_id": "c"}, 422, "hcp_id"),
        ({"hcp_id": "H1", "channel": "email"}, 422, "content_id: Field required"),
        ({"hcp_id": "H1", "channel": "email", "content_id": ""}, 422, "content_id: String should"),
        (
            {"hcp_id": "H1", "channel": "email", "content_id": "c", "kind": "like"},
            422,
            "kind: Value error, 'like' is not one of contact, detail_pull, email_click, "
            "portal_view, webinar_question",
        ),
        (
            {
                "hcp_id": "H1",
                "channel": "email",
                "content_id": "c",
                "kind": "email_click",
                "topics": ["dosng"],
            },
            422,
            "topics: 'dosng' is not one of the catalog's topics: efficacy, safety",
        ),
        (
            {"hcp_id": "H1", "channel": "email", "content_id": "c", "topics": ["dosing"]},
            422,
            "field 'topics': a plain contact carries no topics",
        ),
        (
            {
                "hcp_id": "H1",
                "channel": "portal",
                "content_id": "p",
                "kind": "portal_view",
                "dwell_s": -3,
            },
            422,
            "dwell_s: Input should be greater than or equal to 0",
        ),
        (
            {
                "hcp_id": "H1",
                "channel": "portal",
                "content_id": "p",
                "kind": "portal_view",
                "topics": ["dosing", "dosing"],
            },
            422,
            "field 'topics': lists 'dosing' twice",
        ),
    ],
)
def test_bad_touches(
    client: TestClient, put_hcp: Callable[..., str], body: dict[str, Any], status: int, match: str
) -> None:
    put_hcp("H1")
    r = client.post("/v1/touches", json=body, headers=auth("report"))
    assert r.status_code == status, r.text
    assert match in r.json()["message"]
    assert store(client).counts()["touches"] == 0


# ----------------------------------------------------------------------- HCPs
def test_put_get_hcp(client: TestClient) -> None:
    r = client.put("/v1/hcps/P1", json=HCP_BODY, headers=auth("report"))
    assert r.status_code == 201 and r.json() == {"hcp_id": "P1", "created": True}
    r = client.put("/v1/hcps/P1", json={**HCP_BODY, "decile": 2}, headers=auth("report"))
    assert r.status_code == 200 and r.json()["created"] is False
    got = client.get("/v1/hcps/P1", headers=auth("report")).json()
    assert got["profile"]["decile"] == 2 and got["profile"]["hcp_id"] == "P1"
    assert sorted(got["profile"]["consents"]) == sorted(HCP_BODY["consents"])
    assert got["recent_touches"] == [] and got["recent_outcomes"] == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"decile": 11}, "decile"),
        ({"adoption_stage": "bored"}, "adoption_stage"),
        ({"digital_affinity": 1.5}, "digital_affinity"),
        ({"specialty": ""}, "specialty"),
        ({"extra": True}, "extra"),
    ],
)
def test_bad_hcp_bodies(client: TestClient, change: dict[str, Any], match: str) -> None:
    r = client.put("/v1/hcps/P1", json={**HCP_BODY, **change}, headers=auth("report"))
    assert r.status_code == 422 and match in r.json()["message"]


def test_get_unknown_hcp(client: TestClient) -> None:
    r = client.get("/v1/hcps/NOBODY", headers=auth("report"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_hcp"


def test_import_csv_and_parquet(client: TestClient) -> None:
    csv = (
        "hcp_id,specialty,decile,market,adoption_stage,consents,no_see\n"
        "C1,oncology,3,DE,considering,email;portal,false\n"
        "C2,cardiology,9,US,aware,rep_visit,true\n"
    )
    r = client.post(
        "/v1/hcps:import",
        files={"file": ("hcps.csv", csv.encode(), "text/csv")},
        headers=auth("report"),
    )
    assert r.status_code == 200 and r.json() == {"imported": 2, "format": "csv"}
    c2 = store(client).get_hcp("C2")
    assert c2.no_see is True and c2.consents == frozenset({"rep_visit"})
    table = pa.table(
        {
            "hcp_id": ["Q1"],
            "specialty": ["neurology"],
            "decile": pa.array([5], pa.int8()),
            "market": ["FR"],
            "adoption_stage": ["trialing"],
            "consents": [["email", "webinar"]],
            "no_see": [False],
            "digital_affinity": [0.9],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = client.post(
        "/v1/hcps:import",
        files={"file": ("hcps.parquet", buf.getvalue(), "application/octet-stream")},
        headers=auth("report"),
    )
    assert r.status_code == 200 and r.json() == {"imported": 1, "format": "parquet"}
    assert store(client).get_hcp("Q1").digital_affinity == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("content", "name", "status", "match"),
    [
        (b"hcp_id,specialty\nX,cardiology\n", "h.csv", 422, "missing column"),
        (
            b"hcp_id,specialty,decile,market,adoption_stage,consents\nX,c,12,US,aware,email\n",
            "h.csv",
            422,
            "row 1",
        ),
        (
            b"hcp_id,specialty,decile,market,adoption_stage,consents\nX,c,x,US,aware,email\n",
            "h.csv",
            422,
            "column 'decile'",
        ),
        (
            b"hcp_id,specialty,decile,market,adoption_stage,consents\n"
            b"X,cardiology,2,US,aware,email\nX,cardiology,2,US,aware,email\n",
            "h.csv",
            422,
            "repeats row 1",
        ),
        (b"PAR1 this is not parquet", "h.parquet", 422, "cannot read"),
        (b"\x89PNG....", "h.png", 415, "not a Parquet or CSV"),
    ],
)
def test_bad_imports(
    client: TestClient, content: bytes, name: str, status: int, match: str
) -> None:
    r = client.post("/v1/hcps:import", files={"file": (name, content)}, headers=auth("report"))
    assert r.status_code == status, r.text
    assert match in r.json()["message"]
    assert store(client).counts()["hcps"] == 0


# ------------------------------------------------------------- models, rules
def test_current_model_says_baseline(client: TestClient) -> None:
    r = client.get("/v1/models/current", headers=auth("decide"))
    assert r.status_code == 200
    body = r.json()
    assert body["is_baseline"] is True and body["model_version"] == "baseline:uniform"
    assert "uniform baseline" in body["note"]


def test_rules_describe_the_contact_policy(client: TestClient) -> None:
    r = client.get("/v1/rules", headers=auth("report"))
    assert r.status_code == 200
    body = r.json()
    assert body["order"][0] == "approval" and "consent" in body["order"]
    assert any(rule["rule"].startswith("frequency_cap:") for rule in body["rules"])


# ------------------------------------------------------------ health, errors
def test_health_readiness_metrics(client: TestClient, put_hcp: Callable[..., str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    put_hcp("H1")
    put_hcp("H0", consents=[])
    ev = decide(client, {"hcp_id": "H1", "channels": ["email"]}).json()
    decide(client, {"hcp_id": "H0"})
    post_outcome(client, ev["event_id"], {"type": "opened"})
    text = client.get("/metrics").text
    assert 'nba_decisions_total{channel="email"} 1.0' in text
    assert 'nba_suppressions_total{rule="consent"}' in text
    assert 'nba_outcomes_total{late="false",type="opened"} 1.0' in text
    assert 'nba_model_info{version="baseline:uniform"} 1.0' in text
    assert 'route="/v1/decisions"' in text and "H1" not in text


def test_unknown_route_and_method(client: TestClient) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.get("/v1/decisions", headers=auth("decide"))
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_body_too_large(tmp_path: Any) -> None:
    from serving.main import create_app

    with TestClient(create_app(make_settings(tmp_path, max_body_bytes=1024))) as c:
        big = json.dumps({"hcp_id": "H1", "context": {"pad": "x" * 250}, "exclude": ["a@b"] * 300})
        r = c.post(
            "/v1/decisions",
            content=big,
            headers={**auth("decide"), "content-type": "application/json"},
        )
        assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in (
        "/v1/decisions",
        "/v1/decisions:batch",
        "/v1/events/{event_id}/outcomes",
        "/v1/events/{event_id}/activate",
        "/v1/touches",
        "/v1/hcps/{hcp_id}",
        "/v1/hcps:import",
        "/v1/models/current",
        "/v1/models/reload",
        "/v1/rules",
        "/personalizer/v1.0/rank",
        "/personalizer/v1.0/events/{eventId}/reward",
        "/personalizer/v1.0/events/{eventId}/activate",
    ):
        assert p in paths, p
    assert "/v1/_bench/noop" not in paths
    schemas = spec["components"]["schemas"]
    assert schemas["DecisionRequest"]["examples"]


def test_holdout_hcps_always_get_the_baseline(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    contact = client.app.state.services.contact  # type: ignore[attr-defined]
    ids = [f"HO{i}" for i in range(400)]
    held = next(h for h in ids if contact.is_holdout(h))
    free = next(h for h in ids if not contact.is_holdout(h))
    put_hcp(held)
    put_hcp(free)
    r_held = decide(client, {"hcp_id": held}).json()
    r_free = decide(client, {"hcp_id": free}).json()
    assert r_held["model_version"] == "holdout:baseline:uniform"
    assert r_free["model_version"] == "baseline:uniform"
    assert store(client).get_decision(r_held["event_id"]).model_version.startswith("holdout:")


def test_chunked_body_too_large(tmp_path: Any) -> None:
    from serving.main import create_app

    def chunks() -> Any:
        yield b'{"hcp_id": "H1", "context": {"pad": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}}'

    with TestClient(create_app(make_settings(tmp_path, max_body_bytes=1024))) as c:
        r = c.post(
            "/v1/decisions",
            content=chunks(),
            headers={**auth("decide"), "content-type": "application/json"},
        )
        assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_requester_defaults_to_the_calling_key(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    from serving.api.deps import require_decide
    from serving.auth import Principal

    put_hcp("H1")
    app = client.app
    app.dependency_overrides[require_decide] = lambda: Principal(  # type: ignore[attr-defined]
        "rep-app-7", frozenset({"decide"})
    )
    try:
        r = client.post("/v1/decisions", json={"hcp_id": "H1"})  # no key: auth is overridden
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert r.status_code == 201
    assert store(client).get_decision(r.json()["event_id"]).requester == "rep-app-7"


def test_outcomes_about_another_suggestion(client: TestClient, put_hcp: Callable[..., str]) -> None:
    """Any outcome may name the suggestion it concerns; it is stored with that action,
    kept apart from the same report about the chosen action, and contact with it
    records a touch of that suggestion, not of the chosen one."""
    ev = _event(client, put_hcp, channels=["email"], k=3)
    eid = ev["event_id"]
    chosen, second = ev["suggestions"][0]["action_id"], ev["suggestions"][1]["action_id"]
    r = post_outcome(client, eid, {"type": "delivered", "source_id": "m", "action_id": second})
    assert r.status_code == 201 and r.json()["action_id"] == second
    assert r.json()["kind"] == "hcp_response"
    # the same type and source about the chosen action is another outcome
    r = post_outcome(client, eid, {"type": "delivered", "source_id": "m"})
    assert r.status_code == 201 and r.json()["action_id"] is None
    stored = {o.outcome.action_id: o.outcome for o in store(client).outcomes_of(eid)}
    assert set(stored) == {second, None}
    detail = client.get("/v1/hcps/H1", headers=auth("report")).json()
    assert sorted(t["content_id"] for t in detail["recent_touches"]) == sorted(
        Action.parse(a).content_id for a in (chosen, second)
    )
    assert sorted(o["action_id"] or "" for o in detail["recent_outcomes"]) == ["", second]


def test_unknown_action_message_names_the_action_and_the_decision(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    eid = _event(client, put_hcp)["event_id"]
    r = post_outcome(client, eid, {"type": "dismissed", "reason_code": "x", "action_id": "Z@email"})
    assert r.status_code == 422
    assert r.json()["message"] == (
        f"outcome 'dismissed' of event '{eid}': action_id 'Z@email' was not offered in this "
        f"decision (not one of its {len(store(client).get_decision(eid).action_ids)} "
        "eligible actions)"
    )
    assert store(client).counts()["outcomes"] == 0
