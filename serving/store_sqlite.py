"""The SQLite backend of the event store: one database file in WAL mode.

The embedded default (no ``NBA_STORE_URL``). Several worker processes (and
threads) may share one file: each process/thread gets its own connection
(re-opened after a fork), waits on a lock for up to ``busy_timeout_s`` and takes
the write lock up front (``BEGIN IMMEDIATE``) for every write, so writers queue
instead of failing half-way. ``synchronous="FULL"`` fsyncs the write-ahead log
at each commit (see :mod:`serving.store`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from serving.store import EventStore, StoreError, _Part
from serving.store_sql import SQLITE, Connection


class SQLiteStore(EventStore):
    """The event store in one SQLite file (WAL mode); parameters as :class:`EventStore`."""

    dialect = SQLITE

    def __init__(
        self,
        path: str | Path,
        reward_window_days: float = 14.0,
        synchronous: str = "FULL",
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._init_common(reward_window_days, synchronous, busy_timeout_s)
        self.path = Path(path)
        self.location = self.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._conn()
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"EventStore: {self.path} cannot use WAL mode (got {mode!r})")
        self._setup_schema()

    def _fetch_parts(self, parts: Mapping[str, _Part]) -> dict[str, list[tuple[Any, ...]]]:
        """The rows of several query parts, each part run as its own statement inside
        one read transaction (so all parts see the same snapshot of the file, as the
        one ``UNION ALL`` statement of :meth:`EventStore._fetch_parts` does).

        SQLite runs in the process: there is no round trip to save, and a dozen
        small statements cost SQLite about a tenth of the one statement that tags,
        numbers and sorts every part's rows (docs/performance.md). The rows are each
        part's own statement's (:meth:`EventStore._rows`), which the single
        statement reproduces.
        """
        con = cast(sqlite3.Connection, self._conn())  # this backend's connections
        if con.in_transaction:  # inside the caller's transaction: its snapshot already
            return {name: con.execute(p.sql(), p.args).fetchall() for name, p in parts.items()}
        con.execute("BEGIN")  # deferred: a read snapshot from the first SELECT on
        try:
            out = {name: con.execute(p.sql(), p.args).fetchall() for name, p in parts.items()}
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to see
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return out

    def _connect(self) -> Connection:
        # check_same_thread=False only so that the fork hook may close it; each
        # connection is still used by the one thread that opened it
        con = sqlite3.connect(
            str(self.path),
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        con.execute(f"PRAGMA synchronous={self.synchronous}")
        return con

    def _has_table(self, c: Connection, table: str) -> bool:
        row = c.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone()
        return row is not None

    def _columns(self, c: Connection, table: str) -> set[str]:
        return {r[1] for r in c.execute(f"PRAGMA table_info({table})")}

    def _migrate_older(self, c: Connection, version: int) -> None:
        if "action_id" not in self._columns(c, "outcomes"):
            self._migrate_1_to_2(c)

    @staticmethod
    def _migrate_1_to_2(c: Connection) -> None:
        """Add ``outcomes.action_id`` (in the caller's write transaction).

        Version 1 kept the suggestion a rep's feedback concerned only in the
        ``feedback`` table; feedback about another action than the chosen one
        gets that action id, every other outcome stays null (the chosen action).
        """
        c.execute("ALTER TABLE outcomes ADD COLUMN action_id TEXT")
        c.execute(
            "UPDATE outcomes SET action_id = (SELECT f.action_id FROM feedback f"
            " WHERE f.outcome_id = outcomes.id) WHERE id IN (SELECT f.outcome_id"
            " FROM feedback f JOIN decisions d ON d.event_id = f.event_id"
            " WHERE f.action_id <> d.chosen_action_id)"
        )
