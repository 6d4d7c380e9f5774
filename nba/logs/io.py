"""Append and read the Parquet event log (layout in :mod:`nba.logs.schema`).

Writes are atomic per file: each part is written to a hidden temporary name and
renamed into place, and readers skip hidden files, so a crash mid-write never
leaves a file that reads as data. Part names are sequence numbers, so the same
appends in the same order give byte-identical directories.

>>> import tempfile, pyarrow as pa
>>> from datetime import datetime, UTC
>>> root = tempfile.mkdtemp()
>>> t = pa.Table.from_pylist([{"hcp_id": "h1", "ts": datetime(2026, 1, 5, tzinfo=UTC),
...     "channel": "email", "content_id": "c1", "origin": "ours", "kind": "contact",
...     "topics": [], "content_ids": [], "dwell_s": None}], schema=TOUCHES)
>>> [p.name for p in append(root, "touches", t)]
['part-00000.parquet']
>>> read(root, "touches").num_rows
1
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nba.domain import ValidationError
from nba.logs.schema import PARTITION_KEY, TABLES, TOUCHES  # noqa: F401  (TOUCHES: doctest)

#: columns worth dictionary-encoding; ids, JSON and numbers are not (it costs
#: time and, for them, space)
_LOW_CARDINALITY = frozenset(
    {
        "requester",
        "catalog_version",
        "policy",
        "model_version",
        "type",
        "source",
        "channel",
        "origin",
        "reward_definition",
        "content_id",
        "chosen_action_id",
    }
)

_PART = re.compile(r"^part-(\d{5,})\.parquet$")


class LogError(ValidationError):
    """An event-log table or directory is not what the contract says."""


def _schema(name: str) -> pa.Schema:
    try:
        return TABLES[name]
    except KeyError:
        raise LogError(f"unknown log table {name!r}; expected one of {sorted(TABLES)}") from None


#: Columns added to a table's contract after logs were written without them, with the
#: value an old row reads as (docs/DESIGN.md, "Decisions taken here"): touches logged
#: before interest signals were plain contacts.
ADDED_COLUMNS: dict[str, dict[str, object]] = {
    "touches": {
        "kind": "contact",
        "topics": [],
        "content_ids": [],
        "dwell_s": None,
        "overrides_event_id": None,
    },
}


def fill_added_columns(table: pa.Table, name: str) -> pa.Table:
    """``table`` with every column of :data:`ADDED_COLUMNS` it lacks set to its default.

    >>> t = pa.table({"hcp_id": ["h1"]})
    >>> fill_added_columns(t, "touches").column("kind").to_pylist()
    ['contact']
    """
    defaults = ADDED_COLUMNS.get(name, {})
    schema = _schema(name)
    for col, value in defaults.items():
        if col in table.column_names:
            continue
        field = schema.field(col)
        arr = pa.array([value] * table.num_rows, type=field.type)
        table = table.append_column(pa.field(col, field.type, field.nullable), arr)
    return table


def conform(table: pa.Table, name: str) -> pa.Table:
    """Cast ``table`` to the contract schema of ``name``, refusing missing columns or nulls.

    Columns added to the contract later (:data:`ADDED_COLUMNS`) are filled with
    their defaults when absent, and any other missing nullable column (such as
    the outcomes' ``action_id``) with nulls, so tables written by older code
    still conform.
    """
    schema = _schema(name)
    table = fill_added_columns(table, name)
    for f in schema:
        if f.nullable and f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise LogError(f"{name}: missing column(s) {', '.join(missing)}")
    for f in schema:
        col = table.column(f.name)
        if not f.nullable and col.null_count:
            first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogError(f"{name}: column '{f.name}' has a null at row {first}")
    try:
        out = table.select(schema.names).cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # name the first column that does not cast, so the caller knows what to fix
        for f in schema:
            col = table.column(f.name)
            try:
                col.cast(f.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as cexc:
                raise LogError(
                    f"{name}: column '{f.name}' ({col.type}) does not match the contract "
                    f"type {f.type}: {cexc}"
                ) from exc
        raise LogError(f"{name}: columns do not match the contract schema: {exc}") from exc
    for f in schema:
        col = out.column(f.name)
        if not f.nullable and col.null_count:
            first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogError(f"{name}: column '{f.name}' has a null at row {first}")
    return out


def _partition_dir(root: Path, name: str, day: date) -> Path:
    return root / name / f"{PARTITION_KEY}={day.isoformat()}"


def _next_part(directory: Path) -> int:
    if not directory.exists():
        return 0
    nums = [int(m.group(1)) for p in directory.iterdir() if (m := _PART.match(p.name))]
    return max(nums) + 1 if nums else 0


def _write_atomic(table: pa.Table, path: Path, fsync: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    dictionary = [c for c in table.column_names if c in _LOW_CARDINALITY]
    pq.write_table(table, tmp, compression="zstd", use_dictionary=dictionary)
    if fsync:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def append(root: str | Path, name: str, table: pa.Table, *, fsync: bool = True) -> list[Path]:
    """Append rows to log table ``name`` under ``root``, one new part per UTC day.

    Parameters
    ----------
    root : path
        Log directory.
    name : {"decisions", "outcomes", "touches", "ground_truth"}
    table : pyarrow.Table
        Rows conforming to the schema of ``name`` (extra columns are dropped).
    fsync : bool, default True
        Flush each part to disk before it is renamed into place. Either way a
        crash of the writing process never leaves a partial part that reads as
        data (the rename is atomic); ``fsync`` adds durability across a power
        loss. Writers of regenerable bulk data (the simulator) may turn it off.

    Returns
    -------
    list of Path
        The part files written, in date order.
    """
    table = conform(table, name)
    if table.num_rows == 0:
        return []
    rootp = Path(root)
    days = pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC")).cast(pa.date32())
    day_vals = days.to_numpy(zero_copy_only=False).astype("datetime64[D]")
    # rows already in day order (what the simulator and the store export give) are
    # written as slices of the table: the same rows as taking them, without copying
    in_order = bool((day_vals[1:] >= day_vals[:-1]).all())
    order = np.arange(day_vals.shape[0]) if in_order else np.argsort(day_vals, kind="stable")
    sorted_days = day_vals[order]
    bounds = np.flatnonzero(np.r_[True, sorted_days[1:] != sorted_days[:-1], True])
    written: list[Path] = []
    for lo, hi in itertools.pairwise(bounds):
        day = sorted_days[lo].astype(object)
        if in_order:
            part = table.slice(int(lo), int(hi - lo))
        else:
            part = table.take(pa.array(order[lo:hi]))
        directory = _partition_dir(rootp, name, day)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"part-{_next_part(directory):05d}.parquet"
        _write_atomic(part, path, fsync)
        written.append(path)
    return written


def _as_utc(value: date | datetime, end: bool) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise LogError(f"date filter {value!r} must be timezone-aware")
        return value.astimezone(UTC)
    dt = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return dt + timedelta(days=1) if end else dt


def _day_dirs(root: str | Path, name: str) -> list[tuple[date, Path]]:
    """The day directories of table ``name``, in date order (one directory listing)."""
    _schema(name)
    base = Path(root) / name
    if not base.exists():
        return []
    prefix = f"{PARTITION_KEY}="
    out = []
    for d in base.iterdir():
        if not d.name.startswith(prefix) or not d.is_dir():
            continue
        try:
            day = date.fromisoformat(d.name[len(prefix) :])
        except ValueError:
            raise LogError(f"{d}: not a day directory ({prefix}YYYY-MM-DD)") from None
        out.append((day, d))
    return sorted(out)


def _parts_of(directory: Path) -> list[Path]:
    """Committed parts of one day directory in sequence order (hidden, in-flight
    files and anything else not named ``part-NNNNN.parquet`` are skipped)."""
    return sorted(p for p in directory.iterdir() if _PART.match(p.name))


def part_files(root: str | Path, name: str) -> list[Path]:
    """Committed part files of table ``name`` in date, then sequence order."""
    return [f for _, d in _day_dirs(root, name) for f in _parts_of(d)]


def time_bounds(
    since: date | datetime | None, until: date | datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The ``[lo, hi)`` instants (UTC) :func:`read` selects for ``since`` / ``until``."""
    lo = None if since is None else _as_utc(since, end=False)
    hi = None if until is None else _as_utc(until, end=True)
    return lo, hi


def _day_meets(day: date, lo: datetime | None, hi: datetime | None) -> bool:
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if lo is not None and day_start + timedelta(days=1) <= lo:
        return False
    return hi is None or day_start < hi


def part_files_between(
    root: str | Path, name: str, lo: datetime | None, hi: datetime | None
) -> list[Path]:
    """The part files of ``name`` whose UTC day meets ``[lo, hi)`` (None: unbounded).

    Only the day directories in the range are listed (one listing of the table's
    directory, then one per day read).
    """
    return [f for day, d in _day_dirs(root, name) if _day_meets(day, lo, hi) for f in _parts_of(d)]


def part_files_spanning(
    root: str | Path, name: str, ts_us: pa.Array | pa.ChunkedArray
) -> list[Path]:
    """The part files of ``name`` on the UTC days from the earliest to the latest time given.

    Parameters
    ----------
    root : path
        Log directory.
    name : str
        Table name.
    ts_us : pyarrow array of int64, shape (n,)
        Times in microseconds since the epoch (UTC); empty gives no files.

    Returns
    -------
    list of Path
        The committed part files of those days, in day order.
    """
    if len(ts_us) == 0:
        return []
    lo = datetime.fromtimestamp(int(pc.min(ts_us).as_py()) / 1e6, tz=UTC)
    hi = datetime.fromtimestamp(int(pc.max(ts_us).as_py()) / 1e6, tz=UTC)
    return part_files_between(root, name, lo, hi + timedelta(days=1))


class PartListing:
    """The committed part files of one log table, listed once and reused.

    A command that reads a table many times (``nba train`` reads the decisions'
    contexts one day at a time) lists the table's directory once instead of on
    every read: listing every day directory on each daily read grows with the
    square of the number of days. Parts committed after the listing are not
    seen; hidden (in-flight) files are skipped as by :func:`part_files`.

    Parameters
    ----------
    root : path
        Log directory.
    name : str
        Table name.

    Examples
    --------
    >>> import tempfile
    >>> listing = PartListing(tempfile.mkdtemp(), "decisions")
    >>> listing.between(None, None)
    []
    """

    def __init__(self, root: str | Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self._days = _day_dirs(root, name)
        self._parts: dict[date, list[Path]] = {}

    def days(self) -> list[date]:
        """The table's days (those with a day directory), in date order."""
        return [day for day, _ in self._days]

    def between(self, lo: datetime | None, hi: datetime | None) -> list[Path]:
        """The part files whose UTC day meets ``[lo, hi)`` (None: unbounded), in date,
        then sequence order; each day directory is listed at most once."""
        out: list[Path] = []
        for day, d in self._days:
            if not _day_meets(day, lo, hi):
                continue
            parts = self._parts.get(day)
            if parts is None:
                parts = self._parts[day] = _parts_of(d) if d.is_dir() else []
            out.extend(parts)
        return out


def read(
    root: str | Path,
    name: str,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    columns: Sequence[str] | None = None,
    listing: PartListing | None = None,
) -> pa.Table:
    """Read log table ``name``; ``since`` is inclusive, ``until`` exclusive for
    datetimes and inclusive for whole dates. Hidden (in-flight) files are skipped.

    Parameters
    ----------
    listing : PartListing, optional
        The table's part files listed once before (by a command that reads it
        many times); without it, the day directories in the range are listed.

    Returns
    -------
    pyarrow.Table
        With the contract schema (or the requested ``columns`` of it).
    """
    schema = _schema(name)
    lo = None if since is None else _as_utc(since, end=False)
    hi = None if until is None else _as_utc(until, end=True)
    if listing is None:
        keep = part_files_between(root, name, lo, hi)
    elif listing.name != name or listing.root != Path(root):
        raise LogError(
            f"read({str(root)!r}, {name!r}): the listing is of table {listing.name!r} "
            f"under {str(listing.root)!r}"
        )
    else:
        keep = listing.between(lo, hi)
    if not keep:
        empty = schema.empty_table()
        return empty.select(list(columns)) if columns else empty
    wanted = list(schema.names)
    if columns:
        # only the requested columns (and ts when filtering by time) are decoded
        need = set(columns) | ({"ts"} if lo is not None or hi is not None else set())
        wanted = [c for c in schema.names if c in need]
    tables = []
    for f in keep:
        try:
            pf = pq.ParquetFile(f)
            present = set(pf.schema_arrow.names)
            absent = [c for c in schema.names if c not in present]
            if not absent:
                # the common case, read directly (pq.read_table's dataset machinery
                # costs milliseconds per part file, and the log has one per day)
                t = pf.read(columns=wanted).select(wanted)
                t = t.cast(pa.schema([schema.field(c) for c in wanted]), safe=True)
                tables.append(t)
                continue
            t = pq.read_table(f, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
            raise LogError(f"{f}: cannot read log part: {exc}") from exc
        if absent:
            # a part written before columns were added to the contract: those read as
            # their defaults (nullable ones without a default as null); any other
            # missing column is an error
            added = ADDED_COLUMNS.get(name, {})
            unknown = [c for c in absent if c not in added and not schema.field(c).nullable]
            if unknown:
                raise LogError(f"{f}: missing column(s) {', '.join(unknown)}")
            t = conform(t.drop_columns(absent), name)
        tables.append(t.select(wanted))
    out = pa.concat_tables(tables)
    if lo is not None or hi is not None:
        ts = out.column("ts")
        mask = None
        if lo is not None:
            mask = pc.greater_equal(ts, pa.scalar(lo, type=schema.field("ts").type))
        if hi is not None:
            m2 = pc.less(ts, pa.scalar(hi, type=schema.field("ts").type))
            mask = m2 if mask is None else pc.and_(mask, m2)
        if not pc.all(mask).as_py():
            # (a filter copies every column: a day read whole, the usual case, is kept)
            out = out.filter(mask)
    if columns:
        out = out.select(list(columns))
    return out
