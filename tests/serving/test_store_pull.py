"""The event store keeps interest signals: pull touches (kind, topics, content_ids,
dwell), declared HCP attributes and stated preferences; a database file made by the
version-1 DDL (before them) is migrated in place when opened."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nba.domain import HCPProfile, StatedPreference, Touch
from nba.logs import io as logio
from nba.logs.schema import TOUCHES
from serving.store import SCHEMA_VERSION, EventStore, StoreError, UnknownHCPError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
V1_DDL = (Path(__file__).parent / "data" / "store_schema_v1.sql").read_text()


def hcp(hid: str) -> HCPProfile:
    return HCPProfile(hid, "cardiology", 7, "US", "aware", frozenset({"email"}))


PULL = Touch(
    "h1",
    T0,
    "rep_visit",
    "VEL-EFF-01",
    "ours",
    "detail_pull",
    topics=("dosing", "safety"),
    content_ids=("slide-3", "slide-7"),
    dwell_s=95.0,
)


def make_v1_file(path: Path) -> None:
    """A database exactly as the version-1 code left it, with a profile and a touch."""
    con = sqlite3.connect(path)
    con.executescript(V1_DDL)
    con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO hcps VALUES ('h1', 'cardiology', 7, 'US', 'aware', '[\"email\"]', 0, 0.5, 1)"
    )
    us = int((T0 - timedelta(days=1)).timestamp() * 1_000_000)
    con.execute(
        "INSERT INTO touches (hcp_id, ts_us, channel, content_id, origin)"
        " VALUES ('h1', ?, 'email', 'VEL-EFF-02', 'ours')",
        (us,),
    )
    con.commit()
    con.close()


def columns(path: Path, table: str) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


def test_version_1_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    make_v1_file(db)
    assert "kind" not in columns(db, "touches")
    store = EventStore(db)
    assert {"kind", "topics", "content_ids", "dwell_s"} <= set(columns(db, "touches"))
    assert "attributes" in columns(db, "hcps")
    con = sqlite3.connect(db)
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    con.close()
    assert int(version) == SCHEMA_VERSION == 5
    assert "action_id" in columns(db, "outcomes")  # the version-2 step too
    # the old touch reads as a plain contact, the old profile with no attributes
    (old,) = store.recent_touches("h1", T0 - timedelta(days=30))
    assert (old.kind, old.topics, old.content_ids, old.dwell_s) == ("contact", (), (), None)
    assert store.get_hcp("h1") == hcp("h1")
    assert store.get_hcp_attributes("h1") == {}
    # and the migrated file takes the new records
    store.add_touch(PULL)
    store.add_stated_preference(StatedPreference("h1", T0, "rep-7", topics=("dosing",)))
    assert store.recent_touches("h1", T0)[0] == PULL
    store.close()
    # opening again is a no-op (already the current version)
    again = EventStore(db)
    assert again.counts()["touches"] == 2 and again.counts()["stated_preferences"] == 1


def test_version_2_file_gains_the_interest_columns_and_keeps_its_action_ids(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v2.db"
    make_v1_file(db)
    con = sqlite3.connect(db)  # what version 2 (outcomes.action_id) left behind
    con.execute("ALTER TABLE outcomes ADD COLUMN action_id TEXT")
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.commit()
    con.close()
    store = EventStore(db)
    assert {"kind", "topics", "content_ids", "dwell_s"} <= set(columns(db, "touches"))
    assert columns(db, "outcomes").count("action_id") == 1
    (old,) = store.recent_touches("h1", T0 - timedelta(days=30))
    assert old.kind == "contact"
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    con.close()


def test_version_1_file_exports_the_new_touch_schema(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    make_v1_file(db)
    store = EventStore(db)
    store.add_touch(PULL)
    assert store.export(tmp_path / "logs")["touches"] == 2
    got = logio.read(tmp_path / "logs", "touches")
    assert got.schema.equals(TOUCHES)
    rows = got.to_pylist()
    assert [r["kind"] for r in rows] == ["contact", "detail_pull"]
    assert rows[1]["topics"] == ["dosing", "safety"]
    assert rows[1]["content_ids"] == ["slide-3", "slide-7"]
    assert rows[0]["dwell_s"] is None and rows[1]["dwell_s"] == 95.0


def test_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    EventStore(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(
        StoreError, match=f"has schema version 99, this code reads version {SCHEMA_VERSION}"
    ):
        EventStore(db)


def test_pull_touch_round_trip(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    contact = Touch("h1", T0 - timedelta(hours=1), "email", "VEL-EFF-02")
    store.add_touches([contact, PULL])
    assert store.recent_touches("h1", T0 - timedelta(days=1)) == [contact, PULL]


def test_add_touches_known_hcps_only_is_all_or_nothing(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.upsert_hcp(hcp("h1"))
    batch = [PULL, Touch("ghost", T0, "email", "c"), PULL]
    with pytest.raises(UnknownHCPError, match=r"touch 2: its HCP is not in the store"):
        store.add_touches(batch, known_hcps_only=True)
    assert store.counts()["touches"] == 0
    assert store.add_touches([PULL, PULL], known_hcps_only=True) == 2


def test_attributes_stored_replaced_and_returned(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    attrs = {"rx_decile": 9, "affiliations": ["idn"], "kol": True}
    store.upsert_hcp(hcp("h1"), attrs)
    assert store.get_hcp_attributes("h1") == attrs
    store.upsert_hcp(hcp("h1"))  # a full replace with no attributes keeps none
    assert store.get_hcp_attributes("h1") == {}
    store.upsert_hcps([hcp("h2"), hcp("h3")], [{"rx_decile": 2}, None])
    assert store.get_hcp_attributes("h2") == {"rx_decile": 2}
    assert store.get_hcp_attributes("h3") == {}
    assert store.get_hcp_attributes("nobody") is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.upsert_hcp(hcp("h1"), {"x": float("nan")}), "not plain JSON values"),
        (lambda s: s.upsert_hcp(hcp("h1"), {"x": object()}), "not plain JSON values"),
        (lambda s: s.upsert_hcp(hcp("h1"), {"": 1}), "attribute names must be non-empty"),
        (lambda s: s.upsert_hcps([hcp("h1")], [{}, {}]), "2 attribute sets for 1 profiles"),
        (
            lambda s: s.add_stated_preference(StatedPreference("ghost", T0, "r", ("dosing",))),
            "the HCP is not in the store",
        ),
    ],
)
def test_bad_store_calls_refused(tmp_path: Path, call: object, match: str) -> None:
    store = EventStore(tmp_path / "e.db")
    with pytest.raises(StoreError, match=match):
        call(store)  # type: ignore[operator]
    assert store.counts()["hcps"] == 0 and store.counts()["stated_preferences"] == 0


def test_stated_preferences_kept_apart_from_touches(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.upsert_hcp(hcp("h1"))
    later = StatedPreference("h1", T0 + timedelta(days=2), "rep-7", channels=("email",))
    first = StatedPreference("h1", T0, "rep-3", topics=("dosing", "safety"))
    store.add_stated_preference(later)
    store.add_stated_preference(first)
    assert store.stated_preferences("h1") == [first, later]
    assert store.counts()["touches"] == 0
    assert store.recent_touches("h1", T0 - timedelta(days=9)) == []
    assert json.loads(json.dumps(store.counts()))["stated_preferences"] == 2


#: what version 4 added to a version-3 file: tables, and columns of older tables
V4_TABLES = (
    "reps",
    "rep_alignment",
    "rep_days",
    "rep_day_items",
    "holdout_requests",
    "trigger_events",
    "rep_notifications",
    "trigger_suppressions",
    "webhook_deliveries",
)
V4_COLUMNS = (
    ("touches", "overrides_event_id"),
    ("decisions", "slate"),
    ("decisions", "rules_version"),
    ("decisions", "rules_market"),
)


def test_version_3_file_gains_the_version_4_tables_and_columns(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    EventStore(db).close()
    con = sqlite3.connect(db)  # take a current file back to what version 3 wrote
    for t in (*V4_TABLES, "rules_versions"):
        con.execute(f"DROP TABLE {t}")
    con.execute("DROP INDEX IF EXISTS touches_overrides")
    for t, c in V4_COLUMNS:
        con.execute(f"ALTER TABLE {t} DROP COLUMN {c}")
    con.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    con.commit()
    con.close()
    store = EventStore(db)
    for t, c in V4_COLUMNS:
        assert c in columns(db, t), (t, c)
    con = sqlite3.connect(db)
    try:
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    finally:
        con.close()
    assert set(V4_TABLES) | {"rules_versions"} <= have
    assert version == (str(SCHEMA_VERSION),)
    store.close()
