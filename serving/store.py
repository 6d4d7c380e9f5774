"""The service's event store: its interface, on SQLite (embedded default) or PostgreSQL.

It holds HCP profiles (with their declared attributes as JSON), touches (contacts
and interest signals), stated preferences, decisions (every column of the decisions
log plus the ``deferred`` flag), outcomes, rep feedback and catalog snapshots, and exports
them to the Parquet event log the training and evaluation commands read
(:mod:`nba.logs.io`, schemas identical to the simulator's).

The store is split by concern:

- this module: what callers use (:class:`EventStore`, :func:`open_store`, the
  errors and records) and the SQL of every method, written once;
- :mod:`serving.store_sql`: the dialect layer (what SQLite and PostgreSQL spell
  differently);
- :mod:`serving.store_sqlite`: one SQLite file in WAL mode (a path);
- :mod:`serving.store_postgres`: one PostgreSQL database (a ``postgresql://`` URL,
  ``NBA_STORE_URL``), shared by several service replicas;
- :mod:`serving.store_export`: the Parquet export.

Concurrency and durability
--------------------------
- Several worker processes (and threads) may share one database. Each
  process/thread gets its own connection (re-opened after a fork) and takes the
  write lock up front (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
  PostgreSQL) for every write, so writers queue instead of failing half-way.
  On SQLite each write first takes its turn on a lock file beside the database
  (:meth:`EventStore.writer_turn`), so waiting writers are woken when the lock
  is free rather than sleeping in SQLite's busy handler.
- Every write method commits before it returns: what it acknowledged is in the
  database. On SQLite the default ``synchronous="FULL"`` also fsyncs the
  write-ahead log at each commit, so an acknowledged decision survives a power
  loss or an OS crash, not only a killed process. ``synchronous="NORMAL"`` is
  faster and still survives a killed process (SIGKILL), but the last commits may
  be lost if the machine itself goes down; choose it only if that is acceptable.
- A connection must never cross a ``fork()`` (SQLite loses track of its locks
  in the child and committed WAL frames can be lost): the store closes its
  connections before any fork and reopens them lazily on either side.
- Timestamps are stored as integer microseconds since the Unix epoch (UTC).
- Nothing here logs; error messages name events, never HCP identifiers.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from nba.domain import Decision, Outcome
>>> store = EventStore(tempfile.mkdtemp() + "/events.db")
>>> d = Decision("E1", datetime(2026, 1, 5, 9, tzinfo=UTC), "h1", "rep_app", ("email",),
...     "{}", "cat1", ("c1@email", "c2@email"), (0.5, 0.5), 1, "c2@email", 0.5, "uniform", "none")
>>> store.add_decision(d)
>>> store.add_outcome(Outcome("E1", datetime(2026, 1, 6, tzinfo=UTC), "opened"))
True
>>> store.add_outcome(Outcome("E1", datetime(2026, 1, 6, tzinfo=UTC), "opened"))
False
>>> store.counts()["outcomes"]
1
"""

from __future__ import annotations

import json
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from nba.catalog import Catalog
from nba.contact import Feedback
from nba.context import (
    HISTORY_WINDOWS,
    STATED_WINDOW_DAYS,
    History,
    interest_profile,
    topic_channel_key,
)
from nba.domain import (
    ENGAGEMENT_TYPES,
    OUTCOME_CHANNELS,
    REP_FEEDBACK_TYPES,
    Action,
    Decision,
    HCPProfile,
    Outcome,
    SlateSlot,
    StatedPreference,
    Suppression,
    Touch,
    ValidationError,
    ensure_utc,
    outcome_channel_problem,
)
from serving.store_export import StoreExport
from serving.store_sql import INTEGRITY_ERRORS, SQLITE, Connection, Dialect

#: Version 2 added ``outcomes.action_id`` (the suggestion an outcome concerns);
#: version 3 interest signals on touches, declared attributes on HCPs and stated
#: preferences; version 4 reps and their alignment history, the rep's day lists,
#: override touches, slates, the rules applied by each decision, versioned rules,
#: holdout requests answered with no contact, trigger events, rep notifications,
#: trigger suppressions and webhook deliveries; version 5 ``outcomes.hcp_id`` and
#: ``touches.overrides_hcp_id`` (the HCP of the decision an outcome concerns or a touch
#: overrides, so that a state read finds them by one index range of its time window,
#: not by a walk of all the HCP's decisions). Older files are migrated when opened.
SCHEMA_VERSION = 5
#: older schema versions this code migrates in place when it opens their file
MIGRATES_FROM = (1, 2, 3, 4)
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: URL schemes of the PostgreSQL backend (``NBA_STORE_URL``)
PG_SCHEMES = ("postgresql://", "postgres://")  # also in serving/cli_store.py (light import)

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hcps (
    hcp_id TEXT PRIMARY KEY,
    specialty TEXT NOT NULL,
    decile INTEGER NOT NULL,
    market TEXT NOT NULL,
    adoption_stage TEXT NOT NULL,
    consents TEXT NOT NULL,
    no_see INTEGER NOT NULL,
    digital_affinity REAL NOT NULL,
    updated_us INTEGER NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS touches (
    id INTEGER PRIMARY KEY,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    channel TEXT NOT NULL,
    content_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'contact',
    topics TEXT NOT NULL DEFAULT '[]',
    content_ids TEXT NOT NULL DEFAULT '[]',
    dwell_s REAL,
    overrides_event_id TEXT,
    overrides_hcp_id TEXT
);
-- overrides_hcp_id: the HCP of the decision a touch overrides (the touch may be of
-- another HCP), copied at insert (schema version 5), indexed with the time (touches_overrides_hcp)
CREATE INDEX IF NOT EXISTS touches_hcp_ts ON touches (hcp_id, ts_us);
CREATE INDEX IF NOT EXISTS touches_ts ON touches (ts_us);
CREATE TABLE IF NOT EXISTS decisions (
    event_id TEXT PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    hcp_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    channels_requested TEXT NOT NULL,
    context TEXT NOT NULL,
    catalog_version TEXT NOT NULL,
    action_ids TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    chosen_index INTEGER NOT NULL,
    chosen_action_id TEXT NOT NULL,
    propensity REAL NOT NULL,
    policy TEXT NOT NULL,
    model_version TEXT NOT NULL,
    suppressed TEXT NOT NULL,
    activated INTEGER NOT NULL,
    deferred INTEGER NOT NULL,
    activated_us INTEGER,
    rules_version TEXT,
    rules_market TEXT,
    journey TEXT
);
CREATE INDEX IF NOT EXISTS decisions_hcp_ts ON decisions (hcp_id, ts_us);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts_us);
-- an HCP's decisions with their ids from the index alone, for reads that join them on
-- the id (before schema version 5 also the state read's outcomes and overridden ones)
CREATE INDEX IF NOT EXISTS decisions_hcp_event ON decisions (hcp_id, event_id);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    type TEXT NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    late INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    action_id TEXT,
    -- the decision's HCP, copied at insert (schema version 5): an HCP's outcomes of a
    -- time window are one range of outcomes_hcp_ts, not a walk of all its decisions
    hcp_id TEXT,
    UNIQUE (event_id, type, source_id)
);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes (ts_us);
CREATE INDEX IF NOT EXISTS outcomes_hcp_ts ON outcomes (hcp_id, ts_us);
CREATE TABLE IF NOT EXISTS feedback (
    outcome_id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    type TEXT NOT NULL,
    action_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    reason_code TEXT,
    snooze_until_us INTEGER
);
CREATE INDEX IF NOT EXISTS feedback_hcp_ts ON feedback (hcp_id, ts_us);
CREATE TABLE IF NOT EXISTS catalogs (version TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stated_preferences (
    id INTEGER PRIMARY KEY,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    topics TEXT NOT NULL,
    channels TEXT NOT NULL,
    received_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stated_preferences_hcp_ts ON stated_preferences (hcp_id, ts_us);
-- reps, territories (alignment history), the rep's day lists (serving/store_reps.py)
CREATE TABLE IF NOT EXISTS reps (
    rep_id TEXT PRIMARY KEY,
    name TEXT,
    capacity_per_day INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rep_alignment (
    id INTEGER PRIMARY KEY,
    rep_id TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT
);
CREATE INDEX IF NOT EXISTS rep_alignment_hcp ON rep_alignment (hcp_id, valid_from);
CREATE INDEX IF NOT EXISTS rep_alignment_rep ON rep_alignment (rep_id, valid_from);
CREATE TABLE IF NOT EXISTS rep_days (
    rep_id TEXT NOT NULL,
    day TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rep_id, day)
);
CREATE TABLE IF NOT EXISTS rep_day_items (
    rep_id TEXT NOT NULL,
    day TEXT NOT NULL,
    rank INTEGER NOT NULL,
    hcp_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (rep_id, day, rank)
);
CREATE INDEX IF NOT EXISTS rep_day_items_event ON rep_day_items (event_id);
-- holdout lift: requests of holdout HCPs answered with no contact (NBA_HOLDOUT_POLICY=no_contact)
CREATE TABLE IF NOT EXISTS holdout_requests (
    event_id TEXT PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    hcp_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    channels_requested TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS holdout_requests_ts ON holdout_requests (ts_us);
-- contact rules versions (serving/store_rules.py): every version ever in force, with
-- its audit record (the one in force is the highest version)
CREATE TABLE IF NOT EXISTS rules_versions (
    version INTEGER PRIMARY KEY,
    rules_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    comment TEXT NOT NULL,
    diff TEXT NOT NULL,
    based_on INTEGER
);
-- event-triggered journeys: trigger events, rep notifications, trigger suppressions
-- and webhook deliveries (serving/store_triggers.py)
CREATE TABLE IF NOT EXISTS trigger_events (
    event_key TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    channel TEXT NOT NULL,
    content_id TEXT NOT NULL,
    received_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rep_notifications (
    id INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    trigger TEXT NOT NULL,
    event TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    event_ts_us INTEGER NOT NULL,
    due_us INTEGER NOT NULL,
    channel TEXT NOT NULL,
    content_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    read_us INTEGER,
    day_event_id TEXT,
    UNIQUE (event_key, trigger)
);
CREATE INDEX IF NOT EXISTS rep_notifications_rep ON rep_notifications (rep_id, id);
CREATE TABLE IF NOT EXISTS trigger_suppressions (
    id INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    trigger TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    content_id TEXT,
    since_us INTEGER NOT NULL,
    until_us INTEGER NOT NULL,
    UNIQUE (event_key, trigger)
);
CREATE INDEX IF NOT EXISTS trigger_suppressions_hcp ON trigger_suppressions (hcp_id, until_us);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    notification_id INTEGER PRIMARY KEY,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_us INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_until_us INTEGER,
    delivered_us INTEGER,
    gave_up INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_next ON webhook_deliveries (delivered_us, next_us);
-- journeys in force, versioned like the contact rules (serving/journeys.py);
-- rules_hash holds the journeys' version hash
CREATE TABLE IF NOT EXISTS journeys_versions (
    version INTEGER PRIMARY KEY,
    rules_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    comment TEXT NOT NULL,
    diff TEXT NOT NULL,
    based_on INTEGER
);
"""

#: Columns added to tables of an older schema version, with their declaration (SQLite
#: types; PostgreSQL's are derived): a database made by older code gains them (with
#: these defaults) when opened.
#: Version 3: interest signals on touches, declared attributes on HCPs.
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("hcps", "attributes", "TEXT NOT NULL DEFAULT '{}'"),
    ("touches", "kind", "TEXT NOT NULL DEFAULT 'contact'"),
    ("touches", "topics", "TEXT NOT NULL DEFAULT '[]'"),
    ("touches", "content_ids", "TEXT NOT NULL DEFAULT '[]'"),
    ("touches", "dwell_s", "REAL"),
    # a rep's touch that overrode a decision (serving/store_reps.py)
    ("touches", "overrides_event_id", "TEXT"),
    # slates: every slot of a served list (JSON [[action_id, probability], ...]); null: k=1
    ("decisions", "slate", "TEXT"),
    # contact rules: which version and which market's rule set each decision applied
    ("decisions", "rules_version", "TEXT"),
    ("decisions", "rules_market", "TEXT"),
    # journeys: the step that allowed the decision's actions ("<journey>/<step>"), or null
    ("decisions", "journey", "TEXT"),
    # the HCP of the outcome's decision and of the decision a touch overrides (schema
    # version 5; filled by _fill_copied_hcps)
    ("outcomes", "hcp_id", "TEXT"),
    ("touches", "overrides_hcp_id", "TEXT"),
)


def _json_strings(values: Iterable[str]) -> str:
    """``json.dumps(list(values))`` for strings, the same text without the encoder's
    set-up per call (which costs more than encoding a few ids): each string through
    the function ``json.dumps`` escapes strings with.

    >>> _json_strings(["a@email", 'say "hi"', "é"]) == json.dumps(["a@email", 'say "hi"', "é"])
    True
    """
    return "[" + ", ".join(map(_json_str, values)) + "]"


def _json_floats(values: Iterable[float]) -> str:
    """``json.dumps([float(v) for v in values])``, the same text (finite floats are
    written by their ``repr``, as ``json.dumps`` writes them; a list holding a NaN
    or an infinity goes through ``json.dumps`` itself).

    orjson writes the same shortest digits as ``repr`` in one call (a decision's
    dozen ``repr`` calls cost five times more), but not always the same notation:
    it writes ``1e-05`` as ``0.00001``. So its text is taken only when it holds
    neither an exponent nor four zeros after a point (no magnitude below 1e-4,
    where ``repr`` turns to an exponent), with ``json.dumps``'s ``", "`` between
    the numbers; otherwise each number is written by its ``repr``.

    >>> _json_floats([0.1, 1, 2.5e-17]) == json.dumps([0.1, 1.0, 2.5e-17])
    True
    >>> _json_floats([0.5, 4e-05, 0.25]) == json.dumps([0.5, 4e-05, 0.25])
    True
    """
    out = [float(v) for v in values]
    if not all(map(math.isfinite, out)):
        return json.dumps(out)
    text = orjson.dumps(out)
    if b"e" in text or b"0.0000" in text:
        return "[" + ", ".join(map(float.__repr__, out)) + "]"
    return text.replace(b",", b", ").decode()


def _suppressed_json(suppressed: Sequence[Suppression]) -> str:
    """The ``decisions.suppressed`` column: JSON ``[[action_id, rule], ...]``.

    >>> _suppressed_json([Suppression("a@email", "consent")])
    '[["a@email", "consent"]]'
    """
    return (
        "["
        + ", ".join(f"[{_json_str(s.action_id)}, {_json_str(s.rule)}]" for s in suppressed)
        + "]"
    )


class _SharedColumns:
    """The JSON and time columns of many decisions stored together, each distinct
    value written once: a batch's decisions share their time, the channels asked
    for and mostly the eligible actions and suppressions. Each text is what
    :func:`_json_strings`, :func:`_suppressed_json` and :func:`_to_us` give for the
    value (kept by equal value: equal tuples of strings, of suppressions, equal
    instants give equal text)."""

    def __init__(self) -> None:
        self._strings: dict[tuple[str, ...], str] = {}
        self._suppressed: dict[tuple[Suppression, ...], str] = {}
        self._us: dict[datetime, int] = {}

    def strings(self, values: tuple[str, ...]) -> str:
        text = self._strings.get(values)
        if text is None:
            text = self._strings[values] = _json_strings(values)
        return text

    def suppressed(self, values: tuple[Suppression, ...]) -> str:
        text = self._suppressed.get(values)
        if text is None:
            text = self._suppressed[values] = _suppressed_json(values)
        return text

    def us(self, ts: datetime) -> int:
        us = self._us.get(ts)
        if us is None:
            us = self._us[ts] = _to_us(ts)
        return us


def _slate_json(slate: Sequence[SlateSlot]) -> str | None:
    """The ``decisions.slate`` column: JSON ``[[action_id, probability], ...]``; None if empty.

    The text ``json.dumps`` gives (see :func:`_json_strings`)."""
    if not slate:
        return None
    probs = [float(s.probability) for s in slate]
    if not all(map(math.isfinite, probs)):
        return json.dumps([[s.action_id, p] for s, p in zip(slate, probs, strict=True)])
    return (
        "["
        + ", ".join(f"[{_json_str(s.action_id)}, {p!r}]" for s, p in zip(slate, probs, strict=True))
        + "]"
    )


#: Stores of this process; their connections are closed before any fork(), because an
#: SQLite connection carried across fork() corrupts the lock state of the child and
#: can lose committed WAL frames (see https://sqlite.org/howtocorrupt.html, 2.6), and
#: a PostgreSQL connection shared by two processes mixes their protocol messages.
_OPEN_STORES: weakref.WeakSet[EventStore] = weakref.WeakSet()


def _close_connections(conns: list[Connection]) -> None:
    for con in conns:
        try:
            con.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass
    conns.clear()


def _close_stores_before_fork() -> None:
    for store in list(_OPEN_STORES):
        store._close_all()


def _reset_stores_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._conns_lock = threading.Lock()
        store._conns.clear()


os.register_at_fork(before=_close_stores_before_fork, after_in_child=_reset_stores_in_child)


class StoreError(ValidationError):
    """A store call was refused; the message says why (never with an HCP id)."""


class UnknownEventError(StoreError, LookupError):
    """No decision with this ``event_id`` is in the store (HTTP 404)."""


class UnknownHCPError(StoreError, LookupError):
    """The HCP is not in the store (HTTP 404 or, in a bulk import, 422)."""


class DuplicateEventError(StoreError):
    """A decision with this ``event_id`` is already in the store (HTTP 409)."""


@dataclass(frozen=True)
class OutcomeWrite:
    """One outcome for :meth:`EventStore.add_outcomes`, with what
    :meth:`EventStore.add_outcome` takes beside it (same meaning)."""

    outcome: Outcome
    reason_code: str | None = None
    snooze_until: datetime | None = None
    on_stored: Callable[[Connection, str, str], None] | None = None


class OutcomeTarget(NamedTuple):
    """A stored decision as an outcome report is checked against it
    (:meth:`EventStore.outcome_target`)."""

    event_id: str
    ts: datetime
    hcp_id: str
    chosen_action_id: str
    #: when the earliest touch overriding the decision happened, or None
    overridden: datetime | None


def _to_us(ts: datetime) -> int:
    return (ts.astimezone(UTC) - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _day_start_us(day: date) -> int:
    return _to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _bound_us(value: date | datetime, end: bool, name: str) -> int:
    """``since`` inclusive; ``until`` exclusive for datetimes, inclusive for whole dates."""
    if isinstance(value, datetime):
        return _to_us(ensure_utc(value, "EventStore.export", name))
    return _day_start_us(value + timedelta(days=1) if end else value)


def is_store_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or
    ``postgres://``) rather than an SQLite file."""
    return isinstance(location, str) and location.startswith(PG_SCHEMES)


def open_store(
    location: str | Path,
    reward_window_days: float = 14.0,
    synchronous: str = "FULL",
    busy_timeout_s: float = 30.0,
) -> EventStore:
    """The event store at ``location``: a ``postgresql://`` URL opens the
    PostgreSQL backend, anything else is the SQLite file's path.

    Parameters are those of :class:`EventStore` (``synchronous`` applies to SQLite).

    Raises
    ------
    StoreError
        A malformed URL, an unreachable server, a refused schema version.
    """
    if is_store_url(location):
        from serving.store_postgres import PostgresStore

        return PostgresStore(str(location), reward_window_days, synchronous, busy_timeout_s)
    from serving.store_sqlite import SQLiteStore

    return SQLiteStore(location, reward_window_days, synchronous, busy_timeout_s)


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """An outcome as the store keeps it.

    Attributes
    ----------
    outcome : Outcome
    kind : {"response", "feedback"}
        Rep feedback (accepted, dismissed, snoozed) or anything else (HCP responses).
    late : bool
        True when it arrived after the reward window of its decision.
    reason_code, snooze_until
        Rep feedback details (``None`` for HCP responses).
    """

    outcome: Outcome
    kind: str
    late: bool
    reason_code: str | None = None
    snooze_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """An HCP's response to one action of one decision, as the reasons read it.

    Attributes
    ----------
    event_id : str
    action_id : str
        The action the outcome concerns: its ``action_id``, else the decision's chosen one.
    type : str
        A channel-bound outcome type (:data:`nba.domain.OUTCOME_CHANNELS`).
    ts : datetime
        The earliest such outcome of that (decision, action, type).
    """

    event_id: str
    action_id: str
    type: str
    ts: datetime


#: the typed slots of :meth:`EventStore._fetch_parts` (kind: SQL type of its NULLs)
_KINDS = {"i": "BIGINT", "t": "TEXT", "f": "DOUBLE PRECISION"}


class _Part(NamedTuple):
    """One query of an HCP's state: its columns (SQL, kind ``i``/``t``/``f``), the
    rest of the statement (FROM, WHERE, GROUP BY), its order and parameters.

    A named tuple, not a dataclass: the parts of an HCP's state are made for every
    decision, and a frozen dataclass's ``__init__`` cost several times a tuple's.
    ``text``, when not empty, is the part's statement built ahead (the parts of
    :meth:`EventStore._state_parts` are copies of templates that carry it)."""

    cols: tuple[tuple[str, str], ...]
    rest: str
    order: str
    args: tuple[Any, ...] = ()
    limit: int | None = None
    text: str = ""

    def sql(self) -> str:
        """The part as a statement of its own (built once per distinct part shape:
        the parameters are not in the text)."""
        if self.text:
            return self.text
        key = (self.cols, self.rest, self.order, self.limit)
        text = _PART_SQL.get(key)
        if text is None:
            text = f"SELECT {', '.join(c for c, _ in self.cols)} {self.rest} ORDER BY {self.order}"
            text = text if self.limit is None else f"{text} LIMIT {int(self.limit)}"
            if len(_PART_SQL) >= 1024:  # the shapes are few; stay bounded all the same
                _PART_SQL.clear()
            _PART_SQL[key] = text
        return text

    # ``text`` is derived from the rest: two parts are equal when the query is
    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Part):
            return self[:5] == other[:5]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, _Part):
            return self[:5] != other[:5]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self[:5])

    def with_args(self, args: tuple[Any, ...]) -> _Part:
        """This part with other parameters, its statement text built once and kept."""
        return _new_part(_Part, (self[0], self[1], self[2], args, self[4], self[5] or self.sql()))


#: a part from its six fields, without the named tuple's keyword handling
_new_part = tuple.__new__
#: statement text of each part shape (:meth:`_Part.sql`)
_PART_SQL: dict[tuple[tuple[tuple[str, str], ...], str, str, int | None], str] = {}


def _profile_part(hcp_id: str) -> _Part:
    cols = (
        ("hcp_id", "t"),
        ("specialty", "t"),
        ("decile", "i"),
        ("market", "t"),
        ("adoption_stage", "t"),
        ("consents", "t"),
        ("no_see", "i"),
        ("digital_affinity", "f"),
    )
    return _Part(cols, "FROM hcps WHERE hcp_id=?", "hcp_id", (hcp_id,))


_TOUCH_PART_COLS = (
    ("hcp_id", "t"),
    ("ts_us", "i"),
    ("channel", "t"),
    ("content_id", "t"),
    ("origin", "t"),
    ("kind", "t"),
    ("topics", "t"),
    ("content_ids", "t"),
    ("dwell_s", "f"),
)


def _touches_part(hcp_id: str, since_us: int) -> _Part:
    return _Part(
        _TOUCH_PART_COLS,
        "FROM touches WHERE hcp_id=? AND ts_us>=?",
        "ts_us, id",
        (hcp_id, since_us),
    )


def _feedback_part(hcp_id: str, now_us: int, lo_us: int) -> _Part:
    cols = (
        ("hcp_id", "t"),
        ("content_id", "t"),
        ("type", "t"),
        ("ts_us", "i"),
        ("event_id", "t"),
        ("reason_code", "t"),
        ("snooze_until_us", "i"),
    )
    return _Part(
        cols,
        "FROM feedback WHERE hcp_id=? AND type IN ('dismissed', 'snoozed')"
        " AND ts_us<=? AND (ts_us>=? OR snooze_until_us>?)",
        "ts_us, outcome_id",
        (hcp_id, now_us, lo_us, now_us),
    )


def _stated_part(hcp_id: str) -> _Part:
    cols = (
        ("hcp_id", "t"),
        ("ts_us", "i"),
        ("recorded_by", "t"),
        ("topics", "t"),
        ("channels", "t"),
    )
    return _Part(cols, "FROM stated_preferences WHERE hcp_id=?", "ts_us, id", (hcp_id,))


def _extras_part(hcp_id: str, day: date) -> _Part:
    return _Part(
        (("h.attributes", "t"), ("s.topics", "t"), ("s.channels", "t")),
        "FROM hcps h LEFT JOIN stated_preferences s ON s.hcp_id=h.hcp_id"
        " AND s.ts_us>=? AND s.ts_us<? WHERE h.hcp_id=?",
        "s.ts_us DESC, s.id DESC",
        (
            _day_start_us(day - timedelta(days=STATED_WINDOW_DAYS)),
            _day_start_us(day),
            hcp_id,
        ),
    )


def _suppressions_part(hcp_id: str, now_us: int) -> _Part:
    """The trigger suppressions of the HCP in force at ``now_us``
    (:func:`serving.store_triggers.active_suppressions`)."""
    cols = (
        ("trigger", "t"),
        ("channel", "t"),
        ("content_id", "t"),
        ("since_us", "i"),
        ("until_us", "i"),
    )
    return _Part(
        cols,
        "FROM trigger_suppressions WHERE hcp_id=? AND until_us>? AND since_us<=?",
        "id",
        (hcp_id, now_us, now_us),
    )


#: the statement text of :func:`_action_outcomes_part` (built once: the parts of an
#: HCP's state are built for every decision)
_AO_TYPES = tuple(sorted(OUTCOME_CHANNELS))
_AO_ACTION = "COALESCE(o.action_id, d.chosen_action_id)"
_AO_COLS = (("o.event_id", "t"), (_AO_ACTION, "t"), ("o.type", "t"), ("MIN(o.ts_us)", "i"))
_AO_REST = (
    "FROM outcomes o JOIN decisions d ON d.event_id=o.event_id"
    f" WHERE o.hcp_id=? AND o.type IN ({','.join('?' * len(_AO_TYPES))})"
    f" AND o.ts_us>=? AND o.ts_us<=? GROUP BY o.event_id, {_AO_ACTION}, o.type"
)
_AO_ORDER = f"MIN(o.ts_us), {_AO_ACTION}, o.type, o.event_id"


def _action_outcomes_part(hcp_id: str, lo_us: int, hi_us: int) -> _Part:
    return _Part(_AO_COLS, _AO_REST, _AO_ORDER, (hcp_id, *_AO_TYPES, lo_us, hi_us))


def _history_parts(dialect: Dialect, hcp_id: str, day: date) -> dict[str, _Part]:
    """The queries of :meth:`EventStore.history` (see there), by name: those of
    :func:`_history_parts_built`, their statement text built once per dialect (they
    are built for every decision) and their parameters for ``hcp_id`` and ``day``."""
    shapes = _HISTORY_SHAPES.get(dialect)
    if shapes is None:
        built = _history_parts_built(dialect, "", date(2000, 1, 1))
        shapes = _HISTORY_SHAPES[dialect] = {n: p.with_args(p.args) for n, p in built.items()}
    end_us, lo_us, d30_us, _ = _day_bounds(day)
    args = {
        "h_touches": (hcp_id, lo_us, end_us),
        "h_latest": (hcp_id, end_us),
        "h_engaged": (hcp_id, *_ENGAGEMENT_SORTED, d30_us, end_us),
        "h_engaged_at": (hcp_id, *_ENGAGEMENT_SORTED, lo_us, end_us),
        "h_pulls": (hcp_id, lo_us, end_us),
        "h_overridden": (hcp_id, lo_us, end_us),
    }
    return {name: p.with_args(args[name]) for name, p in shapes.items()}


_LONGEST = max(HISTORY_WINDOWS)
#: :func:`_day_bounds` by day (a pure function of the day; one entry a day served)
_DAY_BOUNDS: dict[date, tuple[int, int, int, int]] = {}


def _day_bounds(day: date) -> tuple[int, int, int, int]:
    """The microsecond bounds an HCP's state reads for ``day``: the start of the
    day, of the history's longest window, of its 30 days, and of the stated
    preferences' window (:data:`nba.context.STATED_WINDOW_DAYS`)."""
    found = _DAY_BOUNDS.get(day)
    if found is None:
        found = (
            _day_start_us(day),
            _day_start_us(day - timedelta(days=_LONGEST)),
            _day_start_us(day - timedelta(days=30)),
            _day_start_us(day - timedelta(days=STATED_WINDOW_DAYS)),
        )
        if len(_DAY_BOUNDS) >= 64:  # a service asks for today (and replays for a few days)
            _DAY_BOUNDS.clear()
        _DAY_BOUNDS[day] = found
    return found


_ENGAGEMENT_SORTED = tuple(sorted(ENGAGEMENT_TYPES))
#: the profiles built from rows of the ``hcps`` table, by the row's values
#: (:meth:`EventStore._profile_from`); shared by the stores of the process
_PROFILES: dict[tuple[Any, ...], HCPProfile] = {}
_PROFILES_MAX = 8192
#: the histories built from the history parts' rows, by (day, catalog, rows)
#: (:meth:`EventStore._history_from`), each with the catalog it was built with
_HISTORY_ROWS = ("h_touches", "h_latest", "h_engaged", "h_engaged_at", "h_pulls", "h_overridden")
_HISTORIES: dict[tuple[Any, ...], tuple[Catalog, History]] = {}
_HISTORIES_MAX = 8192
#: the touches built from rows of the ``touches`` table, by the row's values
#: (:meth:`EventStore._touch_from_row`)
_TOUCHES: dict[tuple[Any, ...], Touch] = {}
_TOUCHES_MAX = 32768
#: :func:`_history_parts_built`'s parts per dialect, their parameters left as built
_HISTORY_SHAPES: dict[Dialect, dict[str, _Part]] = {}
#: the other parts of an HCP's state (:meth:`EventStore._state_parts`), their
#: statement text built once, their parameters left as built
_STATE_SHAPES: dict[str, _Part] = {}


def _state_shapes() -> dict[str, _Part]:
    """The templates of :meth:`EventStore._state_parts`'s parts that are not the
    history's (the same for every dialect), built on first use."""
    if not _STATE_SHAPES:
        day = date(2000, 1, 1)
        built = {
            "profile": _profile_part(""),
            "touches": _touches_part("", 0),
            "feedback": _feedback_part("", 0, 0),
            "extras": _extras_part("", day),
            "suppressions": _suppressions_part("", 0),
            "outcomes": _action_outcomes_part("", 0, 0),
            "stated": _stated_part(""),
        }
        _STATE_SHAPES.update({n: p.with_args(p.args) for n, p in built.items()})
    return _STATE_SHAPES


def _history_parts_built(dialect: Dialect, hcp_id: str, day: date) -> dict[str, _Part]:
    """The queries of :meth:`EventStore.history`, built from scratch (see
    :func:`_history_parts`)."""
    longest = max(HISTORY_WINDOWS)
    end_us = _day_start_us(day)
    lo_us = _day_start_us(day - timedelta(days=longest))
    types = sorted(ENGAGEMENT_TYPES)
    marks = ",".join("?" * len(types))
    action = "COALESCE(o.action_id, d.chosen_action_id)"
    engaged = (
        "FROM outcomes o JOIN decisions d ON d.event_id=o.event_id"
        f" WHERE o.hcp_id=? AND o.type IN ({marks})"
        " AND o.ts_us>=? AND o.ts_us{hi_op}? GROUP BY o.event_id, " + action + ", o.type"
    )
    return {
        "h_touches": _Part(
            (("ts_us", "i"), ("channel", "t"), ("content_id", "t")),
            "FROM touches WHERE hcp_id=? AND kind='contact' AND ts_us>=? AND ts_us<?",
            "ts_us, id",
            (hcp_id, lo_us, end_us),
        ),
        # the content of the latest contact before ``day``, however old
        "h_latest": _Part(
            (("content_id", "t"),),
            "FROM touches WHERE hcp_id=? AND kind='contact' AND ts_us<?",
            "ts_us DESC, id DESC",
            (hcp_id, end_us),
            limit=1,
        ),
        # the action engaged with of each (decision, action, engagement type) in 30 days
        "h_engaged": _Part(
            ((action, "t"),),
            engaged.replace("{hi_op}", "<="),
            f"o.event_id, {action}, o.type",
            (hcp_id, *types, _day_start_us(day - timedelta(days=30)), end_us),
        ),
        # ... in 90 days, with the time of the earliest such outcome
        "h_engaged_at": _Part(
            ((action, "t"), ("MIN(o.ts_us)", "i")),
            engaged.replace("{hi_op}", "<"),
            f"o.event_id, {action}, o.type",
            (hcp_id, *types, lo_us, end_us),
        ),
        "h_pulls": _Part(
            (("ts_us", "i"), ("topics", "t")),
            "FROM touches WHERE hcp_id=? AND kind!='contact' AND ts_us>=? AND ts_us<?",
            "ts_us, id",
            (hcp_id, lo_us, end_us),
        ),
        # the HCP's decisions a rep overrode with a touch in the window, each once (the
        # touch may be another HCP's: it carries the overridden decision's HCP)
        "h_overridden": _Part(
            (("COUNT(DISTINCT t.overrides_event_id)", "i"),),
            "FROM touches t JOIN decisions d ON d.event_id=t.overrides_event_id"
            " WHERE t.overrides_hcp_id=? AND t.ts_us>=? AND t.ts_us<?",
            "1",
            (hcp_id, lo_us, end_us),
        ),
    }


@dataclass(frozen=True)
class HCPState:
    """Everything a decision reads about one HCP (:meth:`EventStore.hcp_state`).

    Attributes
    ----------
    profile : HCPProfile or None
        None when the HCP is not in the store.
    touches : list of Touch
        Since the ``since`` given, oldest first (:meth:`EventStore.recent_touches`).
    feedback : list of Feedback
        :meth:`EventStore.recent_feedback` at ``now``.
    history : History
        :meth:`EventStore.history` of ``now``'s day.
    extras : (attributes, stated_topics, stated_channels) or None
        :meth:`EventStore.context_extras` of ``now``'s day.
    trigger_suppressions : list of (trigger, channel, content_id, since, until)
        In force at ``now`` (:func:`serving.store_triggers.active_suppressions`).
    action_outcomes : list of ActionOutcome or None
        Over ``[since, now]``; None when not asked for.
    stated_preferences : list of StatedPreference or None
        None when not asked for.
    """

    profile: HCPProfile | None
    touches: list[Touch]
    feedback: list[Feedback]
    history: History
    extras: tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]] | None
    trigger_suppressions: list[tuple[str, str, str | None, datetime, datetime]]
    action_outcomes: list[ActionOutcome] | None
    stated_preferences: list[StatedPreference] | None


class EventStore(StoreExport):
    """HCP profiles, touches, decisions and outcomes: the store's interface.

    ``EventStore(location, ...)`` opens the backend ``location`` names, as
    :func:`open_store` does: a ``postgresql://`` URL gives a
    :class:`serving.store_postgres.PostgresStore`, a path a
    :class:`serving.store_sqlite.SQLiteStore` (one SQLite file in WAL mode).
    Every method below runs the same SQL on both (:mod:`serving.store_sql`).

    Parameters
    ----------
    location : str or Path
        SQLite database file (created with its parent directory if missing), or
        a ``postgresql://user@host:port/db`` URL.
    reward_window_days : float, default 14
        Outcomes later than ``decision.ts + reward_window_days`` are stored with
        ``late=True`` (the window in force when the outcome is inserted).
    synchronous : {"FULL", "NORMAL", "EXTRA"}, default "FULL"
        SQLite ``synchronous`` pragma; see the module docstring. PostgreSQL
        commits durably as its server is configured (``synchronous_commit``).
    busy_timeout_s : float, default 30
        How long a write waits for another process's lock before failing (SQLite);
        the connection timeout on PostgreSQL.
    """

    #: the SQL spelling of this backend (set by each backend)
    dialect: Dialect = SQLITE
    #: where the store is, for messages (a PostgreSQL URL without its password)
    path: Path | str
    #: what opens this store again (``EventStore(store.location)``)
    location: Path | str

    def __new__(cls, location: str | Path, *args: Any, **kwargs: Any) -> EventStore:
        if cls is EventStore:  # the interface itself: open the backend the location names
            if is_store_url(location):
                from serving.store_postgres import PostgresStore

                return super().__new__(PostgresStore)
            from serving.store_sqlite import SQLiteStore

            return super().__new__(SQLiteStore)
        return super().__new__(cls)

    def _init_common(
        self, reward_window_days: float, synchronous: str, busy_timeout_s: float
    ) -> None:
        """Check and keep the parameters every backend shares; set up connections."""
        if not (isinstance(reward_window_days, int | float) and reward_window_days > 0):
            raise StoreError(
                f"EventStore: reward_window_days must be positive, got {reward_window_days!r}"
            )
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise StoreError(
                f"EventStore: synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}"
            )
        if not busy_timeout_s > 0:
            raise StoreError(f"EventStore: busy_timeout_s must be positive, got {busy_timeout_s}")
        self.reward_window_days = float(reward_window_days)
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = float(busy_timeout_s)
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._conns_lock = threading.Lock()
        self._generation = 0
        _OPEN_STORES.add(self)
        # connections can sit in reference cycles; close them when the store goes
        weakref.finalize(self, _close_connections, self._conns)

    # ------------------------------------------------------- schema (both)
    def _connect(self) -> Connection:
        """A new connection of this backend (one per thread and process)."""
        raise NotImplementedError

    def _has_table(self, c: Connection, table: str) -> bool:
        raise NotImplementedError

    def _is_broken(self, con: Connection) -> bool:
        """Whether ``con`` can no longer be used (then a new one is opened)."""
        return False

    def _columns(self, c: Connection, table: str) -> set[str]:
        raise NotImplementedError

    def _ddl(self) -> str:
        """The DDL statements of :data:`_DDL` in this backend's types."""
        return _DDL

    def _migrate_older(self, c: Connection, version: int) -> None:
        """Backend-specific steps to migrate a database of an older ``version``."""

    def _setup_schema(self) -> None:
        """Check the schema version, migrate an older one, create what is missing
        (one write transaction: all of it or nothing).

        Raises
        ------
        StoreError
            The database has a newer (or unknown) schema version; it is left untouched.
        """
        with self._write() as c:
            # the version is checked before any DDL runs: a newer database is left untouched
            row = (
                c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if self._has_table(c, "meta")
                else None
            )
            if row is not None and int(row[0]) != SCHEMA_VERSION:
                if int(row[0]) not in MIGRATES_FROM:
                    raise StoreError(
                        f"EventStore: {self.path} has schema version {row[0]}, "
                        f"this code reads version {SCHEMA_VERSION}"
                    )
                self._migrate_older(c, int(row[0]))
                self._add_columns(c)
                c.execute(
                    "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
                )
            for stmt in self._ddl().split(";"):
                if stmt.strip():
                    c.execute(stmt)
            # columns added since this database's version was set (a no-op once present)
            self._add_columns(c)
            self._after_ddl(c)
            c.execute(
                "CREATE INDEX IF NOT EXISTS touches_overrides ON touches (overrides_event_id)"
                " WHERE overrides_event_id IS NOT NULL"
            )
            # the touches overriding an HCP's decisions by time (schema version 5)
            c.execute(
                "CREATE INDEX IF NOT EXISTS touches_overrides_hcp ON touches"
                " (overrides_hcp_id, ts_us) WHERE overrides_hcp_id IS NOT NULL"
            )
            self._fill_copied_hcps(c)
            if row is None:
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )

    def _after_ddl(self, c: Connection) -> None:
        """Backend-specific schema steps after the DDL and the added columns."""

    @staticmethod
    def _fill_copied_hcps(c: Connection) -> None:
        """Copy each decision's ``hcp_id`` onto its outcomes (``hcp_id``) and onto the
        touches overriding it (``overrides_hcp_id``) that lack it: every such row of a
        file migrated from a version before 5, and any that a process of an older
        version still running stored after the migration (each open fills those;
        finding no outcome is one search of ``outcomes_hcp_ts``, whose NULLs come
        first, and no touch one walk of the override touches' own index). A row
        whose decision is gone stays null, and is not written again (no read joins it)."""
        c.execute(
            "UPDATE outcomes SET hcp_id=(SELECT d.hcp_id FROM decisions d"
            " WHERE d.event_id=outcomes.event_id) WHERE hcp_id IS NULL"
            " AND EXISTS (SELECT 1 FROM decisions d WHERE d.event_id=outcomes.event_id)"
        )
        c.execute(
            "UPDATE touches SET overrides_hcp_id=(SELECT d.hcp_id FROM decisions d"
            " WHERE d.event_id=touches.overrides_event_id)"
            " WHERE overrides_event_id IS NOT NULL AND overrides_hcp_id IS NULL"
            " AND EXISTS (SELECT 1 FROM decisions d WHERE d.event_id=touches.overrides_event_id)"
        )

    def _add_columns(self, c: Connection) -> None:
        """Add each column of :data:`_ADDED_COLUMNS` the database's tables lack."""
        for table, column, decl in _ADDED_COLUMNS:
            if column not in self._columns(c, table):
                c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {self._column_decl(decl)}")

    def _column_decl(self, decl: str) -> str:
        return decl

    # ------------------------------------------------------------ plumbing
    def _conn(self) -> Connection:
        loc = self._local
        con: Connection | None = getattr(loc, "con", None)
        if (
            con is None
            or getattr(loc, "pid", None) != os.getpid()
            or getattr(loc, "gen", None) != self._generation
            or self._is_broken(con)
        ):
            con = self._connect()
            loc.con, loc.pid, loc.gen = con, os.getpid(), self._generation
            with self._conns_lock:
                self._conns.append(con)
        return con

    def _close_all(self) -> None:
        """Close every connection of this process (all threads); they reopen lazily."""
        with self._conns_lock:
            _close_connections(self._conns)
            self._generation += 1

    def writer_turn(self) -> AbstractContextManager[object]:
        """This thread's turn to write, across the processes sharing the database.

        Every write transaction is taken inside it; a group committer holds it from
        taking its group to committing it (so what arrives while it waits for the
        turn joins the group). Re-entrant within a thread. None here (PostgreSQL's
        writers queue on the transaction's advisory lock); on SQLite a lock file
        (:mod:`serving.writer_turn`).
        """
        return nullcontext()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue), committed on exit."""
        with self.writer_turn():
            con = self._conn()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def add_holdout_requests(self, rows: Sequence[tuple[str, datetime, str, str, str]]) -> None:
        """Record requests of holdout HCPs that got no contact, ``(event_id, ts, hcp_id,
        requester, channels JSON)`` each, in one transaction (serving/store_kpis.py
        reads them for the holdout lift)."""
        if not rows:
            return
        with self._write() as con:
            con.executemany(
                "INSERT OR IGNORE INTO holdout_requests VALUES (?,?,?,?,?)",
                [(e, _to_us(ts), h, r, ch) for e, ts, h, r, ch in rows],
            )

    def close(self) -> None:
        """Close this store's connections in this process (they reopen on next use)."""
        self._close_all()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- HCPs
    @staticmethod
    def _hcp_row(
        h: HCPProfile, now_us: int, attributes: Mapping[str, Any] | None
    ) -> tuple[Any, ...]:
        if not isinstance(h, HCPProfile):
            raise StoreError(f"upsert_hcp: expected an HCPProfile, got {type(h).__name__}")
        attrs = dict(attributes or {})
        if not all(isinstance(k, str) and k for k in attrs):
            raise StoreError("upsert_hcp: attribute names must be non-empty strings")
        try:
            attrs_json = json.dumps(attrs, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"upsert_hcp: attributes are not plain JSON values: {exc}") from None
        return (
            h.hcp_id,
            h.specialty,
            h.decile,
            h.market,
            h.adoption_stage,
            json.dumps(sorted(h.consents)),
            int(h.no_see),
            float(h.digital_affinity),
            now_us,
            attrs_json,
        )

    _UPSERT_HCP = (
        "INSERT INTO hcps (hcp_id, specialty, decile, market, adoption_stage, consents, no_see,"
        " digital_affinity, updated_us, attributes) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (hcp_id) DO UPDATE SET specialty=excluded.specialty,"
        " decile=excluded.decile, market=excluded.market,"
        " adoption_stage=excluded.adoption_stage, consents=excluded.consents,"
        " no_see=excluded.no_see, digital_affinity=excluded.digital_affinity,"
        " updated_us=excluded.updated_us, attributes=excluded.attributes"
    )

    def upsert_hcp(self, hcp: HCPProfile, attributes: Mapping[str, Any] | None = None) -> None:
        """Insert or replace one HCP profile and its declared attributes (committed on
        return). The attributes replace the stored ones (none given: none kept); the
        service checks them against its features config, the store only keeps JSON."""
        row = self._hcp_row(hcp, _to_us(datetime.now(UTC)), attributes)
        with self._write() as c:
            c.execute(self._UPSERT_HCP, row)

    def upsert_hcps(
        self,
        hcps: Iterable[HCPProfile],
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> int:
        """Insert or replace many profiles in one transaction (all or none); returns how
        many. ``attributes``, when given, is aligned with ``hcps``."""
        now_us = _to_us(datetime.now(UTC))
        profiles = list(hcps)
        attrs: Sequence[Mapping[str, Any] | None] = (
            [None] * len(profiles) if attributes is None else attributes
        )
        if len(attrs) != len(profiles):
            raise StoreError(
                f"upsert_hcps: {len(attrs)} attribute sets for {len(profiles)} profiles"
            )
        rows = [self._hcp_row(h, now_us, a) for h, a in zip(profiles, attrs, strict=True)]
        with self._write() as c:
            c.executemany(self._UPSERT_HCP, rows)
        return len(rows)

    def get_hcp_attributes(self, hcp_id: str) -> dict[str, Any] | None:
        """The declared attributes stored with the HCP (``{}`` when none), or ``None``
        when the HCP is not in the store."""
        row = (
            self._conn().execute("SELECT attributes FROM hcps WHERE hcp_id=?", (hcp_id,)).fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    # --------------------------------------------------- stated preferences
    def add_stated_preference(self, pref: StatedPreference) -> None:
        """Keep what an HCP said they want (apart from touches); committed on return.

        Raises
        ------
        StoreError
            When the HCP is not in the store.
        """
        if not isinstance(pref, StatedPreference):
            raise StoreError(
                f"add_stated_preference: expected a StatedPreference, got {type(pref).__name__}"
            )
        with self._write() as c:
            if c.execute("SELECT 1 FROM hcps WHERE hcp_id=?", (pref.hcp_id,)).fetchone() is None:
                raise UnknownHCPError("add_stated_preference: the HCP is not in the store")
            c.execute(
                "INSERT INTO stated_preferences (hcp_id, ts_us, recorded_by, topics, channels,"
                " received_us) VALUES (?,?,?,?,?,?)",
                (
                    pref.hcp_id,
                    _to_us(pref.ts),
                    pref.recorded_by,
                    json.dumps(list(pref.topics)),
                    json.dumps(list(pref.channels)),
                    _to_us(datetime.now(UTC)),
                ),
            )

    def stated_preferences(self, hcp_id: str) -> list[StatedPreference]:
        """Every stated preference recorded for the HCP, oldest first."""
        return self._stated_from(self._rows(_stated_part(hcp_id)))

    @staticmethod
    def _stated_from(rows: Sequence[Sequence[Any]]) -> list[StatedPreference]:
        return [
            StatedPreference(
                r[0], _from_us(r[1]), r[2], tuple(json.loads(r[3])), tuple(json.loads(r[4]))
            )
            for r in rows
        ]

    def get_hcp(self, hcp_id: str) -> HCPProfile | None:
        """The stored profile, or ``None``."""
        return self._profile_from(self._rows(_profile_part(hcp_id)))

    @staticmethod
    def _profile_from(rows: Sequence[Sequence[Any]]) -> HCPProfile | None:
        if not rows:
            return None
        row = rows[0]
        # a profile is immutable and a function of its row alone: the one built from
        # an equal row is given again (keyed on the whole row, never stale); an
        # affinity of zero is left out, as -0.0 and 0.0 are equal keys
        key = tuple(row) if row[7] else None
        found = _PROFILES.get(key) if key is not None else None
        if found is not None:
            return found
        profile = HCPProfile(
            hcp_id=row[0],
            specialty=row[1],
            decile=int(row[2]),
            market=row[3],
            adoption_stage=row[4],
            consents=frozenset(json.loads(row[5])),
            no_see=bool(row[6]),
            digital_affinity=float(row[7]),
        )
        if key is not None:
            if len(_PROFILES) >= _PROFILES_MAX:  # bounded: start again when full
                _PROFILES.clear()
            _PROFILES[key] = profile
        return profile

    def _rows(self, part: _Part) -> list[Any]:
        """The rows of one query part, run on its own."""
        return list(self._conn().execute(part.sql(), part.args).fetchall())

    def _fetch_parts(self, parts: Mapping[str, _Part]) -> dict[str, list[tuple[Any, ...]]]:
        """The rows of several query parts in ONE statement (one round trip): each
        part's rows tagged and numbered in its own order, its columns placed in
        typed slots (integers, texts, floats), the parts joined by ``UNION ALL``;
        the rows are given back per part exactly as :meth:`_rows` would give them."""
        names = list(parts)
        width = {
            k: max(sum(1 for _, kk in p.cols if kk == k) for p in parts.values()) for k in _KINDS
        }
        selects: list[str] = []
        args: list[Any] = []
        for n, name in enumerate(names):
            p = parts[name]
            slots: dict[str, list[str]] = {k: [] for k in _KINDS}
            for expr, k in p.cols:
                slots[k].append(expr)
            cols = [f"{n} AS tag", f"ROW_NUMBER() OVER (ORDER BY {p.order}) AS rn"]
            for k in _KINDS:
                filled = slots[k] + [f"CAST(NULL AS {_KINDS[k]})"] * (width[k] - len(slots[k]))
                cols += [f"{e} AS {k}{j}" for j, e in enumerate(filled)]
            inner = f"SELECT {', '.join(cols)} {p.rest}"
            if p.limit is not None:
                inner = f"SELECT * FROM ({inner}) AS part{n} WHERE rn <= {int(p.limit)}"
            selects.append(inner)
            args.extend(p.args)
        sql = " UNION ALL ".join(selects) + " ORDER BY tag, rn"
        out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in names}
        offsets = {"i": 2, "t": 2 + width["i"], "f": 2 + width["i"] + width["t"]}
        for r in self._conn().execute(sql, args).fetchall():
            p = parts[names[int(r[0])]]
            seen = dict.fromkeys(_KINDS, 0)
            vals = []
            for _, k in p.cols:
                vals.append(r[offsets[k] + seen[k]])
                seen[k] += 1
            out[names[int(r[0])]].append(tuple(vals))
        return out

    def _state_parts(
        self, hcp_id: str, now: datetime, since: datetime, evidence: bool
    ) -> dict[str, _Part]:
        """The query parts of :meth:`hcp_state` (``now`` and ``since`` in UTC)."""
        day = now.date()
        now_us = _to_us(now)
        since_us = _to_us(since)
        # the parts of _profile_part, _touches_part, ... with these parameters, copied
        # from templates whose statement text is built (a decision makes them all)
        shapes = _state_shapes()
        bounds = _day_bounds(day)
        parts: dict[str, _Part] = {
            "profile": shapes["profile"].with_args((hcp_id,)),
            "touches": shapes["touches"].with_args((hcp_id, since_us)),
            "feedback": shapes["feedback"].with_args((hcp_id, now_us, -(2**62), now_us)),
            "extras": shapes["extras"].with_args((bounds[3], bounds[0], hcp_id)),
            "suppressions": shapes["suppressions"].with_args((hcp_id, now_us, now_us)),
        }
        parts.update(_history_parts(self.dialect, hcp_id, day))
        if evidence:
            parts["outcomes"] = shapes["outcomes"].with_args((hcp_id, *_AO_TYPES, since_us, now_us))
            parts["stated"] = shapes["stated"].with_args((hcp_id,))
        return parts

    def _fetch_state_parts(
        self, parts: Mapping[str, _Part]
    ) -> Mapping[str, Sequence[tuple[Any, ...]]]:
        """The rows of :meth:`hcp_state`'s parts, as :meth:`_fetch_parts` gives them
        (a backend may run fewer statements for the same rows)."""
        return self._fetch_parts(parts)

    def hcp_state(
        self,
        hcp_id: str,
        now: datetime,
        since: datetime,
        catalog: Catalog,
        evidence: bool = True,
    ) -> HCPState:
        """Everything a decision reads about one HCP, in one round trip to the
        database (one statement; on SQLite, which has no round trip to save, its
        parts as their own statements in one read transaction:
        :meth:`serving.store_sqlite.SQLiteStore._fetch_parts`): the profile, the
        touches since ``since``, the feedback as
        :meth:`recent_feedback` gives it at ``now``, the :meth:`history` and
        :meth:`context_extras` of ``now``'s day, the trigger suppressions in force at
        ``now`` and, with ``evidence``, :meth:`action_outcomes` over ``[since, now]``
        and :meth:`stated_preferences`. Each field equals what its own method
        returns (the same SQL and the same row handling).

        Raises
        ------
        ValidationError
            When ``now`` or ``since`` is not a timezone-aware datetime.
        """
        now = ensure_utc(now, "hcp_state", "now")
        since = ensure_utc(since, "hcp_state", "since")
        rows = self._fetch_state_parts(self._state_parts(hcp_id, now, since, evidence))
        return self._state_from(rows, now.date(), catalog, evidence)

    def hcp_states(
        self,
        hcp_ids: Sequence[str],
        now: datetime,
        since: datetime,
        catalog: Catalog,
        evidence: bool = True,
    ) -> dict[str, HCPState]:
        """:meth:`hcp_state` of many HCPs at one ``now`` (a batch of decisions): each
        HCP's state equals its own :meth:`hcp_state`. HCPs not in the store are left
        out. Here one :meth:`hcp_state` per HCP; a backend may read them all with a
        few set-based statements (:meth:`serving.store_sqlite.SQLiteStore.hcp_states`).

        Raises
        ------
        ValidationError
            When ``now`` or ``since`` is not a timezone-aware datetime.
        """
        out: dict[str, HCPState] = {}
        for h in hcp_ids:
            state = self.hcp_state(h, now, since, catalog, evidence)
            if state.profile is not None:
                out[h] = state
        return out

    def _state_from(
        self,
        rows: Mapping[str, Sequence[tuple[Any, ...]]],
        day: date,
        catalog: Catalog,
        evidence: bool,
    ) -> HCPState:
        """The :class:`HCPState` of the rows of its parts (:meth:`_state_parts`)."""
        return HCPState(
            profile=self._profile_from(rows["profile"]),
            touches=[self._touch_from_row(r) for r in rows["touches"]],
            feedback=self._feedback_from(rows["feedback"]),
            history=self._history_from(rows, day, catalog),
            extras=self._extras_from(rows["extras"]),
            trigger_suppressions=[
                (r[0], r[1], r[2], _from_us(r[3]), _from_us(r[4])) for r in rows["suppressions"]
            ],
            action_outcomes=self._action_outcomes_from(rows["outcomes"]) if evidence else None,
            stated_preferences=self._stated_from(rows["stated"]) if evidence else None,
        )

    # ------------------------------------------------------------- catalog
    def add_catalog(self, catalog: Catalog) -> bool:
        """Keep a snapshot of ``catalog`` under its version; False if already stored.
        Exports write the snapshots their decisions refer to."""
        with self._write() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO catalogs (version, snapshot) VALUES (?, ?)",
                (catalog.version, catalog.snapshot_json()),
            )
            return cur.rowcount == 1

    def get_catalog(self, version: str) -> Catalog | None:
        """The stored catalog snapshot of ``version``, or ``None``."""
        row = (
            self._conn()
            .execute("SELECT snapshot FROM catalogs WHERE version=?", (version,))
            .fetchone()
        )
        if row is None:
            return None
        return Catalog.from_dict(json.loads(row[0]), source=f"{self.path}:catalog/{version}")

    # ------------------------------------------------------------- touches
    @staticmethod
    def _touch_row(t: Touch) -> tuple[Any, ...]:
        if not isinstance(t, Touch):
            raise StoreError(f"add_touch: expected a Touch, got {type(t).__name__}")
        return (
            t.hcp_id,
            _to_us(t.ts),
            t.channel,
            t.content_id,
            t.origin,
            t.kind,
            json.dumps(list(t.topics)),
            json.dumps(list(t.content_ids)),
            t.dwell_s,
        )

    _TOUCH_COLS = "hcp_id, ts_us, channel, content_id, origin, kind, topics, content_ids, dwell_s"
    _INSERT_TOUCH = f"INSERT INTO touches ({_TOUCH_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"

    @staticmethod
    def _touch_from_row(r: Sequence[Any]) -> Touch:
        # a touch is immutable and a function of its row alone: the one built from an
        # equal row is given again (keyed on the whole row, never stale); a dwell of
        # zero is left out, as -0.0 and 0.0 are equal keys
        key = tuple(r[:9]) if r[8] is None or r[8] else None
        found = _TOUCHES.get(key) if key is not None else None
        if found is not None:
            return found
        touch = Touch(
            r[0],
            _from_us(r[1]),
            r[2],
            r[3],
            r[4],
            r[5],
            () if r[6] == "[]" else tuple(json.loads(r[6])),
            () if r[7] == "[]" else tuple(json.loads(r[7])),
            None if r[8] is None else float(r[8]),
        )
        if key is not None:
            if len(_TOUCHES) >= _TOUCHES_MAX:  # bounded: start again when full
                _TOUCHES.clear()
            _TOUCHES[key] = touch
        return touch

    def add_touch(self, touch: Touch) -> None:
        """Record one touch (ours or external); committed on return."""
        row = self._touch_row(touch)
        with self._write() as c:
            c.execute(self._INSERT_TOUCH, row)

    def insert_touch(self, c: Connection, touch: Touch) -> None:
        """Record one touch inside the caller's open transaction on ``c`` (an
        ``on_stored`` hook's); committed with it."""
        c.execute(self._INSERT_TOUCH, self._touch_row(touch))

    def add_touches(self, touches: Iterable[Touch], known_hcps_only: bool = False) -> int:
        """Record many touches in one transaction (all or none); returns how many.

        Parameters
        ----------
        touches : iterable of Touch
        known_hcps_only : bool, default False
            Refuse the whole batch when any touch is of an HCP the store does not
            hold (checked inside the writing transaction).

        Raises
        ------
        UnknownHCPError
            With ``known_hcps_only``: names the first such touch by its position
            (1-based), never by HCP id; nothing is stored.
        """
        rows = [self._touch_row(t) for t in touches]
        with self._write() as c:
            if known_hcps_only and rows:
                ids = sorted({r[0] for r in rows})
                known: set[str] = set()
                for lo in range(0, len(ids), 500):
                    chunk = ids[lo : lo + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT hcp_id FROM hcps WHERE hcp_id IN ({marks})"
                    known.update(r[0] for r in c.execute(sql, chunk))
                for i, r in enumerate(rows):
                    if r[0] not in known:
                        raise UnknownHCPError(
                            f"touch {i + 1}: its HCP is not in the store; nothing was stored"
                        )
            c.executemany(self._INSERT_TOUCH, rows)
        return len(rows)

    def recent_touches(self, hcp_id: str, since: datetime) -> list[Touch]:
        """Touches of the HCP with ``ts >= since``, oldest first."""
        since_us = _to_us(ensure_utc(since, "recent_touches", "since"))
        return [self._touch_from_row(r) for r in self._rows(_touches_part(hcp_id, since_us))]

    # ----------------------------------------------------------- decisions
    @staticmethod
    def _decision_row(
        d: Decision, deferred: bool, shared: _SharedColumns | None = None
    ) -> tuple[Any, ...]:
        """The ``decisions`` row of ``d``; ``shared`` (one per call of
        :meth:`add_decisions`) writes the columns its decisions share once per
        distinct value, the same text."""
        if not isinstance(d, Decision):
            raise StoreError(f"add_decision: expected a Decision, got {type(d).__name__}")
        if deferred and d.activated:
            raise StoreError(
                f"add_decision: decision '{d.event_id}' is deferred but marked activated"
            )
        if shared is None:
            ts_us = _to_us(d.ts)
            channels = _json_strings(d.channels_requested)
            action_ids = _json_strings(d.action_ids)
            suppressed = _suppressed_json(d.suppressed)
        else:
            ts_us = shared.us(d.ts)
            channels = shared.strings(d.channels_requested)
            action_ids = shared.strings(d.action_ids)
            suppressed = shared.suppressed(d.suppressed)
        return (
            d.event_id,
            ts_us,
            d.hcp_id,
            d.requester,
            channels,
            d.context,
            d.catalog_version,
            action_ids,
            _json_floats(d.probabilities),
            int(d.chosen_index),
            d.chosen_action_id,
            float(d.propensity),
            d.policy,
            d.model_version,
            suppressed,
            int(d.activated),
            int(deferred),
            ts_us if d.activated else None,
            _slate_json(d.slate),
            d.rules_version,
            d.rules_market,
            d.journey,
        )

    _INSERT_DECISION = (
        "INSERT INTO decisions (event_id, ts_us, hcp_id, requester, channels_requested, context,"
        " catalog_version, action_ids, probabilities, chosen_index, chosen_action_id, propensity,"
        " policy, model_version, suppressed, activated, deferred, activated_us, slate,"
        " rules_version, rules_market, journey)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )

    def add_decision(self, decision: Decision, deferred: bool = False) -> None:
        """Store one decision; durable when this returns.

        Parameters
        ----------
        decision : Decision
            With ``activated=False`` when ``deferred``.
        deferred : bool
            Made with ``defer_activation``: it does not teach the model until
            :meth:`activate` is called.

        Raises
        ------
        DuplicateEventError
            When the ``event_id`` is already stored.
        """
        row = self._decision_row(decision, deferred)
        try:
            with self._write() as c:
                c.execute(self._INSERT_DECISION, row)
        except INTEGRITY_ERRORS:
            raise DuplicateEventError(f"decision '{decision.event_id}' is already stored") from None

    def add_decisions(self, decisions: Sequence[Decision], deferred: bool = False) -> int:
        """Store many decisions in one transaction (all or none); returns how many.

        Raises
        ------
        DuplicateEventError
            When any ``event_id`` is already stored or repeated; nothing is stored then.
        """
        shared = _SharedColumns()
        rows = [self._decision_row(d, deferred, shared) for d in decisions]
        ids = [r[0] for r in rows]
        if len(set(ids)) != len(ids):
            dup = next(e for e in ids if ids.count(e) > 1)
            raise DuplicateEventError(f"add_decisions: event '{dup}' appears twice in the batch")
        try:
            with self._write() as c:
                c.executemany(self._INSERT_DECISION, rows)
        except INTEGRITY_ERRORS:
            raise DuplicateEventError(
                "add_decisions: a decision of the batch is already stored; nothing was stored"
            ) from None
        return len(rows)

    _DECISION_COLS = (
        "event_id, ts_us, hcp_id, requester, channels_requested, context, catalog_version,"
        " action_ids, probabilities, chosen_index, chosen_action_id, propensity, policy,"
        " model_version, suppressed, activated, slate, rules_version, rules_market, journey"
    )

    @staticmethod
    def _decision_from_row(r: Sequence[Any]) -> Decision:
        return Decision(
            event_id=r[0],
            ts=_from_us(r[1]),
            hcp_id=r[2],
            requester=r[3],
            channels_requested=tuple(json.loads(r[4])),
            context=r[5],
            catalog_version=r[6],
            action_ids=tuple(json.loads(r[7])),
            probabilities=tuple(float(p) for p in json.loads(r[8])),
            chosen_index=int(r[9]),
            chosen_action_id=r[10],
            propensity=float(r[11]),
            policy=r[12],
            model_version=r[13],
            suppressed=tuple(Suppression(a, rule) for a, rule in json.loads(r[14])),
            activated=bool(r[15]),
            slate=tuple(SlateSlot(a, float(p)) for a, p in json.loads(r[16] or "[]")),
            rules_version=r[17],
            rules_market=r[18],
            journey=r[19],
        )

    def get_decision(self, event_id: str) -> Decision | None:
        """The stored decision (``activated`` as it is now), or ``None``."""
        row = (
            self._conn()
            .execute(f"SELECT {self._DECISION_COLS} FROM decisions WHERE event_id=?", (event_id,))
            .fetchone()
        )
        return None if row is None else self._decision_from_row(row)

    def outcome_target(self, event_id: str) -> OutcomeTarget | None:
        """What an outcome report is checked against before its write: the decision's
        time, HCP and chosen action, and when the earliest touch overriding it
        happened (``None`` when none did); ``None`` for an unknown decision.

        One statement (one read of one snapshot): what :meth:`get_decision` and the
        earliest of the ``touches`` whose ``overrides_event_id`` is the decision
        give, without building the whole decision (its JSON columns parsed, its
        fields checked).
        """
        row = (
            self._conn()
            .execute(
                "SELECT d.ts_us, d.hcp_id, d.chosen_action_id, (SELECT MIN(t.ts_us) FROM"
                " touches t WHERE t.overrides_event_id=d.event_id) FROM decisions d"
                " WHERE d.event_id=?",
                (event_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return OutcomeTarget(
            event_id,
            _from_us(row[0]),
            row[1],
            row[2],
            None if row[3] is None else _from_us(row[3]),
        )

    def is_deferred(self, event_id: str) -> bool:
        """Whether the decision was made with deferred activation.

        Raises
        ------
        UnknownEventError
        """
        row = (
            self._conn()
            .execute("SELECT deferred FROM decisions WHERE event_id=?", (event_id,))
            .fetchone()
        )
        if row is None:
            raise UnknownEventError(f"no decision with event id '{event_id}'")
        return bool(row[0])

    def activate(self, event_id: str, at: datetime | None = None) -> bool:
        """Mark a decision activated (it may now teach the model).

        Returns
        -------
        bool
            True when it was **already** activated (nothing changed), False when
            this call activated it.

        Raises
        ------
        UnknownEventError
        """
        at_us = _to_us(ensure_utc(at, "activate", "at") if at else datetime.now(UTC))
        with self._write() as c:
            cur = c.execute(
                "UPDATE decisions SET activated=1, activated_us=? WHERE event_id=? AND activated=0",
                (at_us, event_id),
            )
            if cur.rowcount == 1:
                return False
            if c.execute("SELECT 1 FROM decisions WHERE event_id=?", (event_id,)).fetchone():
                return True
        raise UnknownEventError(f"no decision with event id '{event_id}'")

    # ------------------------------------------------------------ outcomes
    def add_outcome(
        self,
        outcome: Outcome,
        reason_code: str | None = None,
        snooze_until: datetime | None = None,
        on_stored: Callable[[Connection, str, str], None] | None = None,
    ) -> bool:
        """Store an outcome of a stored decision; durable when this returns.

        Idempotent on ``(event_id, type, source_id)``. ``outcome.action_id``
        (default: the chosen action) must be one of the decision's actions, and
        the outcome's type must be able to happen on that action's channel
        (:func:`nba.domain.outcome_channel_problem`). Rep feedback types
        (:data:`nba.domain.REP_FEEDBACK_TYPES`) are also kept apart, with their
        reason code and snooze date, for :meth:`recent_feedback`.

        Parameters
        ----------
        outcome : Outcome
        reason_code : str, optional
            Only for rep feedback (why a suggestion was dismissed).
        snooze_until : datetime, optional
            Only for ``snoozed``; must be after the outcome's ``ts``.
        on_stored : callable, optional
            ``(connection, hcp_id, action_id)`` called in the same transaction when
            the outcome is new (the triggers it fires are written with it, or nothing).

        Returns
        -------
        bool
            False when the same (event, type, source_id) was already stored.

        Raises
        ------
        UnknownEventError
            No such decision.
        StoreError
            The outcome precedes its decision, names an action the decision did
            not offer, cannot happen on that action's channel, or feedback
            details are given for an outcome that is not rep feedback.
        """
        until_us = self._check_outcome(outcome, reason_code, snooze_until)
        with self._write() as c:
            return self._insert_outcome(c, outcome, reason_code, until_us, on_stored)

    def add_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool | Exception]:
        """Store many outcomes in one transaction (one fsync), each on its own.

        Every outcome is checked and stored exactly as :meth:`add_outcome` would
        (same idempotency key, same errors), inside its own savepoint: one that
        fails is rolled back alone and the others are still committed. Durable
        when this returns.

        Parameters
        ----------
        writes : sequence of OutcomeWrite
            The outcomes with their feedback details and ``on_stored`` hooks.

        Returns
        -------
        list of bool or Exception
            One entry per write, in order: True when stored, False when the same
            (event, type, source_id) was already stored (also earlier in the same
            call), or the exception :meth:`add_outcome` would have raised for it.

        Raises
        ------
        sqlite3.Error or psycopg.Error
            Only when the shared transaction itself cannot begin or commit; then
            nothing of this call is stored.
        """
        results: list[bool | Exception] = []
        checked: list[int | None] = []
        for w in writes:
            try:
                checked.append(self._check_outcome(w.outcome, w.reason_code, w.snooze_until))
                results.append(False)
            except StoreError as exc:
                checked.append(None)
                results.append(exc)
        todo = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
        if not todo:
            return results
        with self._write() as c:
            for i in todo:
                w = writes[i]
                c.execute("SAVEPOINT nba_outcome")
                try:
                    results[i] = self._insert_outcome(
                        c, w.outcome, w.reason_code, checked[i], w.on_stored
                    )
                except Exception as exc:  # this outcome only; the others go on
                    c.execute("ROLLBACK TO nba_outcome")
                    results[i] = exc
                c.execute("RELEASE nba_outcome")
        return results

    @staticmethod
    def _check_outcome(
        outcome: Outcome, reason_code: str | None, snooze_until: datetime | None
    ) -> int | None:
        """The checks that need no database; returns the snooze end in microseconds."""
        if not isinstance(outcome, Outcome):
            raise StoreError(f"add_outcome: expected an Outcome, got {type(outcome).__name__}")
        is_feedback = outcome.type in REP_FEEDBACK_TYPES
        where = f"outcome '{outcome.type}' of event '{outcome.event_id}'"
        if not is_feedback and (reason_code is not None or snooze_until is not None):
            raise StoreError(f"{where}: reason_code/snooze_until are only for rep feedback")
        until_us: int | None = None
        if snooze_until is not None:
            if outcome.type != "snoozed":
                raise StoreError(f"{where}: snooze_until is only for 'snoozed'")
            snooze_until = ensure_utc(snooze_until, where, "snooze_until")
            if snooze_until <= outcome.ts:
                raise StoreError(f"{where}: snooze_until {snooze_until} is not after its ts")
            until_us = _to_us(snooze_until)
        return until_us

    def _insert_outcome(
        self,
        c: Connection,
        outcome: Outcome,
        reason_code: str | None,
        until_us: int | None,
        on_stored: Callable[[Connection, str, str], None] | None,
    ) -> bool:
        """Check ``outcome`` against its decision and insert it, in ``c``'s transaction."""
        is_feedback = outcome.type in REP_FEEDBACK_TYPES
        where = f"outcome '{outcome.type}' of event '{outcome.event_id}'"
        ts_us = _to_us(outcome.ts)
        window_us = int(self.reward_window_days * 86_400 * 1_000_000)
        row = c.execute(
            "SELECT ts_us, hcp_id, chosen_action_id, action_ids, slate FROM decisions"
            " WHERE event_id=?",
            (outcome.event_id,),
        ).fetchone()
        if row is None:
            raise UnknownEventError(f"no decision with event id '{outcome.event_id}'")
        d_us, hcp_id, chosen, action_ids, slate = row
        if ts_us < d_us:
            raise StoreError(
                f"{where}: ts {outcome.ts.isoformat()} is before its decision "
                f"({_from_us(d_us).isoformat()})"
            )
        target = chosen if outcome.action_id is None else outcome.action_id
        offered = json.loads(action_ids)
        if target not in offered:
            raise StoreError(
                f"{where}: action_id '{target}' was not offered in this decision "
                f"(not one of its {len(offered)} eligible actions)"
            )
        shown = [a for a, _ in json.loads(slate)] if slate else None
        if shown is not None and target not in shown:
            raise StoreError(
                f"{where}: action_id '{target}' was not shown in this decision's list "
                f"(its {len(shown)} slots: {', '.join(shown)})"
            )
        _, sep, channel = target.rpartition("@")
        problem = outcome_channel_problem(outcome.type, channel) if sep else None
        if problem is not None:
            raise StoreError(f"{where}: action '{target}': {problem}")
        cur = c.execute(
            "INSERT OR IGNORE INTO outcomes (event_id, ts_us, type, value, source, source_id,"
            " kind, late, received_us, action_id, hcp_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " RETURNING id",
            (
                outcome.event_id,
                ts_us,
                outcome.type,
                float(outcome.value),
                outcome.source,
                outcome.source_id,
                "feedback" if is_feedback else "response",
                int(ts_us - d_us > window_us),
                _to_us(datetime.now(UTC)),
                outcome.action_id,
                hcp_id,  # the decision's (schema version 5): see outcomes_hcp_ts
            ),
        )
        inserted = cur.fetchone()
        if inserted is None:  # the same (event, type, source_id) is already stored
            return False
        if is_feedback:
            c.execute(
                "INSERT INTO feedback (outcome_id, event_id, hcp_id, ts_us, type, action_id,"
                " content_id, reason_code, snooze_until_us) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    int(inserted[0]),
                    outcome.event_id,
                    hcp_id,
                    ts_us,
                    outcome.type,
                    target,
                    Action.parse(target).content_id,
                    reason_code,
                    until_us,
                ),
            )
        if on_stored is not None:
            on_stored(c, hcp_id, target)
        return True

    def outcomes_of(self, event_id: str) -> list[StoredOutcome]:
        """Every stored outcome of one decision, in time order."""
        return self._stored_outcomes("o.event_id=?", (event_id,))

    def recent_outcomes(self, hcp_id: str, since: datetime) -> list[StoredOutcome]:
        """Outcomes of the HCP's decisions with ``ts >= since``, in time order."""
        since_us = _to_us(ensure_utc(since, "recent_outcomes", "since"))
        return self._stored_outcomes("d.hcp_id=? AND o.ts_us>=?", (hcp_id, since_us))

    def action_outcomes(self, hcp_id: str, since: datetime, until: datetime) -> list[ActionOutcome]:
        """The HCP's responses (channel-bound outcome types: delivered, opened, attended...)
        stamped in ``[since, until]``, one per (decision, action concerned, type), joined
        to the action they concern; in time order. One query.

        Raises
        ------
        ValidationError
            When ``since`` or ``until`` is not a timezone-aware datetime.
        """
        lo = _to_us(ensure_utc(since, "action_outcomes", "since"))
        hi = _to_us(ensure_utc(until, "action_outcomes", "until"))
        return self._action_outcomes_from(self._rows(_action_outcomes_part(hcp_id, lo, hi)))

    @staticmethod
    def _action_outcomes_from(rows: Sequence[Sequence[Any]]) -> list[ActionOutcome]:
        return [ActionOutcome(r[0], r[1], r[2], _from_us(r[3])) for r in rows]

    def _stored_outcomes(self, where: str, args: tuple[Any, ...]) -> list[StoredOutcome]:
        rows = (
            self._conn()
            .execute(
                "SELECT o.event_id, o.ts_us, o.type, o.value, o.source, o.source_id, o.kind,"
                " o.late, f.reason_code, f.snooze_until_us, o.action_id FROM outcomes o"
                " JOIN decisions d ON d.event_id=o.event_id"
                " LEFT JOIN feedback f ON f.outcome_id=o.id"
                f" WHERE {where} ORDER BY o.ts_us, o.id",
                args,
            )
            .fetchall()
        )
        return [
            StoredOutcome(
                outcome=Outcome(r[0], _from_us(r[1]), r[2], float(r[3]), r[4], r[5], r[10]),
                kind=r[6],
                late=bool(r[7]),
                reason_code=r[8],
                snooze_until=None if r[9] is None else _from_us(r[9]),
            )
            for r in rows
        ]

    def recent_feedback(
        self, hcp_id: str, now: datetime, lookback_days: float | None = None
    ) -> list[Feedback]:
        """Dismissals and snoozes of the HCP given at or before ``now``, oldest first.

        With ``lookback_days``, only those given in ``[now - lookback_days, now]``
        plus any snooze still running at ``now``; by default all of them (they are
        few per HCP). The contact policy decides which still apply.
        """
        now_us = _to_us(ensure_utc(now, "recent_feedback", "now"))
        if lookback_days is None:
            lo_us = -(2**62)
        else:
            if not lookback_days >= 0:
                raise StoreError(
                    f"recent_feedback: lookback_days must be >= 0, not {lookback_days}"
                )
            lo_us = now_us - int(lookback_days * 86_400 * 1_000_000)
        return self._feedback_from(self._rows(_feedback_part(hcp_id, now_us, lo_us)))

    @staticmethod
    def _feedback_from(rows: Sequence[Sequence[Any]]) -> list[Feedback]:
        return [
            Feedback(
                hcp_id=r[0],
                content_id=r[1],
                type=r[2],
                ts=_from_us(r[3]),
                event_id=r[4],
                reason_code=r[5],
                until=None if r[6] is None else _from_us(r[6]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------- history
    def history(self, hcp_id: str, day: date, catalog: Catalog) -> History:
        """The HCP's :class:`nba.context.History` as of ``day``, exactly as
        :mod:`nba.context` defines it: contacts (touches of kind ``contact``, ours
        and external; an HCP pulling information is not a contact) on days
        ``day-N .. day-1``; engagement outcomes in those days counted once per
        (decision, type), by the channel and topic of the decision's chosen
        action (content unknown to ``catalog`` counts for its channel only);
        whole days since the last touch per channel within 90 days; the content
        of the latest touch before ``day``, however old (as the simulator does);
        engagements by (topic, channel) over 90 days; whole days since each content
        item last reached the HCP, within 90 days; the decayed interest per topic
        (:func:`nba.context.interest_profile`) of the pull touches (each topic once
        per touch, on the touch's day) and of those 90-day engagements (on the day
        of the earliest outcome of each (decision, action, type)); and the undecayed
        90-day count of those pull touches per topic (``topic_pulls_90d``); and how
        many of the HCP's decisions a rep overrode with a touch in those 90 days
        (``overrides_90d``, each decision once).
        """
        if isinstance(day, datetime) or not isinstance(day, date):
            raise StoreError(f"history: 'day' must be a date, got {type(day).__name__}")
        parts = _history_parts(self.dialect, hcp_id, day)
        return self._history_from({n: self._rows(p) for n, p in parts.items()}, day, catalog)

    @staticmethod
    def _history_from(
        rows: Mapping[str, Sequence[Sequence[Any]]], day: date, catalog: Catalog
    ) -> History:
        """:meth:`history` from the rows of :func:`_history_parts`.

        A history is immutable and a function of the day, the catalog and these
        rows alone: the one built from equal rows of the same day and catalog is
        given again (keyed on all of them, never stale; bounded)."""
        key = (day, id(catalog), *(tuple(rows[n]) for n in _HISTORY_ROWS))
        try:
            found = _HISTORIES.get(key)
        except TypeError:  # a backend's rows that are not tuples: built, not kept
            return EventStore._history_built(rows, day, catalog)
        if found is not None and found[0] is catalog:
            return found[1]
        history = EventStore._history_built(rows, day, catalog)
        if len(_HISTORIES) >= _HISTORIES_MAX:  # bounded: start again when full
            _HISTORIES.clear()
        _HISTORIES[key] = (catalog, history)  # the catalog held: its id stays its own
        return history

    @staticmethod
    def _history_built(
        rows: Mapping[str, Sequence[Sequence[Any]]], day: date, catalog: Catalog
    ) -> History:
        """:meth:`_history_from` built anew."""
        counts: dict[int, dict[str, int]] = {w: {} for w in HISTORY_WINDOWS}
        last_day: dict[str, date] = {}
        content_day: dict[str, date] = {}
        for ts_us, channel, content_id in rows["h_touches"]:
            tday = _from_us(ts_us).date()
            age = (day - tday).days
            for w in HISTORY_WINDOWS:
                if age <= w:
                    counts[w][channel] = counts[w].get(channel, 0) + 1
            if channel not in last_day or tday > last_day[channel]:
                last_day[channel] = tday
            content_day[content_id] = max(tday, content_day.get(content_id, tday))
        latest = rows["h_latest"]
        last_content = str(latest[0][0]) if latest else None
        eng_ch: dict[str, int] = {}
        for (chosen,) in rows["h_engaged"]:
            ch = Action.parse(chosen).channel
            eng_ch[ch] = eng_ch.get(ch, 0) + 1
        eng_topic: dict[str, int] = {}
        eng_tc: dict[str, int] = {}
        # interest: signal counts by age (days before ``day``) and topic
        signals: dict[int, dict[str, int]] = {}

        def signal(ts_us: int, topic: str) -> None:
            by_topic = signals.setdefault((day - _from_us(ts_us).date()).days, {})
            by_topic[topic] = by_topic.get(topic, 0) + 1

        for chosen, first_us in rows["h_engaged_at"]:
            action = Action.parse(chosen)
            item = catalog.by_id.get(action.content_id)
            if item is not None:
                eng_topic[item.topic] = eng_topic.get(item.topic, 0) + 1
                key = topic_channel_key(item.topic, action.channel)
                eng_tc[key] = eng_tc.get(key, 0) + 1
                signal(int(first_us), item.topic)
        pulled: dict[str, int] = {}
        for ts_us, topics in rows["h_pulls"]:
            for topic in sorted(set(json.loads(topics))):  # each topic once per touch
                signal(ts_us, topic)
                pulled[topic] = pulled.get(topic, 0) + 1
        overridden = rows["h_overridden"][0][0] if rows["h_overridden"] else 0
        return History(
            touches_7d=counts[7],
            touches_30d=counts[30],
            touches_90d=counts[90],
            engagements_30d=eng_ch,
            topic_engagements_90d=eng_topic,
            days_since_touch={ch: (day - d).days for ch, d in last_day.items()},
            last_content_id=last_content,
            topic_channel_engagements_90d=eng_tc,
            days_since_content={c: (day - d).days for c, d in content_day.items()},
            interest=interest_profile(signals),
            topic_pulls_90d=pulled,
            overrides_90d=int(overridden),
        )

    def context_extras(
        self, hcp_id: str, day: date
    ) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]] | None:
        """What a decision context carries besides the profile and the history, in one
        query: the HCP's stored attributes, and the topics of its latest statement
        that names topics and the channels of its latest one that names channels,
        among statements stamped in the :data:`nba.context.STATED_WINDOW_DAYS` days
        before ``day``. None when the HCP is not in the store.

        Returns
        -------
        (attributes, stated_topics, stated_channels) or None
        """
        if isinstance(day, datetime) or not isinstance(day, date):
            raise StoreError(f"context_extras: 'day' must be a date, got {type(day).__name__}")
        return self._extras_from(self._rows(_extras_part(hcp_id, day)))

    @staticmethod
    def _extras_from(
        rows: Sequence[Sequence[Any]],
    ) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]] | None:
        if not rows:
            return None
        topics: tuple[str, ...] = ()
        channels: tuple[str, ...] = ()
        for _attrs, t_json, c_json in rows:
            if t_json is None:
                break  # no statement in the window
            if not topics:
                topics = tuple(json.loads(t_json))
            if not channels:
                channels = tuple(json.loads(c_json))
            if topics and channels:
                break
        return dict(json.loads(rows[0][0])), topics, channels

    # ----------------------------------------------------------- retention
    def purge(self, older_than: datetime) -> dict[str, int]:
        """Delete decisions (with their outcomes, feedback and rep day-list entries),
        touches with ``ts < older_than`` and the rep day lists of the days before
        its day; HCP events of triggers before it with the notifications they
        raised (and their webhook deliveries), and trigger suppressions that
        ended before it. HCP profiles, reps, alignment history and catalog
        snapshots stay.

        Returns
        -------
        dict
            Rows deleted per table.
        """
        cut = _to_us(ensure_utc(older_than, "purge", "older_than"))
        with self._write() as c:
            n_fb = c.execute(
                "DELETE FROM feedback WHERE event_id IN"
                " (SELECT event_id FROM decisions WHERE ts_us<?)",
                (cut,),
            ).rowcount
            n_out = c.execute(
                "DELETE FROM outcomes WHERE event_id IN"
                " (SELECT event_id FROM decisions WHERE ts_us<?)",
                (cut,),
            ).rowcount
            c.execute(
                "DELETE FROM rep_day_items WHERE event_id IN"
                " (SELECT event_id FROM decisions WHERE ts_us<?)",
                (cut,),
            )
            n_days = c.execute(
                "DELETE FROM rep_days WHERE day<?", (_from_us(cut).date().isoformat(),)
            ).rowcount
            n_dec = c.execute("DELETE FROM decisions WHERE ts_us<?", (cut,)).rowcount
            n_tch = c.execute("DELETE FROM touches WHERE ts_us<?", (cut,)).rowcount
            c.execute(
                "DELETE FROM webhook_deliveries WHERE notification_id IN"
                " (SELECT id FROM rep_notifications WHERE event_ts_us<?)",
                (cut,),
            )
            n_notes = c.execute(
                "DELETE FROM rep_notifications WHERE event_ts_us<?", (cut,)
            ).rowcount
            n_events = c.execute("DELETE FROM trigger_events WHERE ts_us<?", (cut,)).rowcount
            n_supp = c.execute("DELETE FROM trigger_suppressions WHERE until_us<?", (cut,)).rowcount
        return {
            "decisions": n_dec,
            "outcomes": n_out,
            "feedback": n_fb,
            "touches": n_tch,
            "rep_days": n_days,
            "trigger_events": n_events,
            "rep_notifications": n_notes,
            "trigger_suppressions": n_supp,
        }

    def counts(self) -> dict[str, int]:
        """Rows per table, plus late outcomes and deferred decisions not yet activated."""
        con = self._conn()
        out = {
            t: int(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in (
                "hcps",
                "touches",
                "decisions",
                "outcomes",
                "feedback",
                "catalogs",
                "stated_preferences",
            )
        }
        out["late_outcomes"] = int(
            con.execute("SELECT COUNT(*) FROM outcomes WHERE late=1").fetchone()[0]
        )
        out["pending_activation"] = int(
            con.execute(
                "SELECT COUNT(*) FROM decisions WHERE deferred=1 AND activated=0"
            ).fetchone()[0]
        )
        return out
