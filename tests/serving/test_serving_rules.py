"""Contact rules that change safely, through the HTTP routes on a real SQLite store:
apply with an audit record, refuse bad edits (key and line) leaving the rules in
force untouched, per-market rules in decisions, dry-run counts, rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings

from nba.contact import ContactPolicy, RulesError
from nba.logs import io as logio
from serving import store_rules
from serving.main import create_app
from serving.rules import RulesKeeper
from serving.store import EventStore

DEFAULT_TEXT = (Path(__file__).parents[2] / "nba" / "data" / "rules.toml").read_text()
DE_EMAIL_CAP = """
[[markets.DE.frequency_caps]]
channel = "email"
max = 1
days = 7
"""
TOML = {**auth("admin"), "Content-Type": "application/toml"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, allow_client_time=True, rules_check_ms=0)
    with TestClient(create_app(settings)) as c:
        yield c


def put_rules(c: TestClient, text: str, comment: str | None = "test", **q: Any) -> Any:
    params = {**({"comment": comment} if comment is not None else {}), **q}
    return c.put("/v1/rules", content=text, params=params, headers=TOML)


def put_hcp(c: TestClient, hcp_id: str, **over: Any) -> None:
    r = c.put(f"/v1/hcps/{hcp_id}", json={**HCP_BODY, **over}, headers=auth("report"))
    assert r.status_code in (200, 201), r.text


def touch(c: TestClient, hcp_id: str, ts: str, content: str, channel: str = "email") -> None:
    body = {"hcp_id": hcp_id, "ts": ts, "channel": channel, "content_id": content}
    r = c.post("/v1/touches", json=body, headers=auth("report"))
    assert r.status_code in (200, 201), r.text


def decide(c: TestClient, hcp_id: str, as_of: str, channels: list[str]) -> dict[str, Any]:
    body = {"hcp_id": hcp_id, "as_of": as_of, "channels": channels}
    r = c.post("/v1/decisions", json=body, headers=auth("decide"))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def test_first_start_seeds_version_1_from_the_rules_file(app: TestClient) -> None:
    body = app.get("/v1/rules", headers=auth("decide")).json()
    assert body["store_version"] == 1 and body["text"] == DEFAULT_TEXT
    assert body["applied"]["action"] == "seed" and body["applied"]["who"] == "service start"
    assert body["version"] == ContactPolicy.default().version and body["markets"] == {}


def test_apply_stores_a_version_with_its_audit_record(app: TestClient) -> None:
    r = put_rules(app, DEFAULT_TEXT + DE_EMAIL_CAP, comment="DE: one email a week (HWG)")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["version"] == 2 and rec["who"] == "admin-client" and rec["action"] == "apply"
    assert rec["comment"] == "DE: one email a week (HWG)" and rec["based_on"] == 1
    assert "+[[markets.DE.frequency_caps]]" in rec["diff"] and "+max = 1" in rec["diff"]
    body = app.get("/v1/rules", headers=auth("report")).json()
    assert body["store_version"] == 2 and body["version"] == rec["rules_hash"]
    assert body["markets"]["DE"]["order"][-2] == "frequency_cap:email:1/7d"
    hist = app.get("/v1/rules/history", headers=auth("report")).json()
    assert hist["in_force"] == 2 and [v["version"] for v in hist["versions"]] == [2, 1]
    assert hist["versions"][0]["comment"] == "DE: one email a week (HWG)"
    # the same change in JSON form is refused as unchanged
    r = app.put(
        "/v1/rules",
        json={"text": DEFAULT_TEXT + DE_EMAIL_CAP, "comment": "again"},
        headers=auth("admin"),
    )
    assert r.status_code == 409 and r.json()["code"] == "rules_unchanged"


BAD_EDITS = [
    # (text, query, status, code, message part, key, line)
    (
        DEFAULT_TEXT + "\n[markets.XX.min_gap]\nhours = 48\n",
        {},
        422,
        "invalid_rules",
        "unknown market 'XX'",
        "markets.XX",
        69,
    ),
    (
        DEFAULT_TEXT + "\n[markets.DE]\nallowed_channels = ['email', 'fax']\n",
        {},
        422,
        "invalid_rules",
        "unknown channel 'fax'",
        "markets.DE.allowed_channels",
        70,
    ),
    (
        DEFAULT_TEXT.replace("dismissed_days = 30", "dismised_days = 30"),
        {},
        422,
        "invalid_rules",
        "unknown key 'dismised_days'",
        "feedback.dismised_days",
        23,
    ),
    (
        DEFAULT_TEXT.replace("max = 2\ndays = 7", "max = -2\ndays = 7"),
        {},
        422,
        "invalid_rules",
        "'max' must not be negative",
        "frequency_caps.0.max",
        35,
    ),
    (DEFAULT_TEXT + "\n[min_gap\n", {}, 422, "invalid_rules", "not valid TOML", "text", 69),
    ("", {}, 422, "invalid_rules", "empty", "text", None),
    (DEFAULT_TEXT + DE_EMAIL_CAP, {"comment": " "}, 422, "invalid_input", "comment", None, None),
    (
        DEFAULT_TEXT + DE_EMAIL_CAP,
        {"expected_version": "7"},
        409,
        "rules_conflict",
        "version 1 is in force",
        None,
        None,
    ),
    (DEFAULT_TEXT, {}, 409, "rules_unchanged", "same rules as version 1", None, None),
    (DEFAULT_TEXT + DE_EMAIL_CAP, {"dayz": "3"}, 422, "invalid_input", "'dayz'", None, None),
]


@pytest.mark.parametrize(("text", "query", "status", "code", "part", "key", "line"), BAD_EDITS)
def test_bad_edits_are_refused_and_the_rules_in_force_stay(
    app: TestClient,
    text: str,
    query: dict[str, str],
    status: int,
    code: str,
    part: str,
    key: str | None,
    line: int | None,
) -> None:
    before = app.get("/v1/rules", headers=auth("report")).json()
    params = {"comment": "try", **query}
    r = app.put("/v1/rules", content=text, params=params, headers=TOML)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and part in body["message"], body
    if key is not None:
        assert body["details"][0]["loc"] == key and body["details"][0]["line"] == line
        if line is not None:
            assert f"line {line}" in body["message"]
    after = app.get("/v1/rules", headers=auth("report")).json()
    assert after["store_version"] == before["store_version"] == 1
    assert after["version"] == before["version"] and after["text"] == before["text"]
    assert len(app.get("/v1/rules/history", headers=auth("report")).json()["versions"]) == 1


def test_changing_rules_needs_admin(app: TestClient) -> None:
    for scope in ("decide", "report"):
        h = {**auth(scope), "Content-Type": "application/toml"}
        r = app.put(
            "/v1/rules", content=DEFAULT_TEXT + DE_EMAIL_CAP, params={"comment": "x"}, headers=h
        )
        assert r.status_code == 403
        r = app.post("/v1/rules:rollback", json={"version": 1, "comment": "x"}, headers=auth(scope))
        assert r.status_code == 403
        r = app.post("/v1/rules:dry-run", content=DEFAULT_TEXT, headers=h)
        assert r.status_code == 403
    assert app.put("/v1/rules", content="x").status_code == 401


def test_per_market_cap_applies_to_decisions_and_is_recorded(
    app: TestClient, tmp_path: Path
) -> None:
    assert put_rules(app, DEFAULT_TEXT + DE_EMAIL_CAP).status_code == 200
    new_hash = app.get("/v1/rules", headers=auth("report")).json()["version"]
    for hid, market in (("D1", "DE"), ("U1", "US")):
        put_hcp(app, hid, market=market, consents=["email"])
        touch(app, hid, "2026-06-07T09:00:00Z", "VEL-RWE-02")
    de = decide(app, "D1", "2026-06-10T10:00:00Z", ["email"])
    us = decide(app, "U1", "2026-06-10T10:00:00Z", ["email"])
    # DE: one email in 7 days is the cap, every email action is suppressed by it
    assert de["event_id"] is None and de["rules_market"] == "DE"
    rules = {s["rule"] for s in de["suppressed"]}
    assert "frequency_cap:email:1/7d" in rules and "frequency_cap:email:2/7d" not in rules
    # US keeps the global 2/7d cap: one email is fine
    assert us["event_id"] is not None and us["rules_market"] == "global"
    assert us["rules_version"] == de["rules_version"] == new_hash
    svc = app.app.state.services  # type: ignore[attr-defined]
    stored = svc.store.get_decision(us["event_id"])
    assert stored.rules_version == new_hash and stored.rules_market == "global"
    # and the exported event log carries them
    svc.store.export(tmp_path / "log")
    table = logio.read(tmp_path / "log", "decisions")
    assert table.column("rules_version").to_pylist() == [new_hash]
    assert table.column("rules_market").to_pylist() == ["global"]


def test_dry_run_counts_a_hand_computed_case(app: TestClient) -> None:
    # D1 (DE) and U1 (US) may be emailed; each was emailed RWE-02 on June 7,
    # D1 also DOS-04 on May 30
    for hid, market in (("D1", "DE"), ("U1", "US")):
        put_hcp(app, hid, market=market, consents=["email", "portal"])
        touch(app, hid, "2026-06-07T09:00:00Z", "VEL-RWE-02")
    touch(app, "D1", "2026-05-30T09:00:00Z", "VEL-DOS-04")
    de_email = {
        "VEL-ACC-02",
        "VEL-CLN-04",
        "VEL-CLN-05",
        "VEL-CST-02",
        "VEL-DOS-03",
        "VEL-DOS-04",
        "VEL-EFF-02",
        "VEL-PSP-03",
        "VEL-RWE-02",
        "VEL-SAF-02",
    }  # the catalog's email items approved in DE in June 2026
    old = decide(app, "D1", "2026-06-01T10:00:00Z", ["email"])  # 9 days before `until`
    a = decide(app, "D1", "2026-06-10T10:00:00Z", ["email"])
    b = decide(app, "U1", "2026-06-10T10:00:00Z", ["email"])
    c = decide(app, "D1", "2026-06-10T10:05:00Z", ["portal"])
    # under the rules in force (2 emails / 7 days, 21-day repeat): June 1 sees one
    # email (DOS-04, 2 days before): 9 actions; June 10 sees one email in 7 days
    # (RWE-02) and both contents within 21 days: 8 actions
    svc = app.app.state.services  # type: ignore[attr-defined]
    got_old = set(svc.store.get_decision(old["event_id"]).action_ids)
    got_a = set(svc.store.get_decision(a["event_id"]).action_ids)
    assert got_old == {f"{i}@email" for i in de_email - {"VEL-DOS-04"}}
    assert got_a == {f"{i}@email" for i in de_email - {"VEL-DOS-04", "VEL-RWE-02"}}
    assert b["event_id"] is not None and c["event_id"] is not None

    # proposed: DE may get one email per 7 days. Decision a (one email 3 days
    # before) loses all 8 actions; b is US; c asks for the portal, not capped.
    def dry(days: float) -> dict[str, Any]:
        r = app.post(
            "/v1/rules:dry-run",
            json={
                "text": DEFAULT_TEXT + DE_EMAIL_CAP,
                "days": days,
                "until": "2026-06-10T12:00:00Z",
            },
            headers=auth("admin"),
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    week = dry(7)
    assert week["decisions"] == 3 and week["changed"] == 1 and week["blocked"] == 1
    assert week["newly_suppressed"] == 8 and week["newly_allowed"] == 0
    assert week["by_rule"] == {"frequency_cap:email:1/7d": 8} and week["by_market"] == {"DE": 1}
    assert week["examples"] == [a["event_id"]] and week["current_version"] == 1
    # two weeks also take in June 1 (one email 2 days before it): 9 more actions
    two = dry(14)
    assert two["decisions"] == 4 and two["changed"] == 2 and two["blocked"] == 2
    assert two["newly_suppressed"] == 17 and two["by_market"] == {"DE": 2}
    # no caps at all in DE changes nothing here: no decision had a full cap, and the
    # 21-day repeat rule (which removed RWE-02 and DOS-04) still holds
    loose = DEFAULT_TEXT + "\n[markets.DE]\nfrequency_caps = []\n"
    r = app.post(
        "/v1/rules:dry-run",
        content=loose,
        params={"days": "14", "until": "2026-06-10T12:00:00Z"},
        headers=TOML,
    )
    assert r.status_code == 200 and r.json()["decisions"] == 4 and r.json()["changed"] == 0
    # without the repeat rule too, every decision gets back what it removed: June 1
    # DOS-04, June 10 RWE-02 and DOS-04 (D1 by email and on the portal), RWE-02 (U1)
    looser = loose.replace("\ndays = 21\n", "\ndays = 0\n")
    assert looser != loose
    r = app.post(
        "/v1/rules:dry-run",
        content=looser,
        params={"days": "14", "until": "2026-06-10T12:00:00Z"},
        headers=TOML,
    )
    got = r.json()
    assert got["changed"] == 4 and got["newly_allowed"] == 1 + 2 + 2 + 1
    assert got["newly_suppressed"] == 0 and got["by_market"] == {"DE": 3, "US": 1}
    # a dry run stores nothing
    assert app.get("/v1/rules", headers=auth("report")).json()["store_version"] == 1
    bad = app.post("/v1/rules:dry-run", content="[markets.XX]\n", headers=TOML)
    assert bad.status_code == 422 and bad.json()["details"][0]["line"] == 1


def test_diff_and_rollback(app: TestClient) -> None:
    assert put_rules(app, DEFAULT_TEXT + DE_EMAIL_CAP, comment="DE cap").status_code == 200
    r = app.post("/v1/rules/diff", content=DEFAULT_TEXT, headers=TOML)
    assert r.status_code == 200 and r.json()["changes_rules"] is True
    assert "-[[markets.DE.frequency_caps]]" in r.json()["diff"]
    d = app.get("/v1/rules/diff", headers=auth("report")).json()  # against version 1
    assert d["in_force"] == 2 and d["version"] == 1 and "-max = 1" in d["diff"]
    r = app.post(
        "/v1/rules:rollback",
        json={"version": 1, "comment": "DE cap too strict"},
        headers=auth("admin"),
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["version"] == 3 and rec["action"] == "rollback" and rec["based_on"] == 2
    assert rec["comment"] == "rollback to version 1: DE cap too strict"
    body = app.get("/v1/rules", headers=auth("report")).json()
    assert body["store_version"] == 3 and body["text"] == DEFAULT_TEXT
    for req, status, code in (
        ({"version": 1, "comment": "again"}, 409, "rules_unchanged"),
        ({"version": 9, "comment": "nope"}, 404, "unknown_rules_version"),
        ({"version": 2, "comment": ""}, 422, "invalid_input"),
        ({"version": 0, "comment": "x"}, 422, "invalid_input"),
    ):
        r = app.post("/v1/rules:rollback", json=req, headers=auth("admin"))
        assert r.status_code == status and r.json()["code"] == code, r.text
    assert app.get("/v1/rules", headers=auth("report")).json()["store_version"] == 3
    r = app.get("/v1/rules/diff", params={"version": 9}, headers=auth("report"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_rules_version"


def test_keeper_checks_the_store_at_most_every_check_ms(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    pol = ContactPolicy.loads(DEFAULT_TEXT)
    store_rules.append(
        store,
        text=DEFAULT_TEXT,
        rules_hash=pol.version,
        who="t",
        action="seed",
        comment="",
        diff="",
        expected_head=0,
    )
    clock = [100.0]
    keeper = RulesKeeper(store, ("US", "DE"), check_ms=500, clock=lambda: clock[0])
    assert keeper.current().version == pol.version
    new = ContactPolicy.loads(DEFAULT_TEXT + DE_EMAIL_CAP, markets=("US", "DE"))
    store_rules.append(
        store,
        text=DEFAULT_TEXT + DE_EMAIL_CAP,
        rules_hash=new.version,
        who="t",
        action="apply",
        comment="c",
        diff="",
        expected_head=1,
    )
    clock[0] += 0.4  # within the interval: no check yet
    assert keeper.current().version == pol.version
    clock[0] += 0.2
    assert keeper.current().version == new.version and keeper.record.version == 2
    # a stored version this worker cannot read (its market is unknown here) is refused
    with pytest.raises(RulesError, match="unknown market 'DE'"):
        RulesKeeper(store, ("US",), check_ms=0)
    only_us = ContactPolicy.loads(DEFAULT_TEXT, markets=("US",))
    store_rules.append(
        store,
        text=DEFAULT_TEXT,
        rules_hash=only_us.version,
        who="t",
        action="rollback",
        comment="c",
        diff="",
        expected_head=2,
    )
    narrow = RulesKeeper(store, ("US",), check_ms=0)
    assert narrow.record.version == 3
    store_rules.append(
        store,
        text=DEFAULT_TEXT + DE_EMAIL_CAP,
        rules_hash=new.version,
        who="t",
        action="apply",
        comment="c",
        diff="",
        expected_head=3,
    )
    assert narrow.current().version == only_us.version and narrow.record.version == 3


def test_a_restart_keeps_the_stored_version_and_a_yaml_file_seeds_toml(tmp_path: Path) -> None:
    yaml_rules = tmp_path / "rules.yaml"
    yaml_rules.write_text(
        "name: from-yaml\nfrequency_caps:\n  - {channel: email, max: 3, days: 7}\n"
    )
    settings = make_settings(tmp_path, rules_path=yaml_rules, rules_check_ms=0)
    with TestClient(create_app(settings)) as c:
        body = c.get("/v1/rules", headers=auth("report")).json()
        assert body["store_version"] == 1 and body["name"] == "from-yaml"
        assert body["version"] == ContactPolicy.load(yaml_rules).version
        assert '[[frequency_caps]]\nchannel = "email"\nmax = 3' in body["text"]
        assert put_rules(c, body["text"] + DE_EMAIL_CAP).status_code == 200
    # restarted with another file: the store's version 2 stays in force
    other = make_settings(tmp_path, rules_check_ms=0)
    with TestClient(create_app(other)) as c:
        body = c.get("/v1/rules", headers=auth("report")).json()
        assert body["store_version"] == 2 and list(body["markets"]) == ["DE"]
    # a bad startup file stops the service before anything is stored
    bad = tmp_path / "bad.toml"
    bad.write_text("[markets.XX]\n")
    with pytest.raises(RulesError, match=r"bad\.toml, line 1: rule 'markets\.XX'"):
        with TestClient(create_app(make_settings(tmp_path, rules_path=bad))):
            pass
    with EventStore(tmp_path / "events.db") as store:
        assert store_rules.head(store) == 2


def test_openapi_documents_the_rules_routes(app: TestClient) -> None:
    spec = app.get("/openapi.json").json()
    for path, method in (
        ("/v1/rules", "get"),
        ("/v1/rules", "put"),
        ("/v1/rules:dry-run", "post"),
        ("/v1/rules/diff", "get"),
        ("/v1/rules/diff", "post"),
        ("/v1/rules/history", "get"),
        ("/v1/rules:rollback", "post"),
    ):
        assert method in spec["paths"][path], (path, method)
    body = spec["paths"]["/v1/rules"]["put"]["requestBody"]["content"]
    assert set(body) == {"application/toml", "application/json"}
    assert "text" in body["application/json"]["schema"]["properties"]
