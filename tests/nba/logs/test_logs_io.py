"""Schema round trips through nba.logs.io: append, read, date filters, crash safety."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nba.logs import io
from nba.logs.io import LogError
from nba.logs.schema import (
    DECISIONS,
    GROUND_TRUTH,
    OUTCOMES,
    STATED_PREFERENCES,
    TABLES,
    TOUCHES,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _touches(n: int, start: datetime = T0, step: timedelta = timedelta(hours=7)) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "hcp_id": f"h{i}",
                "ts": start + i * step,
                "channel": "email",
                "content_id": f"c{i}",
                "origin": "ours" if i % 2 else "external",
                "kind": "contact" if i % 3 else "portal_view",
                "topics": [] if i % 3 else ["dosing", "safety"],
                "content_ids": [] if i % 3 else [f"slide-{i}"],
                "dwell_s": None if i % 3 else 12.5,
            }
            for i in range(n)
        ],
        schema=TOUCHES,
    )


def _ground_truth(n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"e{i:05d}",
                "ts": T0 + i * timedelta(hours=9),
                "reward_definition": "engagement@1#x",
                "expected_rewards": [0.1 * i, 0.2],
            }
            for i in range(n)
        ],
        schema=GROUND_TRUTH,
    )


def _stated(n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "hcp_id": f"h{i % 4}",
                "ts": T0 + i * timedelta(hours=11),
                "recorded_by": f"rep-{i}",
                "topics": ["dosing"] if i % 2 else [],
                "channels": [] if i % 3 == 1 else ["email", "portal"],
            }
            for i in range(n)
        ],
        schema=STATED_PREFERENCES,
    )


def _sorted(t: pa.Table, key: str) -> pa.Table:
    return t.sort_by([(key, "ascending"), ("ts", "ascending")])


def test_round_trip_every_table(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> None:
    dec = make_decisions(25, step=timedelta(hours=5))
    outs = make_outcomes(
        [
            (e, t + timedelta(hours=3), "opened")
            for e, t in zip(
                dec.column("event_id").to_pylist(), dec.column("ts").to_pylist(), strict=True
            )
        ]
    )
    tables = {
        "decisions": dec,
        "outcomes": outs,
        "touches": _touches(20),
        "ground_truth": _ground_truth(12),
        "stated_preferences": _stated(9),
    }
    assert set(tables) == set(TABLES)
    for name, table in tables.items():
        written = io.append(tmp_path, name, table)
        days = {p.parent.name for p in written}
        assert len(written) == len(days) > 1  # one part per UTC day
        back = io.read(tmp_path, name)
        assert back.schema == TABLES[name]
        key = "hcp_id" if name in ("touches", "stated_preferences") else "event_id"
        assert _sorted(back, key).equals(_sorted(table, key)), name
        # every row sits in the partition of its own UTC day
        for p in written:
            part = io.read(
                tmp_path,
                name,
                since=date.fromisoformat(p.parent.name[5:]),
                until=date.fromisoformat(p.parent.name[5:]),
            )
            assert {t.date().isoformat() for t in part.column("ts").to_pylist()} == {
                p.parent.name[5:]
            }


def test_date_filters(tmp_path: Path) -> None:
    t = _touches(30, step=timedelta(hours=5))  # 2026-01-05 09:00 .. 2026-01-11 10:00
    io.append(tmp_path, "touches", t)
    ts = t.column("ts").to_pylist()

    def days(table: pa.Table) -> set[date]:
        return {x.date() for x in table.column("ts").to_pylist()}

    d6, d8 = date(2026, 1, 6), date(2026, 1, 8)
    # whole dates: both ends inclusive
    got = io.read(tmp_path, "touches", since=d6, until=d8)
    assert days(got) == {d6, date(2026, 1, 7), d8}
    assert got.num_rows == sum(d6 <= x.date() <= d8 for x in ts)
    # datetimes: since inclusive, until exclusive, to the microsecond
    lo, hi = ts[3], ts[10]
    got = io.read(tmp_path, "touches", since=lo, until=hi)
    assert got.column("ts").to_pylist() == ts[3:10]
    assert io.read(tmp_path, "touches", since=date(2027, 1, 1)).num_rows == 0
    assert io.read(tmp_path, "touches", until=date(2026, 1, 4)).num_rows == 0
    # columns
    got = io.read(tmp_path, "touches", columns=["hcp_id"], until=d6)
    assert got.column_names == ["hcp_id"]
    with pytest.raises(LogError, match="must be timezone-aware"):
        io.read(tmp_path, "touches", since=datetime(2026, 1, 6))


def test_append_twice_gives_two_parts(tmp_path: Path) -> None:
    one = _touches(3, step=timedelta(minutes=1))
    assert [p.name for p in io.append(tmp_path, "touches", one)] == ["part-00000.parquet"]
    assert [p.name for p in io.append(tmp_path, "touches", one)] == ["part-00001.parquet"]
    assert io.read(tmp_path, "touches").num_rows == 6
    assert len(io.part_files(tmp_path, "touches")) == 2


def test_same_appends_give_identical_bytes(tmp_path: Path, make_decisions: Any) -> None:
    dec = make_decisions(12, step=timedelta(hours=9), seed=5)
    for d in ("a", "b"):
        io.append(tmp_path / d, "decisions", dec)
        io.append(tmp_path / d, "decisions", dec.slice(0, 3))
    fa = io.part_files(tmp_path / "a", "decisions")
    fb = io.part_files(tmp_path / "b", "decisions")
    assert [p.relative_to(tmp_path / "a") for p in fa] == [
        p.relative_to(tmp_path / "b") for p in fb
    ]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb, strict=True))


def test_rows_in_day_order_write_the_parts_of_rows_out_of_order(
    tmp_path: Path, make_decisions: Any
) -> None:
    """Rows already in day order are written as slices of the table, others are
    taken day by day: both give the same part files, byte for byte."""
    dec = make_decisions(40, step=timedelta(hours=5), seed=7)  # about 8 days, in order
    days = pc.cast(dec.column("ts"), pa.date32()).to_numpy(zero_copy_only=False)
    assert (days[1:] >= days[:-1]).all() and len(set(days.tolist())) > 3
    # the days last to first, each day's rows still in their order
    day_no = days.astype("datetime64[D]").astype(np.int64)
    order = sorted(range(dec.num_rows), key=lambda i: (-int(day_no[i]), i))
    mixed = dec.take(pa.array(order))
    mixed_days = pc.cast(mixed.column("ts"), pa.date32()).to_numpy(zero_copy_only=False)
    assert (mixed_days[1:] < mixed_days[:-1]).any()
    io.append(tmp_path / "sliced", "decisions", dec)
    io.append(tmp_path / "taken", "decisions", mixed)
    fs = io.part_files(tmp_path / "sliced", "decisions")
    ft = io.part_files(tmp_path / "taken", "decisions")
    assert len(fs) == len(set(days.tolist()))
    assert [p.relative_to(tmp_path / "sliced") for p in fs] == [
        p.relative_to(tmp_path / "taken") for p in ft
    ]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fs, ft, strict=True))
    assert io.read(tmp_path / "sliced", "decisions").equals(
        io.read(tmp_path / "taken", "decisions")
    )


def test_crash_mid_write_leaves_nothing_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io.append(tmp_path, "touches", _touches(2, step=timedelta(minutes=1)))

    def crash(src: Any, dst: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        io.append(tmp_path, "touches", _touches(5, step=timedelta(minutes=1)))
    monkeypatch.undo()
    leftovers = [p for p in (tmp_path / "touches").rglob("*") if p.name.startswith(".")]
    assert leftovers, "the crash should leave the hidden temporary file behind"
    # the hidden temp file is not data
    assert io.read(tmp_path, "touches").num_rows == 2
    assert all(not p.name.startswith(".") for p in io.part_files(tmp_path, "touches"))
    # and the next append works and is read
    io.append(tmp_path, "touches", _touches(1))
    assert io.read(tmp_path, "touches").num_rows == 3


def test_corrupt_committed_part_is_named(tmp_path: Path) -> None:
    (p,) = io.append(tmp_path, "touches", _touches(1))
    p.write_bytes(b"not parquet")
    with pytest.raises(LogError, match=rf"{p.name}: cannot read log part"):
        io.read(tmp_path, "touches")


def _decisions_with(make_decisions: Any, column: str, values: list[Any], typ: Any) -> pa.Table:
    t = make_decisions(2)
    i = t.schema.get_field_index(column)
    return t.set_column(i, column, pa.array(values, typ))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t, m: t.drop_columns(["propensity"]), r"decisions: missing column\(s\) propensity"),
        (
            lambda t, m: t.drop_columns(["policy", "activated"]),
            r"missing column\(s\) policy, activated",
        ),
        (
            lambda t, m: t.set_column(
                t.schema.get_field_index("propensity"), "propensity", pa.array(["high", "low"])
            ),
            r"column 'propensity' \(string\) does not match the contract type double",
        ),
        (
            lambda t, m: t.set_column(
                t.schema.get_field_index("ts"), "ts", pa.array(["soon", "later"])
            ),
            r"column 'ts' \(string\) does not match",
        ),
        (
            lambda t, m: t.set_column(
                t.schema.get_field_index("hcp_id"), "hcp_id", pa.array(["h1", None])
            ),
            r"column 'hcp_id' has a null at row 1",
        ),
        (
            lambda t, m: t.set_column(
                t.schema.get_field_index("action_ids"), "action_ids", pa.array([1.5, 2.5])
            ),
            r"column 'action_ids' \(double\) does not match",
        ),
    ],
    ids=["missing column", "two missing", "wrong type", "bad timestamp", "null", "not a list"],
)
def test_wrong_schema_refused_with_the_column_named(
    tmp_path: Path, make_decisions: Any, mutate: Any, match: str
) -> None:
    bad = mutate(make_decisions(2), None)
    with pytest.raises(LogError, match=match):
        io.append(tmp_path, "decisions", bad)
    assert io.part_files(tmp_path, "decisions") == []


def test_extra_columns_dropped_and_empty_append(tmp_path: Path) -> None:
    t = _touches(2).append_column("note", pa.array(["x", "y"]))
    io.append(tmp_path, "touches", t)
    assert io.read(tmp_path, "touches").column_names == TOUCHES.names
    assert io.append(tmp_path, "touches", TOUCHES.empty_table()) == []


def test_unknown_table(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"unknown log table 'clicks'"):
        io.append(tmp_path, "clicks", _touches(1))
    with pytest.raises(LogError, match=r"unknown log table 'clicks'"):
        io.read(tmp_path, "clicks")


def test_read_missing_directory_is_empty_with_schema(tmp_path: Path) -> None:
    t = io.read(tmp_path / "nothing", "outcomes")
    assert t.num_rows == 0 and t.schema == OUTCOMES
    assert io.read(tmp_path, "decisions").schema == DECISIONS


def test_reads_in_date_then_part_order(tmp_path: Path) -> None:
    late = _touches(2, start=T0 + timedelta(days=3), step=timedelta(minutes=1))
    early = _touches(2, start=T0, step=timedelta(minutes=1))
    io.append(tmp_path, "touches", late)
    io.append(tmp_path, "touches", early)
    ts = io.read(tmp_path, "touches").column("ts")
    assert pc.all(pc.greater_equal(ts.slice(1), ts.slice(0, len(ts) - 1))).as_py()


# ------------------------------------------------- touches from before interest signals
OLD_TOUCH_COLUMNS = ["hcp_id", "ts", "channel", "content_id", "origin"]


def test_old_five_column_touch_parts_read_as_contacts(tmp_path: Path) -> None:
    """A part written before kind/topics/content_ids/dwell_s existed reads as plain
    contacts, and concatenates with new parts."""
    import pyarrow.parquet as pq

    old = _touches(3).select(OLD_TOUCH_COLUMNS)
    part = tmp_path / "touches" / "date=2026-01-05" / "part-00000.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(old, part)
    io.append(tmp_path, "touches", _touches(1, start=T0 + timedelta(days=1)))
    got = io.read(tmp_path, "touches")
    assert got.schema.equals(TOUCHES)
    assert got.num_rows == 4
    rows = got.slice(0, 3).to_pylist()
    assert [r["kind"] for r in rows] == ["contact"] * 3
    assert [r["topics"] for r in rows] == [[]] * 3
    assert [r["content_ids"] for r in rows] == [[]] * 3
    assert [r["dwell_s"] for r in rows] == [None] * 3
    assert got.column("content_id").to_pylist()[:3] == ["c0", "c1", "c2"]
    # the new part keeps what it says
    assert got.slice(3).to_pylist()[0]["kind"] == "portal_view"


def test_old_five_column_touch_table_appends_with_defaults(tmp_path: Path) -> None:
    io.append(tmp_path, "touches", _touches(2).select(OLD_TOUCH_COLUMNS))
    got = io.read(tmp_path, "touches")
    assert got.column("kind").to_pylist() == ["contact", "contact"]
    assert got.column("topics").to_pylist() == [[], []]


def test_old_part_missing_a_column_that_was_always_required(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    part = tmp_path / "touches" / "date=2026-01-05" / "part-00000.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(_touches(1).select(["hcp_id", "ts", "channel", "content_id"]), part)
    with pytest.raises(LogError, match=r"part-00000.parquet: missing column\(s\) origin"):
        io.read(tmp_path, "touches")


@pytest.mark.parametrize(
    ("column", "values", "typ", "match"),
    [
        ("kind", [None, "contact"], pa.string(), r"column 'kind' has a null at row 0"),
        ("topics", [["a"], None], pa.list_(pa.string()), r"column 'topics' has a null at row 1"),
        ("dwell_s", ["long", "short"], pa.string(), r"column 'dwell_s' \(string\) does not"),
    ],
)
def test_new_touch_columns_checked(
    tmp_path: Path, column: str, values: list[Any], typ: Any, match: str
) -> None:
    t = _touches(2)
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(values, typ))
    with pytest.raises(LogError, match=match):
        io.append(tmp_path, "touches", t)


# ------------------------------------------------- one listing reused by many reads
def test_listing_reads_what_read_reads_and_lists_each_day_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _touches(40, step=timedelta(hours=5))  # 2026-01-05 .. 2026-01-13, nine days
    io.append(tmp_path, "touches", t)
    io.append(tmp_path, "touches", t.slice(0, 4))  # a second part on the first day
    days = sorted({x.date() for x in t.column("ts").to_pylist()})
    assert len(days) == 9
    listed: list[str] = []
    real_iterdir = Path.iterdir

    def counting(self: Path) -> Any:
        listed.append(self.name)
        return real_iterdir(self)

    listing = io.PartListing(tmp_path, "touches")
    monkeypatch.setattr(Path, "iterdir", counting)
    for d in days:
        # each day's read gives what a read without the listing gives
        got = io.read(tmp_path, "touches", since=d, until=d, listing=listing)
        want = io.read(tmp_path, "touches", since=d, until=d)
        assert got.equals(want) and got.num_rows > 0
    monkeypatch.undo()
    # with the listing: one listing per day, never the table's directory again;
    # without: the table's directory once per read, and that day's directory
    with_listing = len(listed) - 2 * len(days)
    assert with_listing == len(days)
    assert listed.count("touches") == len(days)  # the reads without the listing only
    assert io.read(tmp_path, "touches", listing=listing).num_rows == 44
    assert listing.between(None, None) == io.part_files(tmp_path, "touches")


def test_listing_skips_hidden_files_and_sees_no_later_parts(tmp_path: Path) -> None:
    io.append(tmp_path, "touches", _touches(2, step=timedelta(minutes=1)))
    day_dir = io.part_files(tmp_path, "touches")[0].parent
    (day_dir / ".part-00001.parquet.tmp").write_bytes(b"in flight")
    (day_dir / "notes.txt").write_text("not a part")
    listing = io.PartListing(tmp_path, "touches")
    assert [p.name for p in listing.between(None, None)] == ["part-00000.parquet"]
    assert io.read(tmp_path, "touches", listing=listing).num_rows == 2
    # a part committed after the day was listed is not seen through the listing
    io.append(tmp_path, "touches", _touches(3, step=timedelta(minutes=1)))
    assert io.read(tmp_path, "touches", listing=listing).num_rows == 2
    assert io.read(tmp_path, "touches").num_rows == 5


def test_listing_of_another_table_or_root_is_refused(tmp_path: Path) -> None:
    io.append(tmp_path, "touches", _touches(2, step=timedelta(minutes=1)))
    listing = io.PartListing(tmp_path, "touches")
    with pytest.raises(LogError, match="the listing is of table 'touches'"):
        io.read(tmp_path, "outcomes", listing=listing)
    with pytest.raises(LogError, match="the listing is of table 'touches'"):
        io.read(tmp_path / "other", "touches", listing=listing)
    with pytest.raises(LogError, match="unknown log table"):
        io.PartListing(tmp_path, "nope")


def test_day_directory_with_a_bad_date_is_named(tmp_path: Path) -> None:
    io.append(tmp_path, "touches", _touches(2, step=timedelta(minutes=1)))
    (tmp_path / "touches" / "date=2026-13-01").mkdir()
    with pytest.raises(LogError, match=r"date=2026-13-01: not a day directory"):
        io.read(tmp_path, "touches")
    with pytest.raises(LogError, match=r"date=2026-13-01: not a day directory"):
        io.PartListing(tmp_path, "touches")
