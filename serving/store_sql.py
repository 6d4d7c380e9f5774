"""The SQL dialect layer of the event store: the one place where SQLite and
PostgreSQL differ.

The store's SQL is written once, in SQLite's spelling (``?`` placeholders,
``INSERT OR IGNORE``, ``BEGIN IMMEDIATE``), and runs unchanged on SQLite. On
PostgreSQL every statement goes through :class:`PgConnection`, which rewrites
it (:func:`pg_sql`): ``?`` becomes ``%s`` (and a literal ``%`` becomes
``%%``), ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``,
``BEGIN IMMEDIATE`` becomes ``BEGIN`` plus a transaction-level advisory lock
(so writers queue exactly as they do behind SQLite's write lock), and a plain
``BEGIN`` (a read snapshot) becomes a ``REPEATABLE READ READ ONLY``
transaction. The few functions that have no common spelling (text position,
JSON paths and arrays, zero padding, the insertion order of decisions) come
from :class:`Dialect`.

>>> pg_sql("INSERT OR IGNORE INTO t (a, b) VALUES (?, ?)", True)
'INSERT INTO t (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING'
>>> pg_sql("SELECT '?', x FROM t WHERE y LIKE 'a%' AND z=?", True)
"SELECT '?', x FROM t WHERE y LIKE 'a%%' AND z=%s"
>>> SQLITE.json_text("d.context", "hcp", "market"), POSTGRES.json_text("d.context", "hcp", "market")
("json_extract(d.context, '$.hcp.market')", "(d.context::jsonb #>> '{hcp,market}')")
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

try:  # the ``postgres`` extra; only the PostgreSQL backend needs it
    import psycopg

    _PG_INTEGRITY: tuple[type[Exception], ...] = (psycopg.IntegrityError,)
except ImportError:  # pragma: no cover - the extra is installed by make
    psycopg = None  # type: ignore[assignment]
    _PG_INTEGRITY = ()

#: what a unique or foreign-key violation raises, on either backend
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, *_PG_INTEGRITY)

#: the key of the PostgreSQL advisory lock every write transaction takes
#: (``pg_advisory_xact_lock``): one writer at a time, as on SQLite
WRITE_LOCK_KEY = 0x6E62615F7374  # "nba_st"


class Cursor(Protocol):
    """What the store reads back from a statement (sqlite3 and psycopg cursors)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A store connection: a :class:`sqlite3.Connection` or a :class:`PgConnection`.

    SQL is given in SQLite's spelling on both (see the module docstring).
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments that are spelled differently by each backend.

    Parameters
    ----------
    name : {"sqlite", "postgresql"}
    """

    name: str

    @property
    def is_pg(self) -> bool:
        return self.name == "postgresql"

    def instr(self, text: str, sub: str) -> str:
        """1-based position of ``sub`` in ``text`` (0 when absent)."""
        return f"strpos({text}, {sub})" if self.is_pg else f"instr({text}, {sub})"

    def json_text(self, col: str, *path: str | int) -> str:
        """The JSON value at ``path`` (keys and array indexes) of column ``col``, as text."""
        if self.is_pg:
            return f"({col}::jsonb #>> '{{{','.join(str(p) for p in path)}}}')"
        spelled = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        return f"json_extract({col}, '{spelled}')"

    def json_elements(self, col: str, alias: str) -> str:
        """A FROM item with one row per element of the JSON array in ``col``
        (the element is ``<alias>.value``)."""
        if self.is_pg:
            return f"jsonb_array_elements({col}::jsonb) AS {alias}(value)"
        return f"json_each({col}) AS {alias}"

    def zero_pad(self, expr: str, width: int) -> str:
        """Integer ``expr`` as text, left-padded with zeros to ``width`` digits."""
        if self.is_pg:
            return f"lpad(CAST({expr} AS TEXT), {width}, '0')"
        return f"printf('%0{width}d', {expr})"

    @property
    def decision_order(self) -> str:
        """The column that orders ``decisions`` by insertion (``rowid`` on SQLite)."""
        return "seq" if self.is_pg else "rowid"


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgresql")

_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str, with_params: bool) -> str:
    """``sql`` in SQLite's spelling rewritten for PostgreSQL (psycopg placeholders).

    Parameters
    ----------
    sql : str
    with_params : bool
        Whether parameters are passed (psycopg then reads ``%`` as a placeholder
        mark, so literal ones are doubled).
    """
    if _INSERT_OR_IGNORE.match(sql):
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
        m = _RETURNING.search(sql)
        if m is None:
            sql = sql.rstrip() + " ON CONFLICT DO NOTHING"
        else:
            sql = sql[: m.start()] + " ON CONFLICT DO NOTHING" + sql[m.start() :]
    if not with_params:
        return sql
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def pg_ddl(ddl: str) -> str:
    """The store's DDL (SQLite types) with PostgreSQL types: integer row ids become
    identity columns, ``INTEGER`` becomes ``BIGINT`` (microsecond timestamps),
    ``REAL`` becomes ``DOUBLE PRECISION``.

    >>> for part in pg_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL)").split(","):
    ...     print(part.strip())
    CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY
    n BIGINT
    x DOUBLE PRECISION)
    """
    ddl = re.sub(
        r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", ddl
    )
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)


class PgConnection:
    """A psycopg connection (autocommit) that takes the store's SQLite-spelled SQL.

    Transactions are explicit, as on SQLite: ``BEGIN IMMEDIATE`` starts a write
    transaction holding the store's advisory write lock until ``COMMIT`` or
    ``ROLLBACK``; ``BEGIN`` starts a read-only snapshot (``REPEATABLE READ``).

    Parameters
    ----------
    raw : psycopg.Connection
        Opened with ``autocommit=True``.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = None, /) -> Any:
        head = sql.strip().upper()
        if head == "BEGIN IMMEDIATE":
            self.raw.execute("BEGIN")
            return self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        if head == "BEGIN":
            return self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        params = None if parameters is None or len(parameters) == 0 else parameters
        return self.raw.execute(pg_sql(sql, params is not None), params)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        rows = [tuple(p) for p in parameters]
        cur = self.raw.cursor()
        if rows:
            cur.executemany(pg_sql(sql, True), rows)
        return cur

    def close(self) -> None:
        self.raw.close()
