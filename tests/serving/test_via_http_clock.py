"""Client-supplied decision time (``as_of``): refused by default, used as the
decision's time when the service allows it (NBA_ALLOW_CLIENT_TIME=true)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import HCP_BODY, auth, make_settings

from serving.main import create_app

AS_OF = "2026-01-07T09:15:00Z"


@pytest.fixture
def sim_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, allow_client_time=True))) as c:
        r = c.put("/v1/hcps/H-1", json=HCP_BODY, headers=auth("report"))
        assert r.status_code == 201, r.text
        yield c


def test_as_of_refused_by_default(client: TestClient, put_hcp: object) -> None:
    put_hcp("H-1")  # type: ignore[operator]
    r = client.post(
        "/v1/decisions",
        json={"hcp_id": "H-1", "channels": ["email"], "as_of": AS_OF},
        headers=auth("decide"),
    )
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input"
    assert "NBA_ALLOW_CLIENT_TIME" in r.json()["message"]
    r = client.post(
        "/v1/decisions:batch",
        json={"hcp_ids": ["H-1"], "channels": ["email"], "as_of": AS_OF},
        headers=auth("decide"),
    )
    assert r.status_code == 422
    assert "as_of" in r.json()["message"]


def test_as_of_is_the_decision_time(sim_client: TestClient) -> None:
    r = sim_client.post(
        "/v1/decisions",
        json={"hcp_id": "H-1", "channels": ["email"], "as_of": AS_OF},
        headers=auth("decide"),
    )
    assert r.status_code == 201, r.text
    eid = r.json()["event_id"]
    # an outcome before the simulated decision time is refused: the decision kept as_of
    r = sim_client.post(
        f"/v1/events/{eid}/outcomes",
        json={"type": "opened", "ts": "2026-01-07T09:00:00Z"},
        headers=auth("report"),
    )
    assert r.status_code == 422
    assert "before its decision (2026-01-07T09:15:00+00:00)" in r.json()["message"]
    r = sim_client.post(
        "/v1/decisions:batch",
        json={"hcp_ids": ["H-1"], "channels": ["email"], "as_of": "2026-01-08T06:00:00+01:00"},
        headers=auth("decide"),
    )
    assert r.status_code == 201, r.text
    eid2 = r.json()["decisions"][0]["event_id"]
    svc = sim_client.app.state.services  # type: ignore[attr-defined]
    assert svc.store.get_decision(eid).ts.isoformat() == "2026-01-07T09:15:00+00:00"
    assert svc.store.get_decision(eid2).ts.isoformat() == "2026-01-08T05:00:00+00:00"
    assert eid < eid2  # ids stay time-sortable in simulated time


@pytest.mark.parametrize(
    ("as_of", "match"),
    [
        ("2026-01-07T09:15:00", "timezone"),
        ("yesterday", "as_of"),
        ("2026-13-01T00:00:00Z", "as_of"),
    ],
)
def test_bad_as_of(sim_client: TestClient, as_of: object, match: str) -> None:
    r = sim_client.post(
        "/v1/decisions",
        json={"hcp_id": "H-1", "channels": ["email"], "as_of": as_of},
        headers=auth("decide"),
    )
    assert r.status_code == 422
    assert match in r.text
