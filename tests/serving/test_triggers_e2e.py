"""Event-triggered journeys against a real ``nba serve`` (two workers) on 127.0.0.1: a
portal visit request notifies the HCP's rep at once with its due time, a rep's key
reads and acknowledges only its own notifications, the day list leads with the
trigger, the webhook (a real receiver that fails the first attempt) gets each
notification signed, retried and once; a bad trigger file stops the service with the
file and line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_testkit import HCP_BODY, KEYS, auth, start_server, stop_server
from webhook_receiver import Receiver

from serving.settings import hash_key
from serving.webhook import verify

REP_KEYS = {"R1": "test-key-rep-r1-71fa", "R2": "test-key-rep-r2-0c3d"}
SECRET = "e2e-webhook-secret-9d41"
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _clock_at_each_test() -> None:
    """TODAY taken again when each test starts: taken once at import, they are a
    day behind the service's clock for a test that runs after midnight UTC."""
    global TODAY
    TODAY = datetime.now(UTC).date()


def rep_auth(rep: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {REP_KEYS[rep]}"}


def _keys() -> str:
    keys = [
        {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
        for scope, key in KEYS.items()
    ] + [
        {"name": f"rep-{rep}", "sha256": hash_key(key), "scopes": [f"rep:{rep}"]}
        for rep, key in REP_KEYS.items()
    ]
    return json.dumps(keys)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("triggers")
    proc, base = start_server(
        tmp,
        workers=2,
        NBA_API_KEYS=_keys(),
        NBA_WEBHOOK_URL=receiver.url,
        NBA_WEBHOOK_SECRET=SECRET,
        NBA_WEBHOOK_BACKOFF_S="0.5",
        NBA_WEBHOOK_POLL_S="0.2",
    )
    try:
        yield base
    finally:
        stop_server(proc)


def _ok(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json()


def test_visit_request_reaches_the_rep_feed_day_list_and_webhook(
    server: str, receiver: Receiver
) -> None:
    with httpx.Client(base_url=server, timeout=60) as c:
        for h in ("H1", "H2"):
            _ok(c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report")), 201)
        since = str(TODAY - timedelta(days=3))
        for rep, hcp in (("R1", "H1"), ("R2", "H2")):
            body = {"capacity_per_day": 2, "hcp_ids": [hcp], "effective_from": since}
            _ok(c.put(f"/v1/reps/{rep}", json=body, headers=auth("admin")), 201)

        # the HCP asks for a visit on the portal
        ts = datetime.now(UTC).replace(microsecond=0)
        visit = {
            "hcp_id": "H1",
            "channel": "portal",
            "content_id": "portal/request-a-visit",
            "kind": "portal_view",
            "ts": ts.isoformat(),
            "event": "visit_request",
            "source_id": "form-1",
        }
        posted = _ok(c.post("/v1/touches", json=visit, headers=auth("report")), 201)
        (nid,) = posted["notifications"]
        # in the rep's feed as soon as the touch is answered, due within 24 hours
        feed = _ok(c.get("/v1/reps/R1/notifications", headers=rep_auth("R1")))["notifications"]
        assert [(n["id"], n["hcp_id"], n["event"]) for n in feed] == [(nid, "H1", "visit_request")]
        assert datetime.fromisoformat(feed[0]["due_by"]) == ts + timedelta(hours=24)
        # posted again (a retry of the portal): nothing new
        again = _ok(c.post("/v1/touches", json=visit, headers=auth("report")), 201)
        assert again["stored"] is False and again["notifications"] == []

        # R2's event, R2's notification
        webinar = {
            "hcp_id": "H2",
            "channel": "webinar",
            "content_id": "VEL-CLN-01",
            "ts": (ts - timedelta(hours=30)).isoformat(),
            "event": "webinar_attended",
        }
        (nid2,) = _ok(c.post("/v1/touches", json=webinar, headers=auth("report")), 201)[
            "notifications"
        ]

        # a rep's key reads and acknowledges only its own notifications
        for method, url in [
            ("GET", "/v1/reps/R2/notifications"),
            ("POST", f"/v1/reps/R2/notifications/{nid2}:ack"),
        ]:
            r = c.request(method, url, headers=rep_auth("R1"))
            assert r.status_code == 403, r.text
            assert r.json()["code"] == "outside_territory"
            assert "rep 'R2'" in r.json()["message"]
        own = _ok(c.get("/v1/reps/R2/notifications", headers=rep_auth("R2")))["notifications"]
        assert [n["id"] for n in own] == [nid2]
        # R1's key naming its own rep but R2's notification id: not found
        r = c.post(f"/v1/reps/R1/notifications/{nid2}:ack", headers=rep_auth("R1"))
        assert r.status_code == 404, r.text
        acked = _ok(c.post(f"/v1/reps/R1/notifications/{nid}:ack", headers=rep_auth("R1")))
        assert acked["already_read"] is False
        unread = c.get(
            "/v1/reps/R1/notifications", params={"unread": "true"}, headers=rep_auth("R1")
        )
        assert _ok(unread)["notifications"] == []

        # the rep's day list leads with the trigger's suggestion
        day = _ok(c.get("/v1/reps/R1/suggestions", headers=rep_auth("R1")))
        top = day["suggestions"][0]
        assert (top["hcp_id"], top["action_id"], top["trigger"]) == (
            "H1",
            "VEL-EFF-01@rep_visit",
            "visit-request",
        )
        assert top["reasons"][0].startswith("Triggered by visit request")

    # the webhook: first attempt refused (500), retried after the backoff, delivered once
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.delivered()) < 2:
        time.sleep(0.2)
    time.sleep(1.5)  # time enough for a duplicate from the other worker, if any
    delivered = receiver.delivered()
    assert sorted(int(r.key) for r in delivered) == sorted([nid, nid2])
    for key in (nid, nid2):
        tries = [r for r in receiver.got if r.key == str(key)]
        assert [(r.attempt, r.status) for r in tries] == [("1", 500), ("2", 200)]
        for r in tries:
            assert verify(SECRET.encode(), r.body, r.signature)
        assert json.loads(tries[-1].body)["id"] == key


def test_a_bad_trigger_file_stops_the_service_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "triggers.toml"
    bad.write_text(
        '[[trigger]]\nname = "x"\nevent = "visit_request"\n'
        'notify = { channel = "rep_visit", content = "NO-SUCH-ITEM" }\n'
    )
    with pytest.raises(RuntimeError, match=r"triggers\.toml:4: trigger 'x': notify\.content"):
        start_server(tmp_path, NBA_TRIGGERS_PATH=str(bad))
