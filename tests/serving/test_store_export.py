"""Export from the store gives the Parquet event log with the contract schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from nba.catalog import Catalog
from nba.domain import Decision, Outcome, Suppression, Touch
from nba.logs import io as logio
from nba.logs.schema import DECISIONS, OUTCOMES, TOUCHES
from serving.store import EventStore

T0 = datetime(2026, 4, 1, 22, 0, tzinfo=UTC)


def dec(i: int, ts: datetime, catalog_version: str, deferred: bool = False) -> Decision:
    return Decision(
        event_id=f"E{i:03d}",
        ts=ts,
        hcp_id=f"h{i % 3}",
        requester="email_platform",
        channels_requested=("email",),
        context=json.dumps({"v": 1, "i": i}),
        catalog_version=catalog_version,
        action_ids=("VEL-EFF-02@email", "VEL-EFF-04@email"),
        probabilities=(0.25, 0.75),
        chosen_index=i % 2,
        chosen_action_id=("VEL-EFF-02@email", "VEL-EFF-04@email")[i % 2],
        propensity=(0.25, 0.75)[i % 2],
        policy="vw",
        model_version="nba/1",
        suppressed=(Suppression("VEL-SAF-01@email", "approval"),) if i % 2 else (),
        activated=not deferred,
    )


@pytest.fixture
def filled(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> tuple[EventStore, Catalog, list[Decision]]:
    store = EventStore(store_at("events.db"))
    cat = Catalog.default()
    assert store.add_catalog(cat) is True
    assert store.add_catalog(cat) is False
    decisions = [
        dec(i, T0 + timedelta(hours=3 * i), cat.version, deferred=i == 4) for i in range(8)
    ]
    decisions.append(dec(99, T0 + timedelta(hours=1), "unknown-version"))
    store.add_decisions(decisions[:4])
    for d in decisions[4:]:
        store.add_decision(d, deferred=not d.activated)
    for d in decisions:
        store.add_outcome(Outcome(d.event_id, d.ts + timedelta(hours=1), "opened", source_id="m"))
    store.add_outcome(Outcome("E000", T0 + timedelta(days=20), "clicked"))  # late, still exported
    store.add_touches(
        Touch(f"h{i % 3}", T0 + timedelta(hours=5 * i), "email", "VEL-EFF-02") for i in range(6)
    )
    return store, cat, decisions


def test_export_round_trip_with_contract_schemas(
    filled: tuple[EventStore, Catalog, list[Decision]], tmp_path: Path
) -> None:
    store, cat, decisions = filled
    out = tmp_path / "log"
    counts = store.export(out)
    assert counts == {
        "decisions": 9,
        "outcomes": 10,
        "touches": 6,
        "stated_preferences": 0,
        "catalogs": 1,
        "missing_catalogs": 1,
    }
    dec_t = logio.read(out, "decisions")
    out_t = logio.read(out, "outcomes")
    tch_t = logio.read(out, "touches")
    assert dec_t.schema.equals(DECISIONS)
    assert out_t.schema.equals(OUTCOMES)
    assert tch_t.schema.equals(TOUCHES)
    # partitioned by UTC date of ts: T0 is 22:00, so decisions span several days
    assert len({p.parent.name for p in logio.part_files(out, "decisions")}) >= 2
    rows = {r["event_id"]: r for r in dec_t.to_pylist()}
    for d in decisions:
        r = rows[d.event_id]
        assert r["ts"] == d.ts
        assert tuple(r["action_ids"]) == d.action_ids
        assert tuple(r["probabilities"]) == d.probabilities
        assert r["propensity"] == d.propensity == r["probabilities"][r["chosen_index"]]
        assert r["suppressed"] == [{"action_id": s.action_id, "rule": s.rule} for s in d.suppressed]
        assert r["activated"] == d.activated
        assert r["context"] == d.context
    assert rows["E004"]["activated"] is False
    assert sorted(out_t.column("type").to_pylist()) == ["clicked"] + ["opened"] * 9
    snap = out / "catalog" / f"{cat.version}.json"
    assert Catalog.read_snapshot(snap).version == cat.version


def test_export_date_range(
    filled: tuple[EventStore, Catalog, list[Decision]], tmp_path: Path
) -> None:
    store, _, decisions = filled
    since = T0 + timedelta(hours=4)
    until = T0 + timedelta(hours=13)
    counts = store.export(tmp_path / "part", since=since, until=until)
    wanted = sorted(d.event_id for d in decisions if since <= d.ts < until)
    got = logio.read(tmp_path / "part", "decisions").column("event_id").to_pylist()
    assert sorted(got) == wanted and counts["decisions"] == len(wanted) == 3
    assert counts["outcomes"] == 3  # the outcomes of those decisions
    by_day = store.export(tmp_path / "day", since=date(2026, 4, 2), until=date(2026, 4, 2))
    day_ids = logio.read(tmp_path / "day", "decisions").column("event_id").to_pylist()
    assert (
        by_day["decisions"]
        == len(day_ids)
        == sum(d.ts.date() == date(2026, 4, 2) for d in decisions)
    )


def test_export_of_an_empty_store_writes_nothing(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store = EventStore(store_at("events.db"))
    counts = store.export(tmp_path / "log")
    assert counts == dict.fromkeys(
        ("decisions", "outcomes", "touches", "stated_preferences", "catalogs", "missing_catalogs"),
        0,
    )
    assert logio.read(tmp_path / "log", "decisions").num_rows == 0


def test_increments_export_each_row_once_late_outcomes_included(
    filled: tuple[EventStore, Catalog, list[Decision]], tmp_path: Path
) -> None:
    store, cat, decisions = filled
    out = tmp_path / "inc"
    counts, marks = store.export_increment(out, {})
    assert counts["decisions"] == 9 and counts["outcomes"] == 10 and counts["touches"] == 6
    assert counts["catalogs"] == 1
    again, same = store.export_increment(out, marks)
    assert again["decisions"] == again["outcomes"] == again["touches"] == 0 and same == marks
    # new rows after the marks: a new decision and a late outcome of an exported one
    store.add_decision(dec(200, T0 + timedelta(days=3), cat.version))
    store.add_outcome(Outcome("E001", T0 + timedelta(days=2), "clicked"))
    more, marks2 = store.export_increment(out, marks)
    assert (more["decisions"], more["outcomes"], more["touches"]) == (1, 1, 0)
    assert marks2["decisions"] > marks["decisions"] and marks2["outcomes"] > marks["outcomes"]
    ids = logio.read(out, "decisions").column("event_id").to_pylist()
    assert sorted(ids) == sorted([d.event_id for d in decisions] + ["E200"])
    assert logio.read(out, "outcomes").num_rows == 11
