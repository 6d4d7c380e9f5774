"""Reasons over HTTP against a real ``nba serve``: after a detail pull, an opened
email and a stated preference, the matching suggestions of a k=3 decision cite
them first and no two suggestions lead with the same reason; the batch path cites
the same record; an HCP with no record still gets reasons. The service runs on
the request's clock (``NBA_ALLOW_CLIENT_TIME``) so the dates and the catalog's
approvals are fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from serving_testkit import HCP_BODY, auth, start_server, stop_server

from nba.catalog import Catalog

NOW = "2026-12-10T09:00:00Z"


def only(keep: set[str]) -> list[str]:
    """Every catalog action but ``keep``: the ``exclude`` list that leaves just those."""
    return [a.action_id for a in Catalog.default().actions if a.action_id not in keep]


def post(c: httpx.Client, path: str, body: dict[str, Any], scope: str) -> dict[str, Any]:
    r = c.post(path, json=body, headers=auth(scope))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_reasons_cite_the_record_over_http(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, NBA_ALLOW_CLIENT_TIME="true")
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            for hid in ("R1", "R2"):
                assert c.put(f"/v1/hcps/{hid}", json=HCP_BODY, headers=auth("report")).is_success
            touch = {
                "hcp_id": "R1",
                "channel": "rep_visit",
                "content_id": "VEL-EFF-01",
                "ts": "2026-12-08T15:20:00Z",
                "kind": "detail_pull",
                "topics": ["dosing"],
            }
            post(c, "/v1/touches", touch, "report")
            # an email decision about safety, delivered and opened
            email = post(
                c,
                "/v1/decisions",
                {
                    "hcp_id": "R1",
                    "channels": ["email"],
                    "exclude": only({"VEL-SAF-02@email"}),
                    "as_of": "2026-11-20T08:00:00Z",
                },
                "decide",
            )
            assert email["chosen_action_id"] == "VEL-SAF-02@email"
            for typ in ("delivered", "opened"):
                outcome = {"type": typ, "ts": "2026-11-20T09:00:00Z"}
                post(c, f"/v1/events/{email['event_id']}/outcomes", outcome, "report")
            pref = {
                "recorded_by": "rep-0042",
                "topics": ["guidelines"],
                "ts": "2026-11-12T10:00:00Z",
            }
            post(c, "/v1/hcps/R1/stated-preferences", pref, "report")

            three = {"VEL-DOS-02@rep_visit", "VEL-SAF-04@webinar", "VEL-GDL-04@rep_visit"}
            body = {"hcp_id": "R1", "channels": ["rep_visit", "webinar"], "k": 3, "as_of": NOW}
            got = post(c, "/v1/decisions", {**body, "exclude": only(three)}, "decide")
            by_action = {s["action_id"]: s["reasons"] for s in got["suggestions"]}
            assert set(by_action) == three
            assert by_action["VEL-DOS-02@rep_visit"][0] == "Asked about dosing in the 8 Dec detail"
            assert by_action["VEL-SAF-04@webinar"][0] == "Opened 1 of 1 email on safety"
            assert by_action["VEL-GDL-04@rep_visit"][0] == (
                "Told rep-0042 on 12 Nov they want guidelines content"
            )
            leads = [s["reasons"][0] for s in got["suggestions"]]
            assert len(set(leads)) == 3

            # the batch path reads the same record (when asked for reasons)
            batch = post(
                c,
                "/v1/decisions:batch",
                {
                    "hcp_ids": ["R1", "R2"],
                    "channels": ["rep_visit", "webinar"],
                    "k": 3,
                    "as_of": NOW,
                    "explain": True,  # a batch has no reasons unless asked
                },
                "decide",
            )
            items = {d["hcp_id"]: d["suggestions"] for d in batch["decisions"]}
            for hid in ("R1", "R2"):
                assert len(items[hid]) == 3
                assert all(1 <= len(s["reasons"]) <= 3 for s in items[hid])
            # the uniform baseline picks the batch's lists, so this is a property of
            # whatever it picked (the fixed list above is the exact check): the first
            # suggestion on a topic of the record leads with that record
            record = {
                "dosing": "Asked about dosing in the 8 Dec detail",
                "safety": "Opened 1 of 1 email on safety",
                "guidelines": "Told rep-0042 on 12 Nov they want guidelines content",
            }
            cited: set[str] = set()
            for sug in items["R1"]:
                if sug["topic"] in record and sug["topic"] not in cited:
                    assert sug["reasons"][0] == record[sug["topic"]]
                    cited.add(sug["topic"])
            # R2 has no record: reasons still speak about the HCP, never about R1
            for s in items["R2"]:
                assert not any("Asked" in r or "Told" in r or "Opened" in r for r in s["reasons"])
    finally:
        stop_server(proc)
