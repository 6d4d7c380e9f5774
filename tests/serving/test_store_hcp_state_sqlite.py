"""SQLite reads an HCP's state part by part in one read transaction: the same rows
as the one ``UNION ALL`` statement (the PostgreSQL path), the same snapshot."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_store_hcp_state import NOW, _populate

from nba.catalog import Catalog
from serving.store import EventStore, _history_parts, _Part, _profile_part, _to_us, _touches_part
from serving.store_sqlite import SQLiteStore


def _parts(store: EventStore, hcp_id: str) -> dict[str, _Part]:
    parts = {
        "profile": _profile_part(hcp_id),
        "touches": _touches_part(hcp_id, _to_us(NOW - timedelta(days=60))),
    }
    parts.update(_history_parts(store.dialect, hcp_id, NOW.date()))
    return parts


@pytest.mark.parametrize("seed", [3, 11])
def test_part_by_part_rows_equal_the_one_statement(tmp_path: Path, seed: int) -> None:
    store = EventStore(tmp_path / "s.db")
    assert isinstance(store, SQLiteStore)
    _populate(store, Catalog.default(), seed)
    for h in ("h1", "h2", "h3", "nobody"):
        parts = _parts(store, h)
        mine = store._fetch_parts(parts)
        union = EventStore._fetch_parts(store, parts)  # the single-statement path
        assert mine == union
        assert mine == {name: store._rows(p) for name, p in parts.items()}
        if h != "nobody":
            assert mine["profile"] and mine["touches"] and mine["h_touches"]
    assert not store._conn().in_transaction  # the read transaction was closed


def test_inside_a_write_transaction_it_reads_that_transaction(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    _populate(store, Catalog.default(), 3)
    before = store.hcp_state("h1", NOW, NOW - timedelta(days=30), Catalog.default())
    with store._write() as c:
        c.execute("UPDATE hcps SET decile=9 WHERE hcp_id='h1'")
        inside = store.hcp_state("h1", NOW, NOW - timedelta(days=30), Catalog.default())
        assert c.in_transaction  # not committed by the read
        c.execute("UPDATE hcps SET decile=5 WHERE hcp_id='h1'")
    assert inside.profile is not None and inside.profile.decile == 9
    after = store.hcp_state("h1", NOW, NOW - timedelta(days=30), Catalog.default())
    assert after == before


def test_a_failing_part_leaves_no_transaction_open(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s.db")
    _populate(store, Catalog.default(), 3)
    parts = _parts(store, "h1")
    parts["bad"] = _Part((("no_such_column", "t"),), "FROM hcps", "hcp_id")
    with pytest.raises(Exception, match="no_such_column"):
        store._fetch_parts(parts)
    assert not store._conn().in_transaction
    state = store.hcp_state("h1", NOW, NOW - timedelta(days=30), Catalog.default())
    assert state.profile is not None
