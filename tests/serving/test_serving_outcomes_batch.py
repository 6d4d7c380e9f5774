"""``POST /v1/outcomes:batch`` on a real SQLite store: per-item answers in order,
valid items stored whatever happens to the others, the size limit, keys and
territories."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, KEYS, auth, make_settings

from serving.main import create_app
from serving.settings import Settings, hash_key

URL = "/v1/outcomes:batch"
UNKNOWN = "01UNKNOWNEVENT000000000000"


def store(client: TestClient) -> Any:
    return client.app.state.services.store  # type: ignore[attr-defined]


def stored(client: TestClient, eid: str) -> list[tuple[str, str]]:
    return sorted((o.outcome.type, o.outcome.source_id) for o in store(client).outcomes_of(eid))


def email_event(client: TestClient, hcp_id: str = "H1") -> str:
    r = client.put(f"/v1/hcps/{hcp_id}", json=HCP_BODY, headers=auth("report"))
    assert r.status_code in (200, 201), r.text
    r = client.post(
        "/v1/decisions",
        json={"hcp_id": hcp_id, "k": 2, "channels": ["email"]},
        headers=auth("decide"),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["event_id"])


def post(client: TestClient, items: list[Any], scope: str = "report") -> Any:
    return client.post(URL, json={"outcomes": items}, headers=auth(scope))


def test_batch_stores_each_outcome_and_answers_in_order(client: TestClient) -> None:
    e1, e2 = email_event(client, "H1"), email_event(client, "H2")
    r = post(
        client,
        [
            {"event_id": e1, "type": "delivered", "source_id": "m1"},
            {"event_id": e1, "type": "opened", "source_id": "m1"},
            {"event_id": e2, "type": "clicked", "source_id": "m2", "value": 2.0},
            {"event_id": e1, "type": "opened", "source_id": "m1"},  # repeat in the batch
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["n_stored"], body["n_repeats"], body["n_errors"]) == (3, 1, 0)
    assert [(x["index"], x["event_id"], x["status"]) for x in body["results"]] == [
        (0, e1, "stored"),
        (1, e1, "stored"),
        (2, e2, "stored"),
        (3, e1, "repeat"),
    ]
    assert body["results"][2]["outcome"]["type"] == "clicked"
    assert body["results"][3]["outcome"]["stored"] is False
    assert stored(client, e1) == [("delivered", "m1"), ("opened", "m1")]
    assert stored(client, e2) == [("clicked", "m2")]
    # the first contact outcome recorded our touch, as on the single route
    touches = client.get("/v1/hcps/H1", headers=auth("report")).json()["recent_touches"]
    assert [(t["origin"], t["channel"]) for t in touches] == [("ours", "email")]
    # resending the whole batch is harmless: every item is a repeat
    again = post(client, [{"event_id": e1, "type": "opened", "source_id": "m1"}]).json()
    assert again["n_repeats"] == 1 and again["results"][0]["status"] == "repeat"
    assert len(stored(client, e1)) == 2


def test_batch_and_single_route_share_idempotency(client: TestClient) -> None:
    eid = email_event(client)
    r = client.post(
        f"/v1/events/{eid}/outcomes",
        json={"type": "opened", "source_id": "x"},
        headers=auth("report"),
    )
    assert r.status_code == 201
    body = post(client, [{"event_id": eid, "type": "opened", "source_id": "x"}]).json()
    assert body["results"][0]["status"] == "repeat"


BAD_ITEMS: list[tuple[Any, int, str, str]] = [
    ({"type": "opened", "source_id": "a"}, 422, "invalid_input", "outcomes.1.event_id"),
    ({"event_id": "{eid}", "type": "teleported"}, 422, "invalid_input", "unknown outcome type"),
    ({"event_id": "{eid}", "type": "opened", "colour": "red"}, 422, "invalid_input", "colour"),
    ("opened", 422, "invalid_input", "outcomes.1"),
    ({"event_id": UNKNOWN, "type": "opened"}, 404, "unknown_event", UNKNOWN),
    ({"event_id": "{eid}", "type": "dismissed"}, 422, "invalid_input", "reason_code"),
    (
        {"event_id": "{eid}", "type": "opened", "action_id": "NOT-OFFERED@email"},
        422,
        "invalid_input",
        "NOT-OFFERED@email",
    ),
]


@pytest.mark.parametrize(("bad", "status", "code", "match"), BAD_ITEMS)
def test_a_bad_item_in_the_middle_fails_alone(
    client: TestClient, bad: Any, status: int, code: str, match: str
) -> None:
    eid = email_event(client)
    if isinstance(bad, dict):
        bad = {k: (eid if v == "{eid}" else v) for k, v in bad.items()}
    r = post(
        client,
        [
            {"event_id": eid, "type": "delivered", "source_id": "m"},
            bad,
            {"event_id": eid, "type": "opened", "source_id": "m"},
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == ["stored", "error", "stored"]
    assert (body["n_stored"], body["n_errors"]) == (2, 1)
    err = body["results"][1]["error"]
    assert (err["status"], err["code"]) == (status, code), err
    assert match in err["message"], err["message"]
    assert body["results"][1]["index"] == 1
    # what the single route answers for the same outcome
    if isinstance(bad, dict) and isinstance(bad.get("event_id"), str):
        single = {k: v for k, v in bad.items() if k != "event_id"}
        one = client.post(
            f"/v1/events/{bad['event_id']}/outcomes", json=single, headers=auth("report")
        )
        assert (one.status_code, one.json()["code"]) == (status, code)
    assert stored(client, eid) == [("delivered", "m"), ("opened", "m")]


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"outcomes": []}, "outcomes"),
        ({"outcomes": {"event_id": "E", "type": "opened"}}, "outcomes"),
        ({}, "outcomes"),
        ({"outcomes": [{"event_id": "E", "type": "opened"}], "extra": 1}, "extra"),
    ],
)
def test_not_a_batch_is_refused_whole(
    client: TestClient, payload: dict[str, Any], match: str
) -> None:
    r = client.post(URL, json=payload, headers=auth("report"))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input" and match in r.json()["message"]


def test_wrong_or_missing_key_is_refused_and_nothing_stored(client: TestClient) -> None:
    eid = email_event(client)
    items = [{"event_id": eid, "type": "opened"}]
    assert post(client, items, scope="decide").status_code == 403  # lacks `report`
    r = client.post(
        URL, json={"outcomes": items}, headers={"Authorization": "Bearer not-a-key-at-all"}
    )
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    assert client.post(URL, json={"outcomes": items}).status_code == 401
    assert stored(client, eid) == []


@pytest.fixture
def small_batches(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, max_outcome_batch=3, max_body_bytes=4096)
    with TestClient(create_app(settings)) as c:
        yield c


def test_too_many_items_or_bytes_is_refused_and_nothing_stored(
    small_batches: TestClient,
) -> None:
    c = small_batches
    eid = email_event(c)
    items = [{"event_id": eid, "type": "opened", "source_id": f"s{i}"} for i in range(4)]
    r = post(c, items)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert "4 items; at most 3 per batch" in r.json()["message"]
    assert stored(c, eid) == []
    assert post(c, items[:3]).json()["n_stored"] == 3
    big = [{"event_id": eid, "type": "opened", "source_id": "x" * 150}] * 30
    r = post(c, big)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    assert len(stored(c, eid)) == 3


@pytest.fixture
def rep_client(tmp_path: Path) -> Iterator[TestClient]:
    keys = [
        {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
        for scope, key in KEYS.items()
    ] + [{"name": "rep-R1", "sha256": hash_key("test-key-rep-r1-77aa"), "scopes": ["rep:R1"]}]
    settings: Settings = make_settings(tmp_path, api_keys=keys)
    with TestClient(create_app(settings)) as c:
        yield c


def test_a_rep_key_may_report_only_on_its_territory(rep_client: TestClient) -> None:
    c = rep_client
    mine, theirs = email_event(c, "H1"), email_event(c, "H2")
    since = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()
    rep = {"capacity_per_day": 2, "hcp_ids": ["H1"], "effective_from": since}
    assert c.put("/v1/reps/R1", json=rep, headers=auth("admin")).status_code == 201
    r = c.post(
        URL,
        json={
            "outcomes": [
                {"event_id": theirs, "type": "opened"},
                {"event_id": mine, "type": "opened"},
            ]
        },
        headers={"Authorization": "Bearer test-key-rep-r1-77aa"},
    )
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] == "error" and first["error"]["status"] == 403
    assert first["error"]["code"] == "outside_territory" and "'H2'" in first["error"]["message"]
    assert second["status"] == "stored"
    assert stored(c, theirs) == [] and stored(c, mine) == [("opened", "")]


def test_batch_goes_through_one_group_commit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With group commit on (the default), the batch is one item of the outcome
    committer: its outcomes share one transaction (counted through the store)."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    assert svc.engine.outcome_committer is not None
    eid = email_event(client)
    calls: list[int] = []
    real = svc.store.add_outcomes

    def counting(writes: Any) -> Any:
        calls.append(len(writes))
        return real(writes)

    monkeypatch.setattr(svc.store, "add_outcomes", counting)
    items = [{"event_id": eid, "type": "opened", "source_id": f"s{i}"} for i in range(50)]
    assert post(client, items).json()["n_stored"] == 50
    assert calls == [50]


def test_openapi_lists_the_batch_route_with_its_item_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"][URL]["post"]
    assert "200" in op["responses"] and "422" in op["responses"]
    text = json.dumps(spec["components"]["schemas"]["OutcomeBatchRequest"])
    assert "event_id" in text and "source_id" in text


def test_ts_is_checked_per_item(client: TestClient) -> None:
    eid = email_event(client)
    before = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    until = (date.today() + timedelta(days=10)).isoformat()
    body = post(
        client,
        [
            {"event_id": eid, "type": "opened", "ts": before},
            {"event_id": eid, "type": "snoozed", "until": until},
        ],
    ).json()
    assert body["results"][0]["error"]["message"].startswith("ts: ")
    assert body["results"][1]["status"] == "stored"
    assert body["results"][1]["outcome"]["kind"] == "rep_feedback"
