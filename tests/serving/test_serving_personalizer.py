"""Personalizer v1.0 compatible routes with the original request and response shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import auth

from serving.settings import Settings


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    """Every route test of this module runs on both store backends."""
    return settings_on_both


RANK = "/personalizer/v1.0/rank"
ACTIONS: list[dict[str, Any]] = [
    {"id": "VEL-EFF-02@email", "features": [{"topic": "efficacy", "format": "video"}]},
    {"id": "VEL-EFF-04@email", "features": [{"topic": "efficacy"}]},
    {"id": "VEL-EFF-01@rep_visit", "features": [{"topic": "efficacy"}]},
    {"id": "VEL-EFF-02@portal", "features": []},
]


def rank_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contextFeatures": [
            {"hcp_id": "P1"},
            {"device": {"type": "tablet", "os": "ipados"}},
            {"requester": "portal"},
        ],
        "actions": ACTIONS,
        "excludedActions": ["VEL-EFF-04@email"],
        "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
        "deferActivation": False,
    }
    body.update(kw)
    return body


def test_rank_reward_activate_roundtrip(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("P1", consents=["email", "portal"])
    r = client.post(RANK, json=rank_body(deferActivation=True), headers=auth("decide"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"ranking", "eventId", "rewardActionId"}
    assert body["eventId"] == "75269AD0-BFEE-4598-8196-C57383D38E10"
    ranking = body["ranking"]
    assert [set(x) for x in ranking] == [{"id", "probability"}] * len(ACTIONS)
    assert {x["id"] for x in ranking} == {a["id"] for a in ACTIONS}
    assert ranking[0]["id"] == body["rewardActionId"]
    probs = {x["id"]: x["probability"] for x in ranking}
    assert probs["VEL-EFF-04@email"] == 0.0  # excluded
    assert probs["VEL-EFF-01@rep_visit"] == 0.0  # no consent for visits
    assert sum(probs.values()) == pytest.approx(1.0)

    store = client.app.state.services.store  # type: ignore[attr-defined]
    d = store.get_decision(body["eventId"])
    assert d.activated is False and d.chosen_action_id == body["rewardActionId"]
    assert d.propensity == pytest.approx(probs[d.chosen_action_id])
    rules = {s.action_id: s.rule for s in d.suppressed}
    assert rules == {"VEL-EFF-04@email": "excluded_by_request", "VEL-EFF-01@rep_visit": "consent"}
    assert '"device.type":"tablet"' in d.context and '"hcp_id"' in d.context

    eid = body["eventId"]
    r = client.post(f"/personalizer/v1.0/events/{eid}/activate", headers=auth("decide"))
    assert r.status_code == 204 and r.content == b""
    assert store.get_decision(eid).activated is True
    r = client.post(
        f"/personalizer/v1.0/events/{eid}/reward", json={"value": 0.8}, headers=auth("report")
    )
    assert r.status_code == 204
    (o,) = store.outcomes_of(eid)
    assert (o.outcome.type, o.outcome.value, o.outcome.source) == ("reward", 0.8, "personalizer")


def test_rank_generates_an_event_id(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("P1")
    body = rank_body()
    del body["eventId"], body["excludedActions"], body["deferActivation"]
    r = client.post(RANK, json=body, headers=auth("decide"))
    assert r.status_code == 201 and len(r.json()["eventId"]) == 26
    again = client.post(RANK, json=rank_body(), headers=auth("decide"))
    dup = client.post(RANK, json=rank_body(), headers=auth("decide"))
    assert again.status_code == 201 and dup.status_code == 409


def test_rank_with_nothing_allowed(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("P1", consents=[])
    r = client.post(RANK, json=rank_body(), headers=auth("decide"))
    assert r.status_code == 200
    assert r.json()["rewardActionId"] is None
    assert all(x["probability"] == 0.0 for x in r.json()["ranking"])


@pytest.mark.parametrize(
    ("change", "status", "match"),
    [
        ({"contextFeatures": [{"device": "ipad"}]}, 422, "hcp_id"),
        ({"contextFeatures": [{"hcp_id": "NOBODY"}]}, 404, "NOBODY"),
        ({"actions": []}, 422, "actions"),
        ({"actions": [{"id": "article-17"}]}, 422, "not a catalog action"),
        ({"actions": [{"id": "VEL-EFF-02@fax"}]}, 422, "not an action of the catalog"),
        ({"actions": [ACTIONS[0], ACTIONS[0]]}, 422, "listed twice"),
        ({"excludedActions": ["VEL-XXX@email"]}, 422, "excludedActions"),
        (
            {"contextFeatures": [{"hcp_id": "P1", "a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}]},
            422,
            "nested deeper",
        ),
        ({"actions": [{"id": f"VEL-EFF-02@email{i}"} for i in range(51)]}, 422, "actions"),
    ],
)
def test_bad_rank_requests(
    client: TestClient, put_hcp: Callable[..., str], change: dict[str, Any], status: int, match: str
) -> None:
    put_hcp("P1")
    body = rank_body(**change)
    if "actions" in change:
        body["excludedActions"] = []
    r = client.post(RANK, json=body, headers=auth("decide"))
    assert r.status_code == status, r.text
    assert match in r.json()["message"]


def test_reward_and_activate_unknown_event(client: TestClient) -> None:
    r = client.post(
        "/personalizer/v1.0/events/NOPE/reward", json={"value": 1}, headers=auth("report")
    )
    assert r.status_code == 404 and r.json()["code"] == "unknown_event"
    r = client.post("/personalizer/v1.0/events/NOPE/activate", headers=auth("decide"))
    assert r.status_code == 404
    r = client.post(
        "/personalizer/v1.0/events/NOPE/reward", json={"value": "high"}, headers=auth("report")
    )
    assert r.status_code == 422
