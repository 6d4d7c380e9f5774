"""``GET /v1/kpis`` against a real ``nba serve`` on 127.0.0.1: decisions and
outcomes reported over HTTP come back as rates, value and cost; bad parameters
are refused (422) naming them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.reward import RewardDefinition


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("kpis")
    proc, base = start_server(tmp)
    try:
        yield base
    finally:
        stop_server(proc)


def test_kpis_of_what_was_reported_over_http(server: str) -> None:
    value = RewardDefinition.business_value()
    # a day either side, so a run across midnight UTC still covers every decision
    today = datetime.now(UTC).date()
    since, until = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    with httpx.Client(base_url=server, timeout=30) as c:
        events = []
        for i in range(4):
            hcp = f"KPI{i}"
            body = {**HCP_BODY, "consents": ["email"]}
            assert c.put(f"/v1/hcps/{hcp}", json=body, headers=auth("report")).status_code == 201
            r = c.post(
                "/v1/decisions",
                json={"hcp_id": hcp, "channels": ["email"]},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            events.append(r.json())
        reported = [["opened", "clicked"], ["opened"], ["rx_signal"], []]
        for ev, types in zip(events, reported, strict=True):
            for t in types:
                r = c.post(
                    f"/v1/events/{ev['event_id']}/outcomes",
                    json={"type": t},
                    headers=auth("report"),
                )
                assert r.status_code == 201, r.text
        r = c.get(
            "/v1/kpis",
            params={"since": since, "until": until, "by": "channel"},
            headers=auth("decide"),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        metrics = c.get("/metrics").text
    # /metrics reads the same store: engagement rate per channel over the last 7 days
    assert 'nba_engagement_rate{channel="email"} 0.5' in metrics
    assert 'nba_executed_decisions{channel="email"} 4.0' in metrics
    assert [g["key"] for g in body["groups"]] == ["email"]
    email = body["groups"][0]
    assert email["decisions"] == 4 and email["executed"] == 4
    assert email["outcome_rate"] == 0.75 and email["engagement_rate"] == 0.5
    assert email["outcome_rates"] == {"clicked": 0.25, "opened": 0.5, "rx_signal": 0.25}
    w = value.weights
    expected_value = 2 * w["opened"] + w["clicked"] + w["rx_signal"]
    assert email["value"] == pytest.approx(expected_value)
    assert email["cost"] == pytest.approx(4 * value.costs["email"])
    assert email["net_value"] == pytest.approx(expected_value - 4 * value.costs["email"])
    assert body["total"]["decisions"] == 4 and body["value_definition"] == value.id


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"until": "2026-01-11"}, "query.since: Field required"),
        ({"since": "2026-01-05", "until": "2026-01-11", "by": "hcp"}, "by: 'hcp' is not one of"),
        ({"since": "2026-01-12", "until": "2026-01-05"}, "since: .* is not before until"),
        ({"since": "Monday", "until": "2026-01-05"}, "since: 'Monday' is neither a date"),
        ({"since": "2026-01-05", "until": "2026-01-11T00:00"}, "until: .* has no timezone"),
        ({"since": "2026-01-05", "until": "2026-01-11", "group": "x"}, "group: unknown query"),
    ],
)
def test_bad_parameters_get_422_naming_them(server: str, params: dict, match: str) -> None:
    r = httpx.get(f"{server}/v1/kpis", params=params, headers=auth("decide"), timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert re.search(match, r.json()["message"]), r.json()["message"]


def test_kpis_need_a_key(server: str) -> None:
    r = httpx.get(f"{server}/v1/kpis", params={"since": "2026-01-05", "until": "2026-01-06"})
    assert r.status_code == 401
