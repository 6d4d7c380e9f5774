"""SQLite answers the four touch parts of an HCP's state (the touches since
``since``, the history's contacts and pulls, the latest contact before the day)
with one statement split in Python, and the parts on outcomes (the history's
engagements, the evidence's responses) with another: each part's rows must equal
its own statement's, whatever the bounds and whatever the HCP has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_store_hcp_state import NOW, _populate

from nba.catalog import Catalog
from nba.domain import Decision, HCPProfile, Outcome, Touch
from serving.store import EventStore
from serving.store_sqlite import SQLiteStore

TOUCH_PARTS = ("touches", "h_touches", "h_pulls", "h_latest")


def _each_on_its_own(
    store: EventStore, hcp_id: str, now: datetime, since: datetime
) -> dict[str, list[Any]]:
    """Compare, with and without the evidence parts; the rows (with evidence)."""
    for evidence in (False, True):
        parts = store._state_parts(hcp_id, now, since, evidence=evidence)
        got = store._fetch_state_parts(parts)
        want = {name: store._rows(p) for name, p in parts.items()}
        assert set(got) == set(want)
        for name in want:
            assert list(got[name]) == want[name], name
        assert not store._conn().in_transaction
        if isinstance(store, SQLiteStore):  # the read without the parts: the same rows
            direct = store._state_rows(hcp_id, now, since, evidence)
            assert set(direct) == set(want)
            for name in want:
                assert list(direct[name]) == want[name], name
            assert not store._conn().in_transaction
            # and the state from them equals the one built from the parts' rows
            cat = Catalog.default()
            assert store.hcp_state(hcp_id, now, since, cat, evidence) == store._state_from(
                want, now.date(), cat, evidence
            )
    return want


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_split_rows_equal_each_part_on_populated_hcps(tmp_path: Path, seed: int) -> None:
    store = EventStore(tmp_path / "s.db")
    assert isinstance(store, SQLiteStore)
    _populate(store, Catalog.default(), seed)
    rng = np.random.default_rng(seed)
    filled: dict[str, int] = {}
    for h in ("h1", "h2", "h3", "nobody"):
        for _ in range(6):
            # ``since`` before, at and after the history window's start, and now at
            # any hour of the day (the history's bounds are whole days)
            now = NOW + timedelta(hours=float(rng.uniform(-30, 30)))
            since = now - timedelta(days=float(rng.choice([1.0, 30.0, 89.5, 90.0, 95.0, 140.0])))
            for name, rows in _each_on_its_own(store, h, now, since).items():
                filled[name] = filled.get(name, 0) + len(rows)
    for name in (*TOUCH_PARTS, "h_engaged", "h_engaged_at", "outcomes", "profile", "extras"):
        assert filled[name] > 0, name  # every merged part was compared on rows


def _hcp(store: EventStore, hcp_id: str) -> None:
    store.upsert_hcp(HCPProfile(hcp_id, "cardiology", 5, "US", "aware", frozenset({"email"})))


def test_edges_of_the_ranges(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    day0 = datetime.combine(NOW.date(), datetime.min.time(), UTC)
    # only a contact long ago (the latest contact comes from its own statement), and
    # pulls inside the window
    _hcp(store, "old")
    store.add_touches(
        [
            Touch("old", NOW - timedelta(days=400), "email", "c-old"),
            Touch("old", NOW - timedelta(days=3), "portal", "p", "external", "portal_view", ("a",)),
        ]
    )
    # touches exactly on the bounds: the window's first microsecond, the day's start,
    # ``since`` itself, after ``now``; two at the same time (the id breaks the tie)
    _hcp(store, "edge")
    lo = day0 - timedelta(days=90)
    since = NOW - timedelta(days=45)
    store.add_touches(
        [
            Touch("edge", lo, "email", "c-lo"),
            Touch("edge", lo - timedelta(microseconds=1), "email", "c-before-lo"),
            Touch("edge", day0, "email", "c-day"),
            Touch("edge", day0, "portal", "p-day", "external", "portal_view", ("c",)),
            Touch("edge", lo, "portal", "p-lo", "external", "portal_view", ("c",)),
            Touch("edge", day0 - timedelta(microseconds=1), "email", "c-last"),
            Touch("edge", day0 - timedelta(microseconds=1), "webinar", "c-last-tie"),
            Touch("edge", since, "portal", "p1", "external", "portal_view", ("b", "a")),
            Touch(
                "edge",
                since - timedelta(microseconds=1),
                "portal",
                "p0",
                "external",
                "email_click",
                ("a",),
            ),
            Touch("edge", NOW + timedelta(hours=2), "email", "c-future"),
        ]
    )
    # outcomes on the bounds of the engagement windows and of the responses, two
    # outcomes of one (decision, action, type) (the earliest counts), actions
    # named by the outcome or by the decision's choice
    d30 = day0 - timedelta(days=30)
    stamps = [lo, lo - timedelta(microseconds=1), d30, d30 - timedelta(microseconds=1), day0,
              day0 - timedelta(microseconds=1), since, NOW, NOW + timedelta(hours=1)]  # fmt: skip
    ids = ("c1@email", "c2@email", "c3@webinar")
    for i, ts in enumerate(stamps):
        d = Decision(f"E{i}", ts - timedelta(hours=1), "edge", "r", ("email",), "{}", "c", ids,
                     (0.2, 0.5, 0.3), 1, ids[1], 0.5, "vw", "m")  # fmt: skip
        store.add_decision(d)
        for typ, target in (("opened", "c1@email"), ("delivered", None), ("attended", ids[2])):
            store.add_outcome(Outcome(d.event_id, ts, typ, 1.0, "crm", "s1", target))
            store.add_outcome(
                Outcome(d.event_id, ts + timedelta(minutes=5), typ, 1.0, "crm", "s2", target)
            )
    # no touch at all, and no HCP
    _hcp(store, "none")
    for h in ("old", "edge", "none", "nobody"):
        for since_ in (since, lo, lo - timedelta(days=1), NOW - timedelta(days=1), NOW):
            _each_on_its_own(store, h, NOW, since_)
        _each_on_its_own(store, h, day0, since)  # now at the day's first microsecond
    state = store.hcp_state("old", NOW, NOW - timedelta(days=90), Catalog.default())
    assert state.history.last_content_id == "c-old"
    assert [t.content_id for t in state.touches] == ["p"]


def test_inside_a_write_transaction(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    _hcp(store, "w")
    with store._write() as c:
        store.insert_touch(c, Touch("w", NOW - timedelta(days=2), "email", "c1"))
        state = store.hcp_state("w", NOW, NOW - timedelta(days=30), Catalog.default())
        assert c.in_transaction
    assert [t.content_id for t in state.touches] == ["c1"]
    assert state.history.last_content_id == "c1"


def test_history_parts_as_built_from_scratch() -> None:
    # the statement text is built once per dialect; the parts must be those built anew
    from datetime import date

    from serving.store import _history_parts, _history_parts_built
    from serving.store_sql import POSTGRES, SQLITE

    for dialect in (SQLITE, POSTGRES, SQLITE):
        for i in range(0, 3000, 41):
            day = date(2019, 12, 30) + timedelta(days=i)
            assert _history_parts(dialect, f"h{i}", day) == _history_parts_built(
                dialect, f"h{i}", day
            )


def test_statements_run_per_state(tmp_path: Path) -> None:
    # 13 parts with the evidence: 7 SELECT statements when the HCP has a contact in
    # its window, 8 when the latest contact must be looked up on its own
    store = EventStore(tmp_path / "s.db")
    _hcp(store, "a")
    _hcp(store, "b")
    store.add_touches(
        [
            Touch("a", NOW - timedelta(days=3), "email", "c1"),
            Touch("b", NOW - timedelta(days=300), "email", "c0"),
        ]
    )
    con = store._conn()
    seen: list[str] = []
    con.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    try:
        for h, want in (("a", 7), ("b", 8)):
            seen.clear()
            parts = store._state_parts(h, NOW, NOW - timedelta(days=90), evidence=True)
            assert len(parts) == 13
            state = store.hcp_state(h, NOW, NOW - timedelta(days=90), Catalog.default())
            selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
            assert len(selects) == want, selects
            assert state.history.last_content_id == ("c1" if h == "a" else "c0")
    finally:
        con.set_trace_callback(None)  # type: ignore[attr-defined]


def test_outcomes_searched_as_one_range_of_the_window(tmp_path: Path) -> None:
    # the outcome statements read the HCP's outcomes of the window as one range of
    # the (hcp_id, ts_us) index, each joined to its decision by the decision's key:
    # not all the HCP's decisions ever made (schema version 5); the merged one tests
    # the type on each row instead of searching the (event_id, type, source_id)
    # index once per type
    store = EventStore(tmp_path / "s.db")
    assert isinstance(store, SQLiteStore)
    parts = store._state_parts("a", NOW, NOW - timedelta(days=90), evidence=True)
    sql, types_, _spans, lo, hi = SQLiteStore._outcome_plan("a", parts)
    con = store._conn()
    statements = [(sql, ("a", *types_, lo, hi))] + [
        (parts[n].sql(), parts[n].args) for n in ("outcomes", "h_engaged", "h_engaged_at")
    ]
    for text, args in statements:
        plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN " + text, args)]
        searches = [p for p in plan if p.startswith(("SEARCH", "SCAN"))]
        assert searches == [
            "SEARCH o USING INDEX outcomes_hcp_ts (hcp_id=? AND ts_us>? AND ts_us<?)",
            "SEARCH d USING INDEX sqlite_autoindex_decisions_1 (event_id=?)",
        ], plan


def test_overridden_searched_as_one_range_of_the_window(tmp_path: Path) -> None:
    # the count of overridden decisions reads the touches of the window that override
    # the HCP's decisions as one range of (overrides_hcp_id, ts_us), each joined to
    # its decision by the key: not all the HCP's decisions ever made (schema version 5)
    store = EventStore(tmp_path / "s.db")
    assert isinstance(store, SQLiteStore)
    part = store._state_parts("a", NOW, NOW - timedelta(days=90), evidence=True)["h_overridden"]
    con = store._conn()
    for text in (SQLiteStore._OVERRIDDEN, part.sql()):
        plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN " + text, part.args)]
        searches = sorted(p for p in plan if p.startswith(("SEARCH", "SCAN")))
        assert searches == [
            "SEARCH d USING COVERING INDEX sqlite_autoindex_decisions_1 (event_id=?)",
            "SEARCH t USING INDEX touches_overrides_hcp"
            " (overrides_hcp_id=? AND ts_us>? AND ts_us<?)",
        ], plan


def test_overridden_decisions_counted_once_each(tmp_path: Path) -> None:
    # the count of overridden decisions (its own statement on SQLite, without the
    # part's COUNT(DISTINCT)) equals the part's statement, in the single and the
    # batch read: two touches override one decision, one touch is outside the 90
    # days, one is on the window's first microsecond and one on the day's start
    # (excluded), one overrides another HCP's decision
    from serving.store import _to_us

    store = EventStore(tmp_path / "s.db")
    cat = Catalog.default()
    day0 = datetime.combine(NOW.date(), datetime.min.time(), UTC)
    for h in ("a", "b", "c"):
        _hcp(store, h)
    for i, h in enumerate(("a", "a", "a", "a", "b")):
        store.add_decision(
            Decision(
                f"E{i}", NOW - timedelta(days=5 + i), h, "rep_app", ("email",), "{}", "c1",
                ("VEL-EFF-01@email",), (1.0,), 0, "VEL-EFF-01@email", 1.0, "vw", "m1",
            )
        )  # fmt: skip
    overrides = [
        ("E0", NOW - timedelta(days=1)),
        ("E0", NOW - timedelta(days=2)),
        ("E1", NOW - timedelta(days=120)),
        ("E2", day0 - timedelta(days=90)),
        ("E3", day0),
        ("E4", NOW - timedelta(days=1)),
    ]
    with store._write() as c:
        for event_id, ts in overrides:
            # as add_override_touch writes it: with the overridden decision's HCP
            c.execute(
                "INSERT INTO touches (hcp_id, ts_us, channel, content_id, origin, kind,"
                " overrides_event_id, overrides_hcp_id) VALUES (?,?,?,?,?,?,?,?)",
                ("c", _to_us(ts), "rep_visit", "VEL-EFF-01", "external", "contact", event_id,
                 "b" if event_id == "E4" else "a"),
            )  # fmt: skip
    since = NOW - timedelta(days=30)
    many = store.hcp_states(["a", "b", "c"], NOW, since, cat)
    counts = {}
    for h in ("a", "b", "c"):
        rows = _each_on_its_own(store, h, NOW, since)  # each part against its statement
        counts[h] = rows["h_overridden"][0][0]
        state = store.hcp_state(h, NOW, since, cat)
        assert state.history.overrides_90d == counts[h]
        assert many[h] == state
    assert counts == {"a": 2, "b": 1, "c": 0}
