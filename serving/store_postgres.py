"""The PostgreSQL backend of the event store (``NBA_STORE_URL=postgresql://...``).

Several service replicas (each with its workers) share one database. The SQL is
the store's own, rewritten by :mod:`serving.store_sql`; what is particular here:

- connections: one per thread and process (psycopg 3, autocommit; explicit
  transactions as on SQLite), closed before a fork and reopened lazily;
- writes: every write transaction takes one transaction-level advisory lock
  (:data:`serving.store_sql.WRITE_LOCK_KEY`) before its first statement, so
  writers of all replicas queue as they do behind SQLite's write lock: a
  read-then-write (a rules version's head check, a decision's lookup before its
  outcome) sees no concurrent writer; the lock is released by the commit;
- acknowledged means committed: a write method returns after ``COMMIT``
  returned (the server's ``synchronous_commit`` decides the fsync);
- duplicates: an outcome's key ``(event_id, type, source_id)`` is a unique
  constraint and is inserted with ``ON CONFLICT DO NOTHING``; a decision's
  ``event_id`` is its primary key;
- schema: the same tables with ``BIGINT`` (microsecond timestamps, identity row
  ids) and ``DOUBLE PRECISION``; ``decisions.seq`` (identity) orders decisions
  by insertion (SQLite's ``rowid``) for :meth:`EventStore.export_increment`;
  ``meta.schema_version`` and the added columns are checked and migrated on open
  under the write lock, so replicas starting together do it once.
"""

from __future__ import annotations

from serving.store import _DDL, EventStore, StoreError
from serving.store_sql import POSTGRES, Connection, PgConnection, pg_ddl

try:
    import psycopg
    from psycopg import conninfo
except ImportError:  # pragma: no cover - the extra is installed by make
    psycopg = None  # type: ignore[assignment]

#: the setting a PostgreSQL store usually comes from (named in its errors)
SETTING = "NBA_STORE_URL"


def redact(url: str) -> str:
    """``url`` without its password (safe to print)."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except Exception:
        return url.split("@", 1)[-1] if "@" in url else url
    user = params.get("user", "")
    host = params.get("host", "")
    port = params.get("port", "")
    db = params.get("dbname", "")
    who = f"{user}@" if user else ""
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{who}{where}/{db}"


def check_url(url: str) -> str:
    """``url`` when it is a well-formed PostgreSQL URL naming a host and a database.

    Raises
    ------
    StoreError
        Naming the setting and what is wrong (without the password).
    """
    if psycopg is None:  # pragma: no cover - the extra is installed by make
        raise StoreError(
            f"{SETTING}: a postgresql:// store needs psycopg (pip install 'nba[postgres]')"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"{SETTING}: {url!r} is not a postgresql:// URL")
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"{SETTING}: malformed PostgreSQL URL {redact(url)!r}: {exc}") from None
    if not params.get("dbname"):
        raise StoreError(
            f"{SETTING}: {redact(url)!r} names no database (postgresql://user@host:port/db)"
        )
    port = params.get("port")
    if port is not None and not str(port).isdigit():
        raise StoreError(f"{SETTING}: {redact(url)!r}: port {port!r} is not a number")
    return url


class PostgresStore(EventStore):
    """The event store in one PostgreSQL database; parameters as :class:`EventStore`
    (``location`` is the ``postgresql://`` URL; ``synchronous`` is checked but the
    server's ``synchronous_commit`` applies; ``busy_timeout_s`` bounds connecting).

    Raises
    ------
    StoreError
        A malformed URL, a server that cannot be reached, a newer schema version.
    """

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        reward_window_days: float = 14.0,
        synchronous: str = "FULL",
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._init_common(reward_window_days, synchronous, busy_timeout_s)
        self.url = check_url(str(url))
        self.path = redact(self.url)
        self.location = self.url
        self._setup_schema()

    def _connect(self) -> Connection:
        try:
            raw = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.busy_timeout_s))
            )
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{SETTING}: cannot connect to {self.path}: {reason}") from None
        return PgConnection(raw)

    def _is_broken(self, con: Connection) -> bool:
        # a server restart or a network cut closes the session: reconnect on next use
        raw = getattr(con, "raw", None)
        return raw is None or bool(raw.closed) or bool(raw.broken)

    def _has_table(self, c: Connection, table: str) -> bool:
        row = c.execute(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema=current_schema() AND table_name=?",
            (table,),
        ).fetchone()
        return row is not None

    def _columns(self, c: Connection, table: str) -> set[str]:
        rows = c.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema=current_schema() AND table_name=?",
            (table,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _ddl(self) -> str:
        return pg_ddl(_DDL)

    def _column_decl(self, decl: str) -> str:
        return pg_ddl(decl)

    def _after_ddl(self, c: Connection) -> None:
        # insertion order of decisions (SQLite's rowid), for export_increment
        if "seq" not in self._columns(c, "decisions"):
            c.execute(
                "ALTER TABLE decisions ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY"
            )
            c.execute("CREATE UNIQUE INDEX IF NOT EXISTS decisions_seq ON decisions (seq)")
