"""Schema version 5: every outcome carries its decision's HCP (``outcomes.hcp_id``)
and every override touch the overridden decision's (``touches.overrides_hcp_id``),
so that a state read finds an HCP's outcomes and overridden decisions of a time
window by one index range, not by a walk of all its decisions. The state read's
statements give the rows the statements joined on the decisions gave; every way
an outcome or override is stored fills the columns; a version-4 store is migrated
in place (columns, indexes, backfill). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_testkit import auth
from test_store_hcp_state import NOW, _populate

from nba.catalog import Catalog
from nba.domain import Outcome, Touch
from serving.store import SCHEMA_VERSION, EventStore, OutcomeWrite, StoreError
from serving.store_reps import add_override_touch

#: the outcome parts of an HCP's state (the evidence's responses, the history's
#: engagements of 30 and 90 days)
OUTCOME_PARTS = ("outcomes", "h_engaged", "h_engaged_at")
#: windows of the state read (days before NOW): within, across and beyond the history
SINCE_DAYS = (1, 30, 90, 200)


@pytest.fixture
def settings(settings_on_both: Any) -> Any:
    """The route tests of this module run on both backends."""
    return settings_on_both


#: the overridden count as it was before schema version 5 (the HCP's decisions)
OVERRIDDEN_BEFORE = (
    "SELECT COUNT(DISTINCT t.overrides_event_id) FROM touches t JOIN decisions d"
    " ON d.event_id=t.overrides_event_id WHERE t.overrides_event_id IS NOT NULL"
    " AND d.hcp_id=? AND t.ts_us>=? AND t.ts_us<?"
)


def _populated(store: EventStore, seed: int) -> None:
    """:func:`_populate`'s store, and touches of h3 overriding decisions of h1 (a
    rep's touch may override another HCP's decision) through the store's call."""
    _populate(store, Catalog.default(), seed)
    stored = 0
    for i in range(1, 25):
        d = store.get_decision(f"h1-E{i}")
        assert d is not None
        at = min(d.ts + timedelta(days=3), NOW - timedelta(hours=1))
        try:  # refused when the chosen action already has a response
            add_override_touch(store, Touch("h3", at, "rep_visit", "VEL-EFF-01"), d.event_id)
        except StoreError:
            continue
        stored += 1
    assert stored >= 2


def _joined_on_decisions(sql: str) -> str:
    """A part's statement as it was before schema version 5: the HCP's outcomes
    found through its decisions (``d.hcp_id``), not through ``o.hcp_id``."""
    assert sql.count("o.hcp_id=?") == 1, sql
    return sql.replace("o.hcp_id=?", "d.hcp_id=?")


def _override_hcps(store: EventStore) -> list[tuple[str, Any, Any]]:
    """``(event_id, touch's overrides_hcp_id, decision's hcp_id)`` of every override."""
    rows = (
        store._conn()
        .execute(
            "SELECT t.overrides_event_id, t.overrides_hcp_id, d.hcp_id FROM touches t"
            " LEFT JOIN decisions d ON d.event_id=t.overrides_event_id"
            " WHERE t.overrides_event_id IS NOT NULL ORDER BY t.id"
        )
        .fetchall()
    )
    return [tuple(r) for r in rows]


def _outcome_hcps(store: EventStore) -> list[tuple[str, Any, Any]]:
    """``(event_id, outcome's hcp_id, decision's hcp_id)`` of every stored outcome."""
    rows = (
        store._conn()
        .execute(
            "SELECT o.event_id, o.hcp_id, d.hcp_id FROM outcomes o"
            " LEFT JOIN decisions d ON d.event_id=o.event_id ORDER BY o.id"
        )
        .fetchall()
    )
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("seed", [3, 11])
def test_outcome_parts_equal_the_statements_joined_on_decisions(
    store_at: Callable[..., str | Path], seed: int
) -> None:
    catalog = Catalog.default()
    store = EventStore(store_at(f"s{seed}.db"))
    _populated(store, seed)
    con = store._conn()
    compared = 0
    overridden: dict[str, int] = {}
    for h in ("h1", "h2", "h3", "nobody"):
        for days in SINCE_DAYS:
            since = NOW - timedelta(days=days)
            parts = store._state_parts(h, NOW, since, evidence=True)
            before = {
                n: [
                    tuple(r)
                    for r in con.execute(_joined_on_decisions(parts[n].sql()), parts[n].args)
                ]
                for n in OUTCOME_PARTS
            }
            # each part on its own, and as the state read fetches them
            assert {n: [tuple(r) for r in store._rows(parts[n])] for n in OUTCOME_PARTS} == before
            fetched = store._fetch_state_parts(parts)
            assert {n: [tuple(r) for r in fetched[n]] for n in OUTCOME_PARTS} == before
            state_rows = getattr(store, "_state_rows", None)  # SQLite's direct read
            if state_rows is not None:
                direct = state_rows(h, NOW, since, True)
                assert {n: [tuple(r) for r in direct[n]] for n in OUTCOME_PARTS} == before
            over = parts["h_overridden"]
            before["h_overridden"] = [tuple(r) for r in con.execute(OVERRIDDEN_BEFORE, over.args)]
            assert [tuple(r) for r in store._rows(over)] == before["h_overridden"]
            assert [tuple(r) for r in fetched["h_overridden"]] == before["h_overridden"]
            if state_rows is not None:
                assert [tuple(r) for r in direct["h_overridden"]] == before["h_overridden"]
            overridden[h] = before["h_overridden"][0][0]
            compared += sum(len(v) for v in before.values())
            if h != "nobody" and days >= 30:
                assert before["outcomes"] and before["h_engaged_at"]
    assert compared > 100
    # h1's own override and those of h3's touches; h3's touches count for h1 only
    assert overridden["h1"] >= 2 and overridden["h2"] == overridden["h3"] == 1
    # the batch read of several HCPs (SQLite's set-based statements) agrees too
    since = NOW - timedelta(days=30)
    many = store.hcp_states(["h1", "h2", "h3"], NOW, since, catalog)
    for h, state in many.items():
        assert state == store.hcp_state(h, NOW, since, catalog)


def test_every_stored_outcome_carries_its_decisions_hcp(
    store_at: Callable[..., str | Path],
) -> None:
    store = EventStore(store_at())
    _populated(store, 5)  # through add_outcome
    d = store.get_decision("h2-E3")
    assert d is not None
    results = store.add_outcomes(
        [
            OutcomeWrite(
                Outcome(d.event_id, d.ts + timedelta(hours=1), "accepted", 1.0, "rep", "b1")
            ),
            OutcomeWrite(Outcome("h3-E4", NOW, "accepted", 1.0, "rep", "b2")),
            OutcomeWrite(Outcome("no-such-event", NOW, "accepted", 1.0, "rep", "b3")),
        ]
    )
    assert results[:2] == [True, True] and isinstance(results[2], LookupError)
    rows = _outcome_hcps(store)
    assert len(rows) > 100
    assert all(o_hcp == d_hcp and o_hcp is not None for _, o_hcp, d_hcp in rows)
    assert {r[1] for r in rows} == {"h1", "h2", "h3"}
    overrides = _override_hcps(store)
    assert ("h1-E0", "h1", "h1") in overrides and len(overrides) >= 5
    assert all(t_hcp == d_hcp and t_hcp is not None for _, t_hcp, d_hcp in overrides)


def test_outcomes_of_both_routes_carry_the_decisions_hcp(
    client: TestClient, put_hcp: Callable[..., str]
) -> None:
    events = {}
    for h in ("H1", "H2"):
        put_hcp(h)
        r = client.post(
            "/v1/decisions", json={"hcp_id": h, "channels": ["email"]}, headers=auth("decide")
        )
        assert r.status_code == 201, r.text
        events[h] = r.json()["event_id"]
    r = client.post(
        f"/v1/events/{events['H1']}/outcomes",
        json={"type": "delivered", "source_id": "m1"},
        headers=auth("report"),
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/outcomes:batch",
        json={
            "outcomes": [
                {"event_id": events["H1"], "type": "opened", "source_id": "m1"},
                {"event_id": events["H2"], "type": "delivered", "source_id": "m2"},
            ]
        },
        headers=auth("report"),
    )
    assert r.status_code == 200 and r.json()["n_stored"] == 2, r.text
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert sorted(_outcome_hcps(store)) == sorted(
        [(events["H1"], "H1", "H1"), (events["H1"], "H1", "H1"), (events["H2"], "H2", "H2")]
    )


def _as_version_4(location: str | Path) -> None:
    """Turn a current store into what schema version 4 left: no ``outcomes.hcp_id``,
    no ``touches.overrides_hcp_id``, no index on either, ``meta.schema_version`` 4."""
    statements = (
        "DROP INDEX outcomes_hcp_ts",
        "DROP INDEX touches_overrides_hcp",
        "ALTER TABLE outcomes DROP COLUMN hcp_id",
        "ALTER TABLE touches DROP COLUMN overrides_hcp_id",
        "UPDATE meta SET value='4' WHERE key='schema_version'",
    )
    if isinstance(location, Path):
        con = sqlite3.connect(location)
        con.executescript(";".join(statements))
        con.close()
        return
    import psycopg

    with psycopg.connect(location, autocommit=True) as pg:
        for sql in statements:
            pg.execute(sql)


def _has_index(store: EventStore, name: str) -> bool:
    if isinstance(store.location, Path):
        sql = "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?"
    else:
        sql = "SELECT 1 FROM pg_indexes WHERE schemaname=current_schema() AND indexname=?"
    return store._conn().execute(sql, (name,)).fetchone() is not None


def test_version_4_store_is_migrated_in_place(store_at: Callable[..., str | Path]) -> None:
    catalog = Catalog.default()
    location = store_at()
    store = EventStore(location)
    _populated(store, 7)
    since = NOW - timedelta(days=30)
    states = {h: store.hcp_state(h, NOW, since, catalog) for h in ("h1", "h2", "h3")}
    n_outcomes = store.counts()["outcomes"]
    n_overrides = len(_override_hcps(store))
    store.close()
    _as_version_4(location)
    again = EventStore(location)
    assert again.counts()["outcomes"] == n_outcomes
    row = again._conn().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert int(row[0]) == SCHEMA_VERSION == 5
    assert _has_index(again, "outcomes_hcp_ts") and _has_index(again, "touches_overrides_hcp")
    rows = _outcome_hcps(again)
    assert len(rows) == n_outcomes and all(o == d and o is not None for _, o, d in rows)
    rows = _override_hcps(again)
    assert len(rows) == n_overrides and all(t == d and t is not None for _, t, d in rows)
    # the states read after the migration equal those read before it
    for h, state in states.items():
        assert again.hcp_state(h, NOW, since, catalog) == state
    # the migrated store takes new outcomes with their HCP, and reopens unchanged
    assert again.add_outcome(Outcome("h1-E2", NOW, "accepted", 1.0, "rep", "late-1"))
    again.close()
    third = EventStore(location)
    assert _outcome_hcps(third)[-1] == ("h1-E2", "h1", "h1")
    assert third.counts()["outcomes"] == n_outcomes + 1


def test_outcomes_an_older_process_stored_are_filled_on_open(
    store_at: Callable[..., str | Path],
) -> None:
    # a process of the previous version still running after the migration stores
    # outcomes without hcp_id and override touches without overrides_hcp_id; the
    # next open fills them (an outcome whose decision is gone stays null: no read
    # joins it)
    catalog = Catalog.default()
    location = store_at()
    store = EventStore(location)
    _populated(store, 9)
    since = NOW - timedelta(days=30)
    state = store.hcp_state("h1", NOW, since, catalog)
    with store._write() as c:
        c.execute("UPDATE outcomes SET hcp_id=NULL WHERE event_id LIKE 'h1-%'")
        c.execute("UPDATE touches SET overrides_hcp_id=NULL")
        c.execute(
            "INSERT INTO outcomes (event_id, ts_us, type, value, source, source_id, kind, late,"
            " received_us) VALUES ('gone', 1, 'opened', 1.0, 'hcp', 'x', 'response', 0, 1)"
        )
    assert store.hcp_state("h1", NOW, since, catalog) != state  # unfilled: not found
    store.close()
    again = EventStore(location)
    assert again.hcp_state("h1", NOW, since, catalog) == state
    rows = _outcome_hcps(again)
    assert ("gone", None, None) in rows
    assert all(o == d for _, o, d in rows)
    assert all(t == d and t is not None for _, t, d in _override_hcps(again))
