"""Interest signals through the service: pull touches, the touches import, HCP
vocabularies and declared attributes on PUT and import, stated preferences. On a
real SQLite store (TestClient) and, for the imports, a real ``nba serve``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings, start_server, stop_server

from nba.logs import io as logio
from serving.main import create_app
from serving.store import EventStore

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_at_each_test() -> None:
    """NOW taken again when each test starts: taken once at import, it is a day
    behind the service's clock for a test that runs after midnight UTC."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def store(client: TestClient) -> EventStore:
    return client.app.state.services.store  # type: ignore[attr-defined,no-any-return]


def iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ pull touches
def test_pull_touch_round_trip(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    body = {
        "hcp_id": "H1",
        "channel": "rep_visit",
        "content_id": "VEL-EFF-01",
        "ts": iso(2),
        "origin": "ours",
        "kind": "detail_pull",
        "topics": ["dosing", "safety"],
        "content_ids": ["VEL-EFF-01/slide-4", "VEL-EFF-01/slide-9"],
        "dwell_s": 240,
    }
    r = client.post("/v1/touches", json=body, headers=auth("report"))
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "detail_pull"
    # an external page id unknown to the catalog is kept
    page = {"hcp_id": "H1", "channel": "portal", "content_id": "portal/faq", "ts": iso(1)}
    r = client.post(
        "/v1/touches", json={**page, "kind": "portal_view", "topics": ["access_coverage"]},
        headers=auth("report"),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    got = client.get("/v1/hcps/H1", headers=auth("report")).json()["recent_touches"]
    assert [(t["kind"], t["topics"], t["dwell_s"]) for t in got] == [
        ("detail_pull", ["dosing", "safety"], 240.0),
        ("portal_view", ["access_coverage"], None),
    ]
    assert got[0]["content_ids"] == ["VEL-EFF-01/slide-4", "VEL-EFF-01/slide-9"]


# ------------------------------------------------------- HCP vocabularies, attributes
ATTRS = {
    "rx_volume_decile": 9,
    "affiliations": ["academic_medical_center", "idn"],
    "payer_mix_commercial": 0.62,
    "sub_specialty": "preventive_cardiology",
    "key_opinion_leader": True,
    "stated_channel_preference": ["email"],
    "stated_topic_interest": ["clinical_data"],
}


def test_put_with_attributes_and_get(client: TestClient) -> None:
    r = client.put("/v1/hcps/A1", json={**HCP_BODY, "attributes": ATTRS}, headers=auth("report"))
    assert r.status_code == 201, r.text
    got = client.get("/v1/hcps/A1", headers=auth("report")).json()
    assert got["profile"]["attributes"] == ATTRS
    assert store(client).get_hcp_attributes("A1") == ATTRS
    # PUT replaces the whole profile: no attributes sent, none kept
    r = client.put("/v1/hcps/A1", json=HCP_BODY, headers=auth("report"))
    assert r.status_code == 200
    assert client.get("/v1/hcps/A1", headers=auth("report")).json()["profile"]["attributes"] == {}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"specialty": "cardiolgy"}, "specialty: 'cardiolgy' is not one of general_practice, "),
        ({"market": "XX"}, "market: 'XX' is not one of US, DE, FR, GB"),
        (
            {"consents": ["email", "fax"]},
            "consents: 'fax' is not one of the catalog's channels: rep_visit, remote_call, email",
        ),
        (
            {"attributes": {"rx_decile": 9}},
            "attributes: 'rx_decile' is not a declared attribute; declared: rx_volume_decile, ",
        ),
        (
            {"attributes": {"rx_volume_decile": 12}},
            "attribute 'rx_volume_decile': 12 is not allowed; expected a whole number in [1, 10]",
        ),
        (
            {"attributes": {"sub_specialty": "cardio"}},
            "attribute 'sub_specialty': 'cardio' is not allowed; expected one of "
            "interventional_cardiology",
        ),
        (
            {"attributes": {"stated_topic_interest": ["dosng"]}},
            "attribute 'stated_topic_interest': 'dosng' is not one of efficacy, safety",
        ),
        ({"rx_volume_decile": 9}, "rx_volume_decile: Extra inputs are not permitted"),
    ],
)
def test_bad_profiles_refused_naming_the_allowed_values(
    client: TestClient, change: dict[str, Any], match: str
) -> None:
    r = client.put("/v1/hcps/B1", json={**HCP_BODY, **change}, headers=auth("report"))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input" and match in r.json()["message"]
    assert store(client).get_hcp("B1") is None


def _upload(client: TestClient, route: str, name: str, data: bytes) -> httpx.Response:
    return client.post(route, files={"file": (name, data)}, headers=auth("report"))


HCP_CSV = (
    "hcp_id,specialty,decile,market,adoption_stage,consents,rx_volume_decile,affiliations,"
    "key_opinion_leader,payer_mix_commercial\n"
    "I1,cardiology,8,US,aware,email;rep_visit,9,idn;aco,true,0.5\n"
    "I2,general_practice,3,DE,considering,email,,,,\n"
)


def test_import_hcps_with_attribute_columns(client: TestClient) -> None:
    r = _upload(client, "/v1/hcps:import", "hcps.csv", HCP_CSV.encode())
    assert r.status_code == 200 and r.json() == {"imported": 2, "format": "csv"}, r.text
    assert store(client).get_hcp_attributes("I1") == {
        "rx_volume_decile": 9,
        "affiliations": ["idn", "aco"],
        "key_opinion_leader": True,
        "payer_mix_commercial": 0.5,
    }
    assert store(client).get_hcp_attributes("I2") == {}
    table = pa.table(
        {
            "hcp_id": ["Q1"],
            "specialty": ["lipidology"],
            "decile": pa.array([5], pa.int8()),
            "market": ["FR"],
            "adoption_stage": ["trialing"],
            "consents": [["email", "webinar"]],
            "rx_volume_decile": pa.array([7], pa.int8()),
            "stated_channel_preference": [["webinar"]],
            "sub_specialty": pa.array([None], pa.string()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = _upload(client, "/v1/hcps:import", "hcps.parquet", buf.getvalue())
    assert r.status_code == 200, r.text
    assert store(client).get_hcp_attributes("Q1") == {
        "rx_volume_decile": 7,
        "stated_channel_preference": ["webinar"],
    }


HEAD = "hcp_id,specialty,decile,market,adoption_stage,consents"


@pytest.mark.parametrize(
    ("csv", "match"),
    [
        (
            f"{HEAD},favourite_colour\nX1,cardiology,2,US,aware,email,red\n",
            "column 'favourite_colour' is not known; columns are hcp_id, specialty",
        ),
        (
            f"{HEAD}\nX1,cardiology,2,US,aware,email\nX2,cardiolgy,2,US,aware,email\n",
            "row 2: column 'specialty': 'cardiolgy' is not one of general_practice",
        ),
        (f"{HEAD}\nX1,cardiology,2,XX,aware,email\n", "row 1: column 'market': 'XX' is not one"),
        (
            f"{HEAD}\nX1,cardiology,2,US,aware,email;fax\n",
            "row 1: column 'consents': 'fax' is not one of the catalog's channels",
        ),
        (
            f"{HEAD},rx_volume_decile\nX1,cardiology,2,US,aware,email,11\n",
            "row 1: column 'rx_volume_decile': attribute 'rx_volume_decile': 11.0 is not allowed;"
            " expected a whole number in [1, 10]",
        ),
        (
            f"{HEAD},rx_volume_decile\nX1,cardiology,2,US,aware,email,high\n",
            "row 1: column 'rx_volume_decile': attribute 'rx_volume_decile': 'high' is not a "
            "number",
        ),
        (
            f"{HEAD},affiliations\nX1,cardiology,2,US,aware,email,idn;club\n",
            "row 1: column 'affiliations': attribute 'affiliations': 'club' is not one of "
            "academic_medical_center",
        ),
    ],
)
def test_bad_hcp_imports_store_nothing(client: TestClient, csv: str, match: str) -> None:
    r = _upload(client, "/v1/hcps:import", "h.csv", csv.encode())
    assert r.status_code == 422, r.text
    assert match in r.json()["message"]
    assert store(client).counts()["hcps"] == 0


def test_features_path_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "features.toml"
    cfg.write_text(
        'specialties = ["cardiology"]\nmarkets = ["US", "JP"]\n'
        '[[attributes]]\nname = "formulary_tier"\ntype = "numeric"\nrange = [1, 4]\n'
        'integer = true\nfeaturize = "numeric"\n'
    )
    with TestClient(create_app(make_settings(tmp_path, features_path=cfg))) as c:
        body = {**HCP_BODY, "market": "JP", "attributes": {"formulary_tier": 2}}
        assert c.put("/v1/hcps/J1", json=body, headers=auth("report")).status_code == 201
        r = c.put("/v1/hcps/J2", json={**HCP_BODY, "attributes": ATTRS}, headers=auth("report"))
        assert r.status_code == 422
        assert "declared: formulary_tier" in r.json()["message"]


# ----------------------------------------------------------------- touches import
TOUCH_CSV = (
    "hcp_id,ts,channel,content_id,origin,kind,topics,content_ids,dwell_s\n"
    f"H1,{iso(3)},rep_visit,VEL-EFF-01,ours,detail_pull,dosing;safety,slide-4|slide-9,240\n"
    f"H2,{iso(2)},email,VEL-EFF-02,external,email_click,efficacy,,\n"
    f"H1,{iso(1)},email,VEL-EFF-02,,,,,\n"
)


def test_touches_import_csv_and_parquet(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    put_hcp("H2")
    r = _upload(client, "/v1/touches:import", "clm.csv", TOUCH_CSV.encode())
    assert r.status_code == 200 and r.json() == {"imported": 3, "format": "csv"}, r.text
    got = store(client).recent_touches("H1", NOW - timedelta(days=9))
    assert [(t.kind, t.topics, t.content_ids, t.dwell_s, t.origin) for t in got] == [
        ("detail_pull", ("dosing", "safety"), ("slide-4", "slide-9"), 240.0, "ours"),
        ("contact", (), (), None, "external"),
    ]
    table = pa.table(
        {
            "hcp_id": ["H2"],
            "ts": pa.array([NOW - timedelta(hours=5)], pa.timestamp("us", tz="UTC")),
            "channel": ["webinar"],
            "content_id": ["VEL-WEB-01"],
            "kind": ["webinar_question"],
            "topics": [["guidelines"]],
            "dwell_s": [12.0],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = _upload(client, "/v1/touches:import", "crm.parquet", buf.getvalue())
    assert r.status_code == 200 and r.json() == {"imported": 1, "format": "parquet"}, r.text
    (last,) = store(client).recent_touches("H2", NOW - timedelta(hours=6))
    assert (last.kind, last.topics) == ("webinar_question", ("guidelines",))


GOOD = f"H1,{iso(1)},email,VEL-EFF-02"
T_HEAD = "hcp_id,ts,channel,content_id"


@pytest.mark.parametrize(
    ("csv", "match"),
    [
        (f"{T_HEAD},kind\n{GOOD},contact\n{GOOD},like\n", "row 2: column 'kind': 'like' is not"
         " one of contact, detail_pull, email_click, portal_view, webinar_question"),
        (f"{T_HEAD}\n{GOOD}\nH1,{iso(1)},fax,c\n", "row 2: column 'channel': 'fax' is not one of"
         " the catalog's channels: rep_visit"),
        (f"{T_HEAD},kind,topics\n{GOOD},email_click,dosng\n", "row 1: column 'topics': 'dosng'"
         " is not one of the catalog's topics: efficacy"),
        (f"{T_HEAD},topics\n{GOOD},dosing\n", "row 1: column 'topics': a plain contact carries"),
        (f"{T_HEAD},dwell_s\n{GOOD},-4\n", "row 1: column 'dwell_s': '-4' is not a number of"
         " seconds >= 0"),
        (f"{T_HEAD}\nH1,2026-01-05 10:00,email,c\n", "row 1: column 'ts': '2026-01-05 10:00'"
         " has no time zone"),
        (f"{T_HEAD}\nH1,yesterday,email,c\n", "row 1: column 'ts': 'yesterday' is not an ISO"),
        (f"{T_HEAD}\nH1,{iso(1)},email,\n", "row 1: column 'content_id': must not be empty"),
        (f"{T_HEAD},origin\n{GOOD},theirs\n", "row 1: column 'origin': 'theirs' is not one of"),
        (f"{T_HEAD},campaign\n{GOOD},x\n", "column 'campaign' is not known; columns are hcp_id"),
        ("hcp_id,ts,channel\nH1,x,email\n", "missing column(s) content_id"),
        (f"{T_HEAD}\n{GOOD}\nGHOST,{iso(1)},email,c\n", "row 2: its HCP is not in the store;"
         " nothing was stored; import the HCPs first"),
    ],
    # named ids: the rows hold the time of import, and pytest-xdist needs every worker
    # to collect the same test ids
    ids=["kind", "channel", "topic", "topics-on-contact", "dwell", "ts-no-zone", "ts-not-iso",
         "content-empty", "origin", "unknown-column", "missing-column", "unknown-hcp"],
)  # fmt: skip
def test_bad_touch_imports_store_nothing(
    client: TestClient, put_hcp: Callable[..., str], csv: str, match: str
) -> None:
    put_hcp("H1")
    r = _upload(client, "/v1/touches:import", "t.csv", csv.encode())
    assert r.status_code == 422, r.text
    assert match in r.json()["message"]
    assert "GHOST" not in r.json()["message"]
    assert store(client).counts()["touches"] == 0


def test_touches_import_not_a_table(client: TestClient) -> None:
    r = _upload(client, "/v1/touches:import", "t.png", b"\x89PNG....")
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media"


# ------------------------------------------------------------- stated preferences
def test_stated_preferences(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("S1")
    body = {"recorded_by": "rep-0042", "topics": ["dosing"], "channels": ["email"], "ts": iso(1)}
    r = client.post("/v1/hcps/S1/stated-preferences", json=body, headers=auth("report"))
    assert r.status_code == 201, r.text
    assert r.json()["topics"] == ["dosing"] and r.json()["recorded_by"] == "rep-0042"
    r = client.post(
        "/v1/hcps/S1/stated-preferences",
        json={"recorded_by": "rep-7", "channels": ["webinar"]},
        headers=auth("report"),
    )
    assert r.status_code == 201
    got = client.get("/v1/hcps/S1", headers=auth("report")).json()
    assert [(p["recorded_by"], p["topics"], p["channels"]) for p in got["stated_preferences"]] == [
        ("rep-0042", ["dosing"], ["email"]),
        ("rep-7", [], ["webinar"]),
    ]
    # a statement is not behaviour: no touch was recorded
    assert got["recent_touches"] == [] and store(client).counts()["touches"] == 0


@pytest.mark.parametrize(
    ("hcp", "body", "status", "match"),
    [
        ("S1", {"recorded_by": "r", "topics": ["dosng"]}, 422,
         "topics: 'dosng' is not one of the catalog's topics: efficacy"),
        ("S1", {"recorded_by": "r", "channels": ["fax"]}, 422,
         "channels: 'fax' is not one of the catalog's channels: rep_visit"),
        ("S1", {"recorded_by": "r"}, 422, "give at least one topic or channel"),
        ("S1", {"topics": ["dosing"]}, 422, "recorded_by: Field required"),
        ("S1", {"recorded_by": "r", "topics": ["dosing"], "ts": "2026-01-01T00:00:00"}, 422,
         "timezone"),
        ("S1", {"recorded_by": "r", "topics": ["dosing", "dosing"]}, 422, "lists 'dosing' twice"),
        ("NOBODY", {"recorded_by": "r", "topics": ["dosing"]}, 404, "NOBODY"),
    ],
)  # fmt: skip
def test_bad_stated_preferences(
    client: TestClient,
    put_hcp: Callable[..., str],
    hcp: str,
    body: dict[str, Any],
    status: int,
    match: str,
) -> None:
    put_hcp("S1")
    r = client.post(f"/v1/hcps/{hcp}/stated-preferences", json=body, headers=auth("report"))
    assert r.status_code == status, r.text
    assert match in r.json()["message"]
    assert store(client).counts()["stated_preferences"] == 0


def test_openapi_examples_on_new_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/touches:import", "/v1/hcps/{hcp_id}/stated-preferences"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    kinds = [e.get("kind", "contact") for e in schemas["TouchRequest"]["examples"]]
    assert "detail_pull" in kinds and "portal_view" in kinds
    assert schemas["StatedPreferenceRequest"]["examples"][0]["topics"]
    assert any("attributes" in e for e in schemas["HCPBody"]["examples"])


# ------------------------------------------------------------ over a real server
def test_imports_and_export_over_http(tmp_path: Path) -> None:
    """A real ``nba serve``: HCPs and a CLM activity file uploaded as files, a pull
    posted, then ``nba logs export --store`` writes the touches with their signals."""
    from click.testing import CliRunner

    from nba_cli.main import main

    proc, base = start_server(tmp_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            hcp_file = tmp_path / "hcps.csv"
            hcp_file.write_text(HCP_CSV.replace("I1", "H1").replace("I2", "H2"))
            with hcp_file.open("rb") as fh:
                r = c.post(
                    "/v1/hcps:import", files={"file": ("hcps.csv", fh)}, headers=auth("report")
                )
            assert r.status_code == 200, r.text
            clm = tmp_path / "clm.csv"
            clm.write_text(TOUCH_CSV)
            with clm.open("rb") as fh:
                r = c.post(
                    "/v1/touches:import", files={"file": ("clm.csv", fh)}, headers=auth("report")
                )
            assert r.status_code == 200 and r.json()["imported"] == 3, r.text
            bad = tmp_path / "bad.csv"
            bad.write_text(TOUCH_CSV + "H2,not-a-time,email,c,,,,,\n")
            with bad.open("rb") as fh:
                r = c.post(
                    "/v1/touches:import", files={"file": ("bad.csv", fh)}, headers=auth("report")
                )
            assert r.status_code == 422 and "row 4: column 'ts'" in r.json()["message"]
            r = c.get("/v1/hcps/H1", headers=auth("report"))
            assert r.json()["profile"]["attributes"]["affiliations"] == ["idn", "aco"]
            assert r.json()["recent_touches"][0]["topics"] == ["dosing", "safety"]
    finally:
        stop_server(proc)
    out = tmp_path / "log"
    res = CliRunner().invoke(
        main, ["logs", "export", "--store", str(tmp_path / "events.db"), "--format", "log",
               "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    touches = logio.read(out, "touches").sort_by("ts").to_pylist()
    assert [t["kind"] for t in touches] == ["detail_pull", "email_click", "contact"]
    assert touches[0]["content_ids"] == ["slide-4", "slide-9"] and touches[0]["dwell_s"] == 240.0


# ------------------------------------------------- what a decision's context carries
def test_decision_context_carries_interest_stated_and_attributes(client: TestClient) -> None:
    r = client.put("/v1/hcps/C1", json={**HCP_BODY, "attributes": ATTRS}, headers=auth("report"))
    assert r.status_code == 201, r.text
    pull = {
        "hcp_id": "C1",
        "channel": "portal",
        "content_id": "portal/faq",
        "ts": iso(2),
        "kind": "portal_view",
        "topics": ["dosing"],
    }
    assert client.post("/v1/touches", json=pull, headers=auth("report")).status_code == 201
    said = {"recorded_by": "rep-1", "topics": ["safety"], "channels": ["email"], "ts": iso(1)}
    r = client.post("/v1/hcps/C1/stated-preferences", json=said, headers=auth("report"))
    assert r.status_code == 201, r.text
    r = client.post("/v1/decisions", json={"hcp_id": "C1", "k": 1}, headers=auth("decide"))
    assert r.status_code == 201, r.text
    ctx = store(client).get_decision(r.json()["event_id"]).context  # type: ignore[union-attr]
    d = json.loads(ctx)
    assert d["v"] == 5
    # a page view two (calendar) days before the decision day, or one when it was late
    age = (NOW.date() - (NOW - timedelta(days=2)).date()).days
    assert d["history"]["interest"] == {"dosing": round(0.5 ** (age / 14), 3)}
    assert d["history"]["topic_pulls_90d"] == {"dosing": 1}
    assert d["stated"] == {"channels": ["email"], "topics": ["safety"]}
    assert d["attributes"] == {
        "affiliations": ["academic_medical_center", "idn"],
        "key_opinion_leader": True,
        "payer_mix_commercial": 0.62,
        "rx_volume_decile": "ge8",
        "stated_channel_preference": ["email"],
        "stated_topic_interest": ["clinical_data"],
        "sub_specialty": "preventive_cardiology",
    }
