"""Stated preferences leave the store as their own Parquet table, and training sees the
statements a served decision used: bulk featurizing of the exported log gives the
per-decision lines byte for byte, ``sp_top``/``sp_ch`` included."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from serving_testkit import HCP_BODY, auth, make_settings

from nba.catalog import Catalog
from nba.context import STATED_WINDOW_DAYS, DecisionContext
from nba.domain import Action, HCPProfile, StatedPreference
from nba.features import Featurizer
from nba.features.bulk import featurize_bulk
from nba.logs import io as logio
from nba.logs.io import LogError
from nba.logs.schema import STATED_PREFERENCES
from serving.main import create_app
from serving.store import EventStore

T0 = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_at_each_test() -> None:
    """NOW taken again when each test starts: taken once at import, it is a day
    behind the service's clock for a test that runs after midnight UTC."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def _profile(hcp_id: str) -> HCPProfile:
    return HCPProfile(hcp_id, "cardiology", 5, "US", "aware", frozenset({"email"}))


def test_export_writes_stated_preferences_with_the_contract_schema(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = EventStore(store_at("events.db"))
    for h in ("h1", "h2"):
        store.upsert_hcp(_profile(h))
    said = [
        StatedPreference("h1", T0, "rep-1", topics=("dosing",)),
        StatedPreference("h2", T0 + timedelta(hours=1), "crm-import", channels=("email",)),
        StatedPreference(
            "h1", T0 + timedelta(days=2), "rep-2", ("safety", "efficacy"), ("portal",)
        ),
    ]
    for p in said:
        store.add_stated_preference(p)
    out = tmp_path / "log"
    counts = store.export(out)
    assert counts["stated_preferences"] == 3
    files = logio.part_files(out, "stated_preferences")
    assert len({f.parent.name for f in files}) == 3  # partitioned by the UTC day of ts
    back = logio.read(out, "stated_preferences")
    assert back.schema.equals(STATED_PREFERENCES)
    got = [
        StatedPreference(
            r["hcp_id"], r["ts"], r["recorded_by"], tuple(r["topics"]), tuple(r["channels"])
        )
        for r in back.to_pylist()
    ]
    assert got == said
    assert got == sorted(store.stated_preferences("h1") + store.stated_preferences("h2"),
                         key=lambda p: p.ts)  # fmt: skip
    # selected by their own time, like touches
    part = store.export(tmp_path / "day", since=date(2026, 3, 3), until=date(2026, 3, 3))
    assert part["stated_preferences"] == 1
    assert logio.read(tmp_path / "day", "stated_preferences").column("recorded_by").to_pylist() == [
        "crm-import"
    ]
    assert store.export(tmp_path / "none", until=date(2026, 3, 1))["stated_preferences"] == 0
    assert logio.read(tmp_path / "none", "stated_preferences").num_rows == 0


ROW: dict[str, Any] = {
    "hcp_id": "h1",
    "ts": T0,
    "recorded_by": "rep-1",
    "topics": ["dosing"],
    "channels": [],
}


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({k: [v] for k, v in ROW.items() if k != "recorded_by"}),
         r"stated_preferences: missing column\(s\) recorded_by"),
        (pa.Table.from_pylist([{**ROW, "topics": None}]),
         r"stated_preferences: column 'topics' has a null at row 0"),
        (pa.Table.from_pylist([{**ROW, "ts": "yesterday"}]),
         r"stated_preferences: column 'ts' \(string\) does not match the contract type"),
        (pa.Table.from_pylist([{**ROW, "hcp_id": None}]),
         r"stated_preferences: column 'hcp_id' has a null at row 0"),
    ],
)  # fmt: skip
def test_bad_stated_preference_tables_are_refused_and_nothing_is_written(
    tmp_path: Path, table: pa.Table, match: str
) -> None:
    with pytest.raises(LogError, match=match):
        logio.append(tmp_path, "stated_preferences", table)
    assert logio.part_files(tmp_path, "stated_preferences") == []


def _expected_stated(
    prefs: list[dict[str, Any]], hcp_id: str, day: date
) -> tuple[list[str], list[str]]:
    """The rule of docs/DESIGN.md, "Context version 3", rebuilt from the exported table:
    topics of the latest statement naming topics, channels of the latest naming channels,
    among those of the STATED_WINDOW_DAYS days before the decision day."""
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=STATED_WINDOW_DAYS)
    hi = datetime(day.year, day.month, day.day, tzinfo=UTC)
    mine = [p for p in prefs if p["hcp_id"] == hcp_id and lo <= p["ts"] < hi]
    mine.sort(key=lambda p: p["ts"], reverse=True)
    topics = next((p["topics"] for p in mine if p["topics"]), [])
    channels = next((p["channels"] for p in mine if p["channels"]), [])
    return sorted(topics), sorted(channels)  # contexts keep names sorted


def test_training_sees_the_statements_serving_used(tmp_path: Path) -> None:
    """Served decisions -> store export -> the bulk featurizer (nba train's path): the
    same lines as the per-decision featurizer on the served context, and the exported
    statements give back each decision's ``stated``."""
    cat = Catalog.default()
    with TestClient(create_app(make_settings(tmp_path))) as client:
        said = {
            "S1": [
                (400, {"topics": ["mechanism"], "channels": ["webinar"]}),  # too old
                (30, {"topics": ["dosing"], "channels": ["email"]}),
                (3, {"channels": ["portal"]}),  # newer channels, topics kept from day 30
                (0, {"topics": ["access_coverage"]}),  # on the decision day: not yet
            ],
            "S2": [(10, {"topics": ["safety", "efficacy"]})],
            "S3": [],
        }
        for hcp, statements in said.items():
            r = client.put(f"/v1/hcps/{hcp}", json=HCP_BODY, headers=auth("report"))
            assert r.status_code == 201, r.text
            for days_ago, body in statements:
                ts = NOW - timedelta(days=days_ago) if days_ago else NOW.replace(hour=0, minute=0)
                r = client.post(
                    f"/v1/hcps/{hcp}/stated-preferences",
                    json={"recorded_by": "rep-9", "ts": ts.isoformat(), **body},
                    headers=auth("report"),
                )
                assert r.status_code == 201, r.text
        for hcp in said:
            for channels in (["email", "portal"], ["webinar", "rep_visit", "remote_call"]):
                r = client.post(
                    "/v1/decisions",
                    json={"hcp_id": hcp, "channels": channels, "k": 2},
                    headers=auth("decide"),
                )
                assert r.status_code == 201, r.text
        store: EventStore = client.app.state.services.store  # type: ignore[attr-defined]
        out = tmp_path / "log"
        counts = store.export(out)
    assert counts["decisions"] == 6 and counts["stated_preferences"] == 5
    decisions = logio.read(out, "decisions")
    prefs = logio.read(out, "stated_preferences").to_pylist()
    f = Featurizer(cat)
    bulk = f.featurize_table(decisions)
    fast = featurize_bulk(
        f,
        decisions["context"].combine_chunks(),
        decisions["action_ids"].combine_chunks(),
        decisions["event_id"].combine_chunks(),
    )
    assert fast is not None  # the column-wise path did it, not the row-by-row fallback
    n_sp = 0
    for i, d in enumerate(decisions.to_pylist()):
        ctx = DecisionContext.from_json(d["context"])
        topics, channels = _expected_stated(prefs, d["hcp_id"], d["ts"].date())
        assert (list(ctx.stated_topics), list(ctx.stated_channels)) == (topics, channels)
        served = f.featurize_one(ctx, [Action.parse(a) for a in d["action_ids"]])
        assert bulk.lines(i) == fast.lines(i) == served  # byte for byte
        for line, aid in zip(served[1:], d["action_ids"], strict=True):
            a = Action.parse(aid)
            assert (" sp_top" in line) == (cat.by_id[a.content_id].topic in topics)
            assert (" sp_ch" in line) == (a.channel in channels)
            n_sp += (" sp_top" in line) + (" sp_ch" in line)
    assert n_sp > 0
    s1 = json.loads(
        decisions.filter(pa.compute.equal(decisions["hcp_id"], "S1"))["context"][0].as_py()
    )
    assert s1["stated"] == {"topics": ["dosing"], "channels": ["portal"]}
