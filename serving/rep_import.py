"""Read a territory alignment (rep ↔ HCP) from a Parquet or CSV file.

Columns: ``rep_id, hcp_id`` (required), ``valid_from`` (first day, ISO date; default
today, UTC), ``valid_to`` (exclusive end, ISO date; default open), ``name`` and
``capacity_per_day`` (the rep's; a rep new to the store needs a capacity, and every
row of one rep that gives them must agree). A column outside these is refused. Each
row gives ``hcp_id`` to ``rep_id`` from ``valid_from``, closing the HCP's previous
alignment that day (:mod:`serving.store_reps`). Every bad row is reported, one line
each naming the row (1-based, as in a spreadsheet without its header) and the
column; nothing is imported unless every row is good.

>>> changes, reps = read_alignment(b"rep_id,hcp_id,valid_from,capacity_per_day\\n"
...     b"R1,H1,2026-01-05,6\\nR1,H2,2026-01-05,6\\n", "a.csv")
>>> [(c.row, c.rep_id, c.hcp_id, str(c.valid_from)) for c in changes], reps
([(1, 'R1', 'H1', '2026-01-05'), (2, 'R1', 'H2', '2026-01-05')], {'R1': (None, 6)})
>>> read_alignment(b"rep_id,hcp_id,capacity_per_day\\nR1,H1,lots\\nR 2,H2,3\\n", "a.csv")
Traceback (most recent call last):
...
serving.hcp_import.ImportError_: 2 bad row(s), nothing imported:
row 1: column 'capacity_per_day': 'lots' is not a whole number 0..1000
row 2: column 'rep_id': 'R 2' is not an id (1-128 characters, no spaces, '/' or '@')
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from serving.hcp_import import ImportError_, check_columns, detect_format, read_table, table_rows
from serving.store_reps import AlignmentChange

REQUIRED = ("rep_id", "hcp_id")
OPTIONAL = ("valid_from", "valid_to", "name", "capacity_per_day")
_ID = re.compile(r"^[^\s/@]{1,128}$")


class _RowError(Exception):
    pass


def _id(v: Any, col: str) -> str:
    s = "" if v is None else str(v).strip()
    if not _ID.match(s):
        raise _RowError(
            f"column '{col}': {v!r} is not an id (1-128 characters, no spaces, '/' or '@')"
        )
    return s


def _date(v: Any, col: str) -> date | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v).strip())
    except ValueError:
        raise _RowError(f"column '{col}': {v!r} is not an ISO date (e.g. 2026-01-05)") from None


def _capacity(v: Any) -> int | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        if isinstance(v, bool):
            raise ValueError
        x = float(v)
        if not x.is_integer() or not 0 <= x <= 1000:
            raise ValueError
    except (TypeError, ValueError):
        raise _RowError(f"column 'capacity_per_day': {v!r} is not a whole number 0..1000") from None
    return int(x)


def read_alignment(
    data: bytes, filename: str | None, today: date | None = None
) -> tuple[list[AlignmentChange], dict[str, tuple[str | None, int | None]]]:
    """The upload's rows as alignment changes, and each rep's ``(name, capacity)``.

    Raises
    ------
    ImportError_
        The file is unreadable, has a missing or unknown column, or bad rows (all
        of them listed, one line each).
    """
    fmt = detect_format(data, filename)
    table = read_table(data, fmt)
    check_columns(table, fmt, REQUIRED, (*REQUIRED, *OPTIONAL))
    day0 = today or datetime.now(UTC).date()
    changes: list[AlignmentChange] = []
    reps: dict[str, tuple[str | None, int | None]] = {}
    cap_row: dict[str, int] = {}
    name_row: dict[str, int] = {}
    seen: dict[tuple[str, date], int] = {}
    errors: list[str] = []
    for i, row in enumerate(table_rows(table, fmt)):
        n = i + 1
        try:
            rep_id = _id(row.get("rep_id"), "rep_id")
            hcp_id = _id(row.get("hcp_id"), "hcp_id")
            since = _date(row.get("valid_from"), "valid_from") or day0
            until = _date(row.get("valid_to"), "valid_to")
            if until is not None and until <= since:
                raise _RowError(f"column 'valid_to': {until} is not after valid_from {since}")
            raw_name = row.get("name")
            name = None if raw_name is None or not str(raw_name).strip() else str(raw_name).strip()
            capacity = _capacity(row.get("capacity_per_day"))
            if (hcp_id, since) in seen:
                raise _RowError(
                    f"column 'hcp_id': HCP {hcp_id!r} is aligned twice from {since} "
                    f"(also row {seen[(hcp_id, since)]})"
                )
            old_name, old_cap = reps.get(rep_id, (None, None))
            if capacity is not None and old_cap is not None and capacity != old_cap:
                raise _RowError(
                    f"column 'capacity_per_day': {capacity} differs from {old_cap} given for "
                    f"rep {rep_id!r} in row {cap_row[rep_id]}"
                )
            if name is not None and old_name is not None and name != old_name:
                raise _RowError(
                    f"column 'name': {name!r} differs from {old_name!r} given for rep "
                    f"{rep_id!r} in row {name_row[rep_id]}"
                )
        except _RowError as exc:
            errors.append(f"row {n}: {exc}")
            continue
        seen[(hcp_id, since)] = n
        if capacity is not None:
            cap_row.setdefault(rep_id, n)
        if name is not None:
            name_row.setdefault(rep_id, n)
        reps[rep_id] = (name or old_name, capacity if capacity is not None else old_cap)
        changes.append(AlignmentChange(n, rep_id, hcp_id, since, until))
    if errors:
        raise ImportError_(f"{len(errors)} bad row(s), nothing imported:\n" + "\n".join(errors))
    return changes, reps
