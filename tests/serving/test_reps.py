"""Reps and territories on a real SQLite store: alignment history, the alignment
file (every bad row named, nothing half-imported), ``PUT /v1/reps``, override
touches' bad inputs, and ``nba reps import``."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from serving_testkit import auth

from nba.domain import HCPProfile
from nba.domain import ValidationError as DomainError
from nba_cli.main import main
from serving.rep_import import read_alignment
from serving.settings import Settings
from serving.store import EventStore, StoreError, UnknownHCPError
from serving.store_reps import (
    AlignmentError,
    Rep,
    alignment_history,
    get_rep,
    import_alignment,
    owner_on,
    put_rep,
    territory,
)


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    """Every route test of this module runs on both store backends."""
    return settings_on_both


D0 = date(2026, 1, 5)


def _store(location: str | Path, hcps: tuple[str, ...] = ("H1", "H2", "H3")) -> EventStore:
    store = EventStore(location)
    for h in hcps:
        store.upsert_hcp(HCPProfile(h, "cardiology", 5, "US", "aware", frozenset({"email"})))
    return store


# ------------------------------------------------------------------ alignment history
def test_realigning_closes_the_previous_row_and_answers_who_owned_when(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = _store(store_at())
    assert put_rep(store, "R1", "Ann", 5, ["H1", "H2"], D0) is True
    assert put_rep(store, "R2", None, 4, ["H2", "H3"], D0 + timedelta(days=10)) is True
    # R1 keeps H1 and gains H3 back from R2 later
    assert put_rep(store, "R1", None, 6, ["H1", "H3"], D0 + timedelta(days=20)) is False
    assert get_rep(store, "R1") == Rep("R1", "Ann", 6)  # the name is kept when not given
    rows = [(r.rep_id, r.valid_from, r.valid_to) for r in alignment_history(store, "H3")]
    assert rows == [
        ("R2", D0 + timedelta(10), D0 + timedelta(20)),
        ("R1", D0 + timedelta(20), None),
    ]
    assert owner_on(store, "H2", D0 + timedelta(days=9)) == "R1"
    assert owner_on(store, "H2", D0 + timedelta(days=10)) == "R2"
    assert owner_on(store, "H2", D0 - timedelta(days=1)) is None
    assert territory(store, "R1", D0 + timedelta(days=15)) == ["H1"]
    assert territory(store, "R1", D0 + timedelta(days=20)) == ["H1", "H3"]
    # R2 lost H3 on day 20 (closed), still owns H2
    assert territory(store, "R2", D0 + timedelta(days=25)) == ["H2"]


def test_a_same_day_change_replaces_the_row_it_supersedes(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = _store(store_at())
    put_rep(store, "R1", None, 5, ["H1"], D0)
    put_rep(store, "R2", None, 5, ["H1"], D0)
    assert [(r.rep_id, r.valid_to) for r in alignment_history(store, "H1")] == [("R2", None)]


@pytest.mark.parametrize(
    ("hcp_ids", "since", "error", "match"),
    [
        (["H1", "H9"], D0, UnknownHCPError, "HCP 'H9' is not in the store"),
        (["H1", "H1"], D0, StoreError, "HCP 'H1' is listed twice"),
        (["H1"], D0 - timedelta(days=1), AlignmentError, "must start on or after it"),
    ],
)
def test_put_rep_refuses_bad_territories_and_stores_nothing(
    tmp_path: Path,
    hcp_ids: list[str],
    since: date,
    error: type[Exception],
    match: str,
    store_at: Callable[..., str | Path],
) -> None:
    store = _store(store_at())
    put_rep(store, "R1", None, 5, ["H1"], D0)
    with pytest.raises(error, match=match):
        put_rep(store, "R2", "Bo", 3, hcp_ids, since)
    assert get_rep(store, "R2") is None
    assert [r.rep_id for r in alignment_history(store, "H1")] == ["R1"]


@pytest.mark.parametrize("capacity", [-1, 1001, 2.5, True])
def test_capacity_must_be_a_whole_number(
    tmp_path: Path, capacity: object, store_at: Callable[..., str | Path]
) -> None:
    store = _store(store_at())
    with pytest.raises(StoreError, match="capacity_per_day: must be a whole number"):
        put_rep(store, "R1", None, capacity, ["H1"], D0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ alignment file
HEADER = "rep_id,hcp_id,valid_from,valid_to,name,capacity_per_day\n"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("rep_id,valid_from\nR1,2026-01-05\n", "missing column\\(s\\) hcp_id"),
        ("rep_id,hcp_id,region\nR1,H1,north\n", "column 'region' is not known"),
        (HEADER + "R 1,H1,,,,3\n", r"row 1: column 'rep_id': 'R 1' is not an id"),
        (HEADER + "R1,,,,,3\n", "row 1: column 'hcp_id': '' is not an id"),
        (HEADER + "R1,H1,05/01/2026,,,3\n", "row 1: column 'valid_from': '05/01/2026' is not"),
        (HEADER + "R1,H1,2026-01-05,2026-01-05,,3\n", "row 1: column 'valid_to': 2026-01-05 is"),
        (HEADER + "R1,H1,,,,-2\n", "row 1: column 'capacity_per_day': '-2' is not a whole"),
        (
            HEADER + "R1,H1,,,,3\nR1,H2,,,,4\n",
            "row 2: column 'capacity_per_day': 4 differs from 3 given for rep 'R1' in row 1",
        ),
        (HEADER + "R1,H1,,,Ann,3\nR1,H2,,,Bo,\n", "row 2: column 'name': 'Bo' differs"),
        (
            HEADER + "R1,H1,2026-01-05,,,3\nR2,H1,2026-01-05,,,3\n",
            "row 2: column 'hcp_id': HCP 'H1' is aligned twice from 2026-01-05 \\(also row 1\\)",
        ),
    ],
)
def test_alignment_file_bad_rows_are_named(body: str, match: str) -> None:
    with pytest.raises(DomainError, match=match):
        read_alignment(body.encode(), "a.csv", today=D0)


def test_every_bad_row_is_reported_once() -> None:
    body = HEADER + "R1,H1,,,,x\nR1,H2,,,,3\nR 3,H3,bad,,,3\n"
    with pytest.raises(DomainError) as exc:
        read_alignment(body.encode(), "a.csv", today=D0)
    lines = str(exc.value).splitlines()
    assert lines[0] == "2 bad row(s), nothing imported:"
    assert [ln.split(":")[0] for ln in lines[1:]] == ["row 1", "row 3"]


def test_parquet_alignment_and_dates_as_dates() -> None:
    table = pa.table(
        {
            "rep_id": ["R1", "R1"],
            "hcp_id": ["H1", "H2"],
            "valid_from": pa.array([D0, D0 + timedelta(days=3)], pa.date32()),
            "capacity_per_day": pa.array([5, 5], pa.int64()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    changes, reps = read_alignment(buf.getvalue(), "a.parquet")
    assert [(c.hcp_id, c.valid_from) for c in changes] == [("H1", D0), ("H2", D0 + timedelta(3))]
    assert reps == {"R1": (None, 5)}


def test_import_is_all_or_nothing_and_names_store_problems(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = _store(store_at())
    put_rep(store, "R1", None, 5, ["H1"], D0 + timedelta(days=5))
    body = (
        HEADER
        + "R2,H2,2026-01-05,,,3\n"  # fine
        + "R2,H9,2026-01-05,,,3\n"  # unknown HCP
        + "R3,H3,2026-01-05,,,\n"  # new rep without capacity
        + "R2,H1,2026-01-06,,,3\n"  # before H1's alignment to R1 starts
    )
    changes, reps = read_alignment(body.encode(), "a.csv")
    with pytest.raises(StoreError) as exc:
        import_alignment(store, changes, reps)
    lines = str(exc.value).splitlines()
    assert lines[0] == "3 bad row(s), nothing imported:"
    assert lines[1] == "row 2: column 'hcp_id': HCP 'H9' is not in the store"
    assert lines[2].startswith("row 3: column 'capacity_per_day': rep 'R3' is new")
    assert lines[3].startswith("row 4: column 'valid_from': HCP 'H1' is aligned to rep 'R1'")
    assert get_rep(store, "R2") is None and alignment_history(store, "H2") == []
    good = HEADER + "R2,H2,2026-01-05,,,3\nR2,H1,2026-02-01,2026-03-01,,3\n"
    changes, reps = read_alignment(good.encode(), "a.csv")
    assert import_alignment(store, changes, reps) == 2
    assert owner_on(store, "H1", date(2026, 2, 15)) == "R2"
    assert owner_on(store, "H1", date(2026, 3, 1)) is None  # valid_to is exclusive


# ------------------------------------------------------------------ HTTP bad inputs
def test_rep_routes_bad_input(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    admin = auth("admin")
    r = client.put("/v1/reps/R1", json={"capacity_per_day": 2, "hcp_ids": ["H9"]}, headers=admin)
    assert r.status_code == 422 and "HCP 'H9' is not in the store" in r.json()["message"]
    r = client.put("/v1/reps/R1", json={"capacity_per_day": -1, "hcp_ids": []}, headers=admin)
    assert r.status_code == 422 and "capacity_per_day" in r.text
    r = client.put("/v1/reps/R1", json={"capacity_per_day": 2, "hcp_ids": ["H1"]}, headers=admin)
    assert r.status_code == 201
    r = client.put("/v1/reps/R1", json={"capacity_per_day": 2, "hcp_ids": ["H1"]}, headers=admin)
    assert r.status_code == 200 and r.json()["created"] is False
    r = client.put(
        "/v1/reps/R1", json={"capacity_per_day": 2, "hcp_ids": []}, headers=auth("report")
    )
    assert r.status_code == 403
    for url in ("/v1/reps/R9/suggestions", "/v1/reps/R9/hcps", "/v1/reps/R9/overrides"):
        r = client.get(url, headers=admin)
        assert r.status_code == 404 and r.json()["code"] == "unknown_rep", url
    r = client.get("/v1/reps/R1/overrides?since=2026-02-01&until=2026-01-01", headers=admin)
    assert r.status_code == 422 and "before since" in r.json()["message"]
    assert client.get("/v1/hcps/H9/alignment", headers=admin).status_code == 404
    assert client.get("/v1/hcps/H9/timeline", headers=admin).status_code == 404
    r = client.post(
        "/v1/reps:import",
        files={"file": ("a.csv", HEADER + "R1,H1,,,,3\nR2,H7,,,,3\n", "text/csv")},
        headers=admin,
    )
    assert r.status_code == 422
    assert "row 2: column 'hcp_id': HCP 'H7' is not in the store" in r.json()["message"]
    r = client.post(
        "/v1/reps:import",
        files={"file": ("a.xlsx", b"junk", "application/octet-stream")},
        headers=admin,
    )
    assert r.status_code == 415


def test_override_touch_bad_input(client: TestClient, put_hcp: Callable[..., str]) -> None:
    put_hcp("H1")
    d = client.post(
        "/v1/decisions", json={"hcp_id": "H1", "channels": ["rep_visit"]}, headers=auth("decide")
    ).json()
    chosen_content, channel = d["chosen_action_id"].split("@")
    base = {"hcp_id": "H1", "channel": "email", "content_id": "VEL-EFF-01"}
    cases = [
        ({**base, "overrides_event_id": "E-none"}, 404, "not in the store"),
        (
            {**base, "overrides_event_id": d["event_id"], "kind": "portal_view", "topics": []},
            422,
            "only a contact overrides",
        ),
        (
            {**base, "overrides_event_id": d["event_id"], "ts": "2020-01-01T00:00:00Z"},
            422,
            "before the decision it overrides",
        ),
        (
            {**base, "channel": channel, "content_id": chosen_content},
            422,
            "not an override",
        ),
    ]
    for body, code, match in cases:
        body.setdefault("overrides_event_id", d["event_id"])
        r = client.post("/v1/touches", json=body, headers=auth("report"))
        assert r.status_code == code and match in r.json()["message"], (body, r.text)
    # a decision whose chosen action already got a response was not overridden
    held = "meeting_held" if channel == "rep_visit" else "call_held"
    r = client.post(
        f"/v1/events/{d['event_id']}/outcomes", json={"type": held}, headers=auth("report")
    )
    assert r.status_code == 201
    r = client.post(
        "/v1/touches", json={**base, "overrides_event_id": d["event_id"]}, headers=auth("report")
    )
    assert r.status_code == 422 and "already has a" in r.json()["message"]
    assert (
        client.get("/v1/hcps/H1", headers=auth("report")).json()["recent_touches"][-1]["origin"]
        == "ours"
    )  # only the touch the held meeting proved


# ------------------------------------------------------------------ CLI
def test_reps_import_cli(tmp_path: Path, store_at: Callable[..., str | Path]) -> None:
    db = store_at()
    _store(db).close()
    good = tmp_path / "align.csv"
    good.write_text(HEADER + "R1,H1,2026-01-05,,Ann,4\nR1,H2,2026-01-05,,,\n")
    res = CliRunner().invoke(main, ["reps", "import", str(good), "--store", str(db)])
    assert res.exit_code == 0, res.output
    assert "imported 2 alignment rows of 1 rep(s)" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "R2,H3,2026-01-05,,,x\nR2,H8,2026-01-05,,,2\n")
    res = CliRunner().invoke(main, ["reps", "import", str(bad), "--store", str(db)])
    assert res.exit_code == 1
    assert "row 1: column 'capacity_per_day': 'x' is not a whole number" in res.output
    res = CliRunner().invoke(main, ["reps", "import", str(good), "--store", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no event store database" in res.output
    with EventStore(db) as s:
        assert territory(s, "R1", date(2026, 1, 5)) == ["H1", "H2"]
        assert get_rep(s, "R2") is None
        assert owner_on(s, "H1", datetime.now(UTC).date()) == "R1"


def test_openapi_documents_the_rep_routes_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/reps/{rep_id}",
        "/v1/reps:import",
        "/v1/reps/{rep_id}/suggestions",
        "/v1/reps/{rep_id}/hcps",
        "/v1/reps/{rep_id}/overrides",
        "/v1/hcps/{hcp_id}/alignment",
        "/v1/hcps/{hcp_id}/timeline",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    for name in ("RepBody", "RepDay", "RepTerritory", "OverrideReport", "Timeline", "HCPAlignment"):
        assert schemas[name]["examples"], name
    # every example validates against its own model
    from serving import schemas_reps

    for name in ("RepBody", "RepDay", "RepTerritory", "OverrideReport", "Timeline", "HCPAlignment"):
        model = getattr(schemas_reps, name)
        for ex in schemas[name]["examples"]:
            model.model_validate(ex)
    assert any("overrides_event_id" in e for e in schemas["TouchRequest"]["examples"])
    suggestions = spec["paths"]["/v1/reps/{rep_id}/suggestions"]["get"]
    assert "403" in suggestions["responses"] and "404" in suggestions["responses"]


def test_an_override_is_counted_in_the_hcps_next_contexts(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    import json

    from serving_testkit import HCP_BODY, make_settings, store_settings

    from serving.main import create_app

    settings = make_settings(tmp_path, allow_client_time=True, **store_settings(store_at()))
    with TestClient(create_app(settings)) as c:
        assert c.put("/v1/hcps/H1", json=HCP_BODY, headers=auth("report")).status_code == 201

        def decide(as_of: str) -> dict[str, object]:
            r = c.post(
                "/v1/decisions",
                json={"hcp_id": "H1", "channels": ["email"], "as_of": as_of},
                headers=auth("decide"),
            )
            assert r.status_code == 201, r.text
            body: dict[str, object] = r.json()
            return body

        def overrides_in_context(event_id: object) -> object:
            d = c.app.state.services.store.get_decision(event_id)  # type: ignore[attr-defined]
            return json.loads(d.context)["history"].get("overrides_90d")

        first = decide("2026-01-05T09:00:00Z")
        touch = {
            "hcp_id": "H1",
            "channel": "rep_visit",
            "content_id": "VEL-EFF-01",
            "ts": "2026-01-05T11:00:00Z",
            "overrides_event_id": first["event_id"],
        }
        assert c.post("/v1/touches", json=touch, headers=auth("report")).status_code == 201
        # counted from the next day (after the 24-hour minimum gap) for 90 days
        assert overrides_in_context(first["event_id"]) is None
        assert overrides_in_context(decide("2026-01-06T12:00:00Z")["event_id"]) == 1
        assert overrides_in_context(decide("2026-04-05T09:00:00Z")["event_id"]) == 1
        assert overrides_in_context(decide("2026-04-06T09:00:00Z")["event_id"]) is None


def test_a_day_list_is_stored_once_and_purged_with_its_decisions(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    from nba.domain import Decision
    from serving.store_reps import day_items, get_day, save_day

    store = _store(store_at())
    put_rep(store, "R1", None, 1, ["H1"], D0)
    ts = datetime(2026, 1, 5, 7, tzinfo=UTC)

    def decision(eid: str) -> Decision:
        return Decision(
            eid, ts, "H1", "rep_app", ("rep_visit",), "{}", "cat", ("c1@rep_visit",), (1.0,),
            0, "c1@rep_visit", 1.0, "uniform", "baseline:uniform",
        )  # fmt: skip

    assert save_day(store, "R1", D0, [decision("E1")], {"n": 1}) == {"n": 1}
    # a second list of the same day (a concurrent first call) is dropped, decisions too
    assert save_day(store, "R1", D0, [decision("E2")], {"n": 2}) == {"n": 1}
    assert store.get_decision("E2") is None
    assert [i.event_id for i in day_items(store, "R1", D0, D0)] == ["E1"]
    gone = store.purge(older_than=datetime(2026, 1, 6, tzinfo=UTC))
    assert (gone["decisions"], gone["rep_days"]) == (1, 1)
    assert get_day(store, "R1", D0) is None and day_items(store, "R1", D0, D0) == []
