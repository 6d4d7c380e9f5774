"""An event store file made by the previous schema (version 1, outcomes without
``action_id``) still opens: it is migrated in place, and feedback the old service
recorded about another suggestion keeps concerning that suggestion."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nba.domain import Outcome
from nba.logs import io as logio
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from serving.store import SCHEMA_VERSION, EventStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
US = 1_000_000
ACTIONS = ["VEL-EFF-02@email", "VEL-EFF-04@email", "VEL-MOA-01@portal"]

#: the DDL of schema version 1, as the previous release created it (shared fixture)
V1_DDL = (Path(__file__).parent / "data" / "store_schema_v1.sql").read_text()


def _us(ts: datetime) -> int:
    return int(ts.timestamp() * US)


def _old_database(path: Path) -> None:
    """A version-1 file with one decision (chosen: ACTIONS[0]), an HCP response, and the
    rep's feedback on the chosen and on another suggestion, written as the old service
    wrote them (feedback on another suggestion: source_id suffixed with its action)."""
    con = sqlite3.connect(path)
    con.executescript(V1_DDL)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            "E1",
            _us(T0),
            "h1",
            "rep_app",
            json.dumps(["email", "portal"]),
            "{}",
            "cat",
            json.dumps(ACTIONS),
            json.dumps([0.5, 0.3, 0.2]),
            0,
            ACTIONS[0],
            0.5,
            "vw",
            "nba/1",
            "[]",
            1,
            0,
            None,
        ),
    )
    rows = [
        (1, "opened", "msg-1", "response", None),
        (2, "accepted", "rep-7", "feedback", ACTIONS[0]),
        (3, "accepted", f"rep-7|{ACTIONS[1]}", "feedback", ACTIONS[1]),
    ]
    for oid, typ, sid, kind, fb_action in rows:
        ts = _us(T0 + timedelta(hours=oid))
        con.execute(
            "INSERT INTO outcomes (id, event_id, ts_us, type, value, source, source_id, kind,"
            " late, received_us) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (oid, "E1", ts, typ, 1.0, "rep" if fb_action else "hcp", sid, kind, 0, ts),
        )
        if fb_action is not None:
            con.execute(
                "INSERT INTO feedback VALUES (?,?,?,?,?,?,?,?,?)",
                (oid, "E1", "h1", ts, typ, fb_action, fb_action.split("@")[0], None, None),
            )
    con.commit()
    con.close()


def test_version_1_file_is_migrated_and_keeps_every_outcome(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _old_database(path)
    store = EventStore(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    # version 5: each outcome carries its decision's HCP, copied in by the migration
    assert con.execute("SELECT DISTINCT hcp_id FROM outcomes").fetchall() == [("h1",)]
    by_sid = {o.outcome.source_id: o.outcome for o in store.outcomes_of("E1")}
    assert {sid: o.action_id for sid, o in by_sid.items()} == {
        "msg-1": None,
        "rep-7": None,  # feedback on the chosen action stays null: the chosen action
        f"rep-7|{ACTIONS[1]}": ACTIONS[1],
    }
    # the migrated file takes new outcomes, with their action, and reopens unchanged
    assert store.add_outcome(
        Outcome("E1", T0 + timedelta(hours=5), "visited", 1.0, "portal", "p-1", ACTIONS[2])
    )
    store.close()
    again = EventStore(path)
    assert again.counts()["outcomes"] == 4
    # export and join: only the outcomes about the chosen action are credited
    out = tmp_path / "log"
    again.export(out)
    exported = logio.read(out, "outcomes")
    assert sorted(exported.column("action_id").to_pylist(), key=str) == [
        None,
        None,
        ACTIONS[1],
        ACTIONS[2],
    ]
    rd = RewardDefinition(
        name="t", version="1", weights={"opened": 0.2, "accepted": 1.0, "visited": 0.5}
    )
    res = load_joined(out, rd)
    assert res.table.column("reward").to_pylist() == [1.2]
    assert res.counts.other_action_outcomes == 2 and res.counts.outcomes_used == 2
