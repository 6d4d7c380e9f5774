"""Contact-rules versions in the event store (table ``rules_versions``).

Every version of the contact rules that was ever in force is kept with its
audit record: who applied it (the API key's name, or the CLI user), when, what
changed (a unified diff of the TOML text against the version it replaced), why
(a required comment) and how (``seed`` at the first service start, ``apply``,
``rollback``). The version in force is the highest one; a rollback appends a
new version holding an earlier text, so history is never rewritten.

Reading the head is one indexed ``max()``: cheap enough for every worker to
check on every request, which is how a change reaches all workers and replicas
without a restart (:class:`serving.rules.RulesKeeper`).

>>> import tempfile
>>> from serving.store import EventStore
>>> store = EventStore(tempfile.mkdtemp() + "/events.db")
>>> head(store)
0
>>> v = append(store, text="name = 'a'\\n", rules_hash="h1", who="ops", action="seed",
...            comment="first", diff="", expected_head=0)
>>> v.version, head(store)
(1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serving.store import EventStore, StoreError, _from_us, _to_us
from serving.store_sql import INTEGRITY_ERRORS

#: how a version came to be
RULES_ACTIONS = ("seed", "apply", "rollback")

_COLS = "version, rules_hash, text, created_us, who, action, comment, diff, based_on"
#: tables that hold versions of this shape: the contact rules, and the journeys
#: (serving/journeys.py), which reuse these functions with ``table="journeys_versions"``
TABLES = ("rules_versions", "journeys_versions")


def _table(table: str) -> str:
    if table not in TABLES:
        raise StoreError(f"versions: unknown table {table!r}")
    return table


class RulesConflictError(StoreError):
    """Another change was applied since the caller read the version in force."""


@dataclass(frozen=True)
class RulesVersion:
    """One stored version of the contact rules and its audit record.

    Attributes
    ----------
    version : int
        1, 2, ... in the order they were applied.
    rules_hash : str
        :attr:`nba.contact.ContactPolicy.version` of the text (what decisions record).
    text : str
        The TOML text as it was applied.
    created : datetime
        When it was applied (UTC).
    who : str
        The API key's name, or the CLI's ``--who``.
    action : {"seed", "apply", "rollback"}
    comment : str
        Why (required for ``apply`` and ``rollback``).
    diff : str
        Unified diff of the text against the version it replaced ("" for a seed).
    based_on : int or None
        The version in force when this one was applied (for a rollback: the
        version whose text it restores is named in the comment and the record).
    """

    version: int
    rules_hash: str
    text: str
    created: datetime
    who: str
    action: str
    comment: str
    diff: str
    based_on: int | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready record without the text (for history listings)."""
        return {
            "version": self.version,
            "rules_hash": self.rules_hash,
            "created": self.created.isoformat(),
            "who": self.who,
            "action": self.action,
            "comment": self.comment,
            "based_on": self.based_on,
            "diff": self.diff,
        }


def _from_row(r: Any) -> RulesVersion:
    return RulesVersion(
        version=int(r[0]),
        rules_hash=r[1],
        text=r[2],
        created=_from_us(r[3]),
        who=r[4],
        action=r[5],
        comment=r[6],
        diff=r[7],
        based_on=None if r[8] is None else int(r[8]),
    )


def head(store: EventStore, table: str = "rules_versions") -> int:
    """The version in force (0 when no version is stored yet)."""
    row = store._conn().execute(f"SELECT max(version) FROM {_table(table)}").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def get(
    store: EventStore, version: int | None = None, table: str = "rules_versions"
) -> RulesVersion | None:
    """A stored version (default: the one in force), or ``None``."""
    con = store._conn()
    t = _table(table)
    if version is None:
        row = con.execute(f"SELECT {_COLS} FROM {t} ORDER BY version DESC LIMIT 1").fetchone()
    else:
        row = con.execute(f"SELECT {_COLS} FROM {t} WHERE version=?", (int(version),)).fetchone()
    return None if row is None else _from_row(row)


def history(
    store: EventStore, limit: int | None = None, table: str = "rules_versions"
) -> list[RulesVersion]:
    """Stored versions, newest first."""
    sql = f"SELECT {_COLS} FROM {_table(table)} ORDER BY version DESC"
    args: tuple[Any, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        args = (int(limit),)
    return [_from_row(r) for r in store._conn().execute(sql, args).fetchall()]


def append(
    store: EventStore,
    *,
    text: str,
    rules_hash: str,
    who: str,
    action: str,
    comment: str,
    diff: str,
    expected_head: int,
    table: str = "rules_versions",
) -> RulesVersion:
    """Store a new version in force, in one transaction, if the head is still
    ``expected_head`` (the version the caller validated and diffed against).

    Raises
    ------
    RulesConflictError
        When another version was stored in the meantime; nothing is written.
    StoreError
        On an unknown ``action`` or an empty ``who``.
    """
    if action not in RULES_ACTIONS:
        raise StoreError(f"rules: action {action!r} is not one of {', '.join(RULES_ACTIONS)}")
    if not who:
        raise StoreError("rules: 'who' must not be empty")
    now_us = _to_us(datetime.now(UTC))
    t = _table(table)
    what = "rules" if t == "rules_versions" else "journeys"
    try:
        with store._write() as c:
            row = c.execute(f"SELECT max(version) FROM {t}").fetchone()
            current = 0 if row is None or row[0] is None else int(row[0])
            if current != expected_head:
                raise RulesConflictError(
                    f"{what}: version {current} is in force now, not {expected_head}; "
                    "another change was applied meanwhile -- review it and try again"
                )
            c.execute(
                f"INSERT INTO {t} ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    current + 1,
                    rules_hash,
                    text,
                    now_us,
                    who,
                    action,
                    comment,
                    diff,
                    current or None,
                ),
            )
    except INTEGRITY_ERRORS:  # pragma: no cover - the head check runs under the lock
        raise RulesConflictError(f"{what}: another change was applied meanwhile") from None
    found = get(store, current + 1, table=t)
    assert found is not None
    return found
