"""Reps, territories with their history, the rep's stored day lists and override
touches, in the service's event store (functions taking the :class:`EventStore`).

Alignment
---------
An alignment row says that ``rep_id`` owned ``hcp_id`` on the days
``[valid_from, valid_to)`` (whole UTC dates; ``valid_to`` null while it lasts).
An HCP has at most one owner on any day: aligning it to another rep closes
the open row on the new row's ``valid_from`` (a row starting that same day is
replaced), so the rows of an HCP never overlap and answer "who owned this HCP
on that day". A change may not start before the HCP's latest row starts (the
past is not rewritten).

Day lists
---------
``GET /v1/reps/{rep_id}/suggestions`` stores each (rep, day) list once, in the
same transaction as its decisions: asking again returns the stored list, and
two concurrent first calls store one list (the loser's decisions are dropped
before they are stored, so no decision is logged that nobody saw).

>>> import tempfile
>>> from datetime import date
>>> from nba.domain import HCPProfile
>>> from serving.store import EventStore
>>> store = EventStore(tempfile.mkdtemp() + "/events.db")
>>> for h in ("h1", "h2"):
...     store.upsert_hcp(HCPProfile(h, "cardiology", 5, "US", "aware", frozenset({"email"})))
>>> put_rep(store, "R1", "Ann", 8, ["h1", "h2"], date(2026, 1, 1))
True
>>> put_rep(store, "R2", None, 5, ["h2"], date(2026, 3, 1))
True
>>> owner_on(store, "h2", date(2026, 2, 1)), owner_on(store, "h2", date(2026, 3, 1))
('R1', 'R2')
>>> territory(store, "R1", date(2026, 3, 1))
['h1']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from nba.domain import Decision, Touch
from serving.store import EventStore, StoreError, UnknownEventError, UnknownHCPError, _to_us
from serving.store_sql import Connection


class UnknownRepError(StoreError, LookupError):
    """No rep with this id is in the store (HTTP 404)."""


class AlignmentError(StoreError):
    """An alignment change contradicts the stored history (HTTP 422)."""


@dataclass(frozen=True, slots=True)
class Rep:
    """A rep: id, display name, and how many HCPs they can see or call in one day."""

    rep_id: str
    name: str | None
    capacity_per_day: int


@dataclass(frozen=True, slots=True)
class AlignmentRow:
    """``rep_id`` owned ``hcp_id`` on ``[valid_from, valid_to)`` (``valid_to`` None: still)."""

    rep_id: str
    hcp_id: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class AlignmentChange:
    """One row of an alignment import: ``hcp_id`` goes to ``rep_id`` from ``valid_from``
    (until ``valid_to`` when given); ``row`` is its 1-based position in the file."""

    row: int
    rep_id: str
    hcp_id: str
    valid_from: date
    valid_to: date | None = None


def _check_capacity(capacity: int) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= 1000:
        raise StoreError(f"capacity_per_day: must be a whole number 0..1000, got {capacity!r}")


def get_rep(store: EventStore, rep_id: str) -> Rep | None:
    """The stored rep, or ``None``."""
    row = (
        store._conn()
        .execute("SELECT rep_id, name, capacity_per_day FROM reps WHERE rep_id=?", (rep_id,))
        .fetchone()
    )
    return None if row is None else Rep(row[0], row[1], int(row[2]))


def _upsert_rep(c: Connection, rep_id: str, name: str | None, capacity: int) -> bool:
    """Insert or update a rep; True when new. ``name`` None keeps a stored name."""
    _check_capacity(capacity)
    new = c.execute("SELECT 1 FROM reps WHERE rep_id=?", (rep_id,)).fetchone() is None
    c.execute(
        "INSERT INTO reps (rep_id, name, capacity_per_day, updated_us) VALUES (?,?,?,?)"
        " ON CONFLICT (rep_id) DO UPDATE SET name=COALESCE(excluded.name, reps.name),"
        " capacity_per_day=excluded.capacity_per_day, updated_us=excluded.updated_us",
        (rep_id, name, capacity, _to_us(datetime.now(UTC))),
    )
    return new


def _align(c: Connection, rep_id: str, hcp_id: str, since: date, until: date | None = None) -> None:
    """Give ``hcp_id`` to ``rep_id`` from ``since`` (until ``until``), closing the HCP's
    open row; :class:`AlignmentError` when that would rewrite or overlap its history."""
    if until is not None and until <= since:
        raise AlignmentError(f"valid_to {until} is not after valid_from {since}")
    latest = c.execute(
        "SELECT id, rep_id, valid_from, valid_to FROM rep_alignment WHERE hcp_id=?"
        " ORDER BY valid_from DESC, id DESC LIMIT 1",
        (hcp_id,),
    ).fetchone()
    if latest is not None:
        row_id, owner, v_from, v_to = latest[0], latest[1], date.fromisoformat(latest[2]), latest[3]
        if v_from > since:
            raise AlignmentError(
                f"HCP {hcp_id!r} is aligned to rep {owner!r} from {v_from}; a change must "
                f"start on or after it, not on {since}"
            )
        if v_to is None:
            if owner == rep_id:
                if until is not None:
                    c.execute(
                        "UPDATE rep_alignment SET valid_to=? WHERE id=?",
                        (until.isoformat(), row_id),
                    )
                return
            if v_from == since:  # superseded the day it started: it never took effect
                c.execute("DELETE FROM rep_alignment WHERE id=?", (row_id,))
            else:
                c.execute(
                    "UPDATE rep_alignment SET valid_to=? WHERE id=?", (since.isoformat(), row_id)
                )
        elif date.fromisoformat(v_to) > since:
            raise AlignmentError(
                f"HCP {hcp_id!r} is aligned to rep {owner!r} until {v_to}; a change must "
                f"start on or after it, not on {since}"
            )
    c.execute(
        "INSERT INTO rep_alignment (rep_id, hcp_id, valid_from, valid_to) VALUES (?,?,?,?)",
        (rep_id, hcp_id, since.isoformat(), None if until is None else until.isoformat()),
    )


def _release(c: Connection, rep_id: str, hcp_id: str, since: date) -> None:
    """End ``rep_id``'s open alignment of ``hcp_id`` on ``since``."""
    row = c.execute(
        "SELECT id, valid_from FROM rep_alignment WHERE hcp_id=? AND rep_id=? AND valid_to IS NULL",
        (hcp_id, rep_id),
    ).fetchone()
    if row is None:
        return
    if date.fromisoformat(row[1]) >= since:
        c.execute("DELETE FROM rep_alignment WHERE id=?", (row[0],))
    else:
        c.execute("UPDATE rep_alignment SET valid_to=? WHERE id=?", (since.isoformat(), row[0]))


def _unknown_hcps(c: Connection, hcp_ids: Iterable[str]) -> list[str]:
    ids = sorted(set(hcp_ids))
    known: set[str] = set()
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        sql = f"SELECT hcp_id FROM hcps WHERE hcp_id IN ({','.join('?' * len(chunk))})"
        known.update(r[0] for r in c.execute(sql, chunk))
    return [h for h in ids if h not in known]


def put_rep(
    store: EventStore,
    rep_id: str,
    name: str | None,
    capacity_per_day: int,
    hcp_ids: Sequence[str],
    effective_from: date,
) -> bool:
    """Create or update a rep and make its territory exactly ``hcp_ids`` from
    ``effective_from``: HCPs it loses are released that day, HCPs it gains are taken
    from their former owners that day. One transaction; True when the rep is new.

    Raises
    ------
    UnknownHCPError
        An HCP is not in the store (the message names it); nothing is stored.
    AlignmentError
        The change would start before an HCP's latest alignment; nothing is stored.
    """
    if len(set(hcp_ids)) != len(hcp_ids):
        dup = next(h for i, h in enumerate(hcp_ids) if h in hcp_ids[:i])
        raise StoreError(f"hcp_ids: HCP {dup!r} is listed twice")
    with store._write() as c:
        unknown = _unknown_hcps(c, hcp_ids)
        if unknown:
            raise UnknownHCPError(f"hcp_ids: HCP {unknown[0]!r} is not in the store; PUT it first")
        new = _upsert_rep(c, rep_id, name, capacity_per_day)
        keep = set(hcp_ids)
        for (hid,) in c.execute(
            "SELECT hcp_id FROM rep_alignment WHERE rep_id=? AND valid_to IS NULL", (rep_id,)
        ).fetchall():
            if hid not in keep:
                _release(c, rep_id, hid, effective_from)
        for hid in hcp_ids:
            _align(c, rep_id, hid, effective_from)
    return new


def import_alignment(
    store: EventStore,
    changes: Sequence[AlignmentChange],
    reps: dict[str, tuple[str | None, int | None]],
) -> int:
    """Apply an alignment file in one transaction: all rows or none.

    Parameters
    ----------
    changes : sequence of AlignmentChange
        Applied in ``valid_from`` order (file order among equal dates).
    reps : dict
        ``rep_id -> (name, capacity_per_day)`` from the file; a rep new to the store
        needs a capacity.

    Returns
    -------
    int
        How many rows were applied.

    Raises
    ------
    StoreError
        Every bad row, one line each naming the row and the column; nothing stored.
    """
    errors: dict[int, str] = {}
    with store._write() as c:
        missing = set(_unknown_hcps(c, (ch.hcp_id for ch in changes)))
        first_row: dict[str, int] = {}
        for ch in changes:
            first_row.setdefault(ch.rep_id, ch.row)
            if ch.hcp_id in missing:
                errors.setdefault(
                    ch.row, f"row {ch.row}: column 'hcp_id': HCP {ch.hcp_id!r} is not in the store"
                )
        for rep_id, (name, capacity) in reps.items():
            if capacity is None:
                if c.execute("SELECT 1 FROM reps WHERE rep_id=?", (rep_id,)).fetchone() is None:
                    r = first_row[rep_id]
                    errors.setdefault(
                        r,
                        f"row {r}: column 'capacity_per_day': rep {rep_id!r} is new and "
                        "needs a daily capacity",
                    )
                elif name is not None:
                    c.execute("UPDATE reps SET name=? WHERE rep_id=?", (name, rep_id))
            else:
                _upsert_rep(c, rep_id, name, capacity)
        for ch in sorted(changes, key=lambda x: (x.valid_from, x.row)):
            if ch.row in errors:
                continue
            try:
                _align(c, ch.rep_id, ch.hcp_id, ch.valid_from, ch.valid_to)
            except AlignmentError as exc:
                errors[ch.row] = f"row {ch.row}: column 'valid_from': {exc}"
        if errors:
            # raising rolls the transaction back: nothing of the file is kept
            lines = [errors[r] for r in sorted(errors)]
            raise StoreError(f"{len(lines)} bad row(s), nothing imported:\n" + "\n".join(lines))
    return len(changes)


def owner_on(store: EventStore, hcp_id: str, day: date) -> str | None:
    """The rep who owned ``hcp_id`` on ``day``, or ``None``."""
    row = (
        store._conn()
        .execute(
            "SELECT rep_id FROM rep_alignment WHERE hcp_id=? AND valid_from<=?"
            " AND (valid_to IS NULL OR valid_to>?)",
            (hcp_id, day.isoformat(), day.isoformat()),
        )
        .fetchone()
    )
    return None if row is None else str(row[0])


def alignment_history(store: EventStore, hcp_id: str) -> list[AlignmentRow]:
    """Every alignment row of the HCP, oldest first."""
    rows = (
        store._conn()
        .execute(
            "SELECT rep_id, hcp_id, valid_from, valid_to FROM rep_alignment WHERE hcp_id=?"
            " ORDER BY valid_from, id",
            (hcp_id,),
        )
        .fetchall()
    )
    return [
        AlignmentRow(r[0], r[1], date.fromisoformat(r[2]), r[3] and date.fromisoformat(r[3]))
        for r in rows
    ]


def territory_rows(store: EventStore, rep_id: str, day: date) -> list[AlignmentRow]:
    """The alignment rows of the HCPs ``rep_id`` owned on ``day``, by HCP id."""
    rows = (
        store._conn()
        .execute(
            "SELECT rep_id, hcp_id, valid_from, valid_to FROM rep_alignment WHERE rep_id=?"
            " AND valid_from<=? AND (valid_to IS NULL OR valid_to>?) ORDER BY hcp_id",
            (rep_id, day.isoformat(), day.isoformat()),
        )
        .fetchall()
    )
    return [
        AlignmentRow(r[0], r[1], date.fromisoformat(r[2]), r[3] and date.fromisoformat(r[3]))
        for r in rows
    ]


def territory(store: EventStore, rep_id: str, day: date) -> list[str]:
    """The HCP ids ``rep_id`` owned on ``day``, sorted."""
    return [r.hcp_id for r in territory_rows(store, rep_id, day)]


# ------------------------------------------------------------------ day lists
def get_day(store: EventStore, rep_id: str, day: date) -> dict[str, Any] | None:
    """The stored day list (the response body as JSON), or ``None``."""
    row = (
        store._conn()
        .execute("SELECT body FROM rep_days WHERE rep_id=? AND day=?", (rep_id, day.isoformat()))
        .fetchone()
    )
    return None if row is None else dict(json.loads(row[0]))


def save_day(
    store: EventStore,
    rep_id: str,
    day: date,
    decisions: Sequence[Decision],
    body: dict[str, Any],
) -> dict[str, Any]:
    """Store the day's decisions and list in one transaction, unless a list of that
    (rep, day) is already stored: then nothing is written and the stored one is
    returned. ``decisions`` are the list's entries, in rank order."""
    rows = [EventStore._decision_row(d, deferred=False) for d in decisions]
    with store._write() as c:
        got = c.execute(
            "SELECT body FROM rep_days WHERE rep_id=? AND day=?", (rep_id, day.isoformat())
        ).fetchone()
        if got is not None:
            return dict(json.loads(got[0]))
        c.executemany(EventStore._INSERT_DECISION, rows)
        c.executemany(
            "INSERT INTO rep_day_items (rep_id, day, rank, hcp_id, event_id) VALUES (?,?,?,?,?)",
            [
                (rep_id, day.isoformat(), i + 1, d.hcp_id, d.event_id)
                for i, d in enumerate(decisions)
            ],
        )
        c.execute(
            "INSERT INTO rep_days (rep_id, day, created_us, body) VALUES (?,?,?,?)",
            (rep_id, day.isoformat(), _to_us(datetime.now(UTC)), json.dumps(body, sort_keys=True)),
        )
    return body


@dataclass(frozen=True, slots=True)
class DayItem:
    """One entry of a stored day list with the decision's chosen action."""

    rep_id: str
    day: date
    rank: int
    hcp_id: str
    event_id: str
    chosen_action_id: str


def day_items(
    store: EventStore,
    rep_id: str,
    since: date,
    until: date,
    hcp_id: str | None = None,
) -> list[DayItem]:
    """Entries of ``rep_id``'s day lists for days ``since..until`` (inclusive)."""
    sql = (
        "SELECT i.rep_id, i.day, i.rank, i.hcp_id, i.event_id, d.chosen_action_id"
        " FROM rep_day_items i JOIN decisions d ON d.event_id=i.event_id"
        " WHERE i.rep_id=? AND i.day>=? AND i.day<=?"
    )
    args: list[Any] = [rep_id, since.isoformat(), until.isoformat()]
    if hcp_id is not None:
        sql += " AND i.hcp_id=?"
        args.append(hcp_id)
    rows = store._conn().execute(sql + " ORDER BY i.day, i.rank", args).fetchall()
    return [DayItem(r[0], date.fromisoformat(r[1]), int(r[2]), r[3], r[4], r[5]) for r in rows]


# ------------------------------------------------------------------ overrides
def add_override_touch(store: EventStore, touch: Touch, event_id: str) -> None:
    """Record ``touch`` as overriding decision ``event_id`` (committed on return).

    Raises
    ------
    UnknownEventError
        No such decision.
    UnknownHCPError
        The touch's HCP is not in the store.
    StoreError
        The decision's chosen action already has a response (it happened; this is
        no override) or the touch does exactly what was suggested.
    """
    row = EventStore._touch_row(touch)
    with store._write() as c:
        d = c.execute(
            "SELECT hcp_id, chosen_action_id FROM decisions WHERE event_id=?", (event_id,)
        ).fetchone()
        if d is None:
            raise UnknownEventError(f"overrides_event_id: no decision with event id {event_id!r}")
        if c.execute("SELECT 1 FROM hcps WHERE hcp_id=?", (touch.hcp_id,)).fetchone() is None:
            raise UnknownHCPError("the touch's HCP is not in the store")
        if d[0] == touch.hcp_id and d[1] == f"{touch.content_id}@{touch.channel}":
            raise StoreError(
                f"overrides_event_id: the touch is the suggestion of event {event_id!r} "
                f"({d[1]}), not an override; report it as an outcome of that event"
            )
        responded = c.execute(
            "SELECT type FROM outcomes WHERE event_id=? AND kind='response'"
            " AND (action_id IS NULL OR action_id=?) LIMIT 1",
            (event_id, d[1]),
        ).fetchone()
        if responded is not None:
            raise StoreError(
                f"overrides_event_id: event {event_id!r} already has a '{responded[0]}' "
                "response to its chosen action; it was not overridden"
            )
        c.execute(
            f"INSERT INTO touches ({EventStore._TOUCH_COLS}, overrides_event_id,"
            " overrides_hcp_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (*row, event_id, d[0]),  # the decision's HCP (schema version 5)
        )


@dataclass(frozen=True, slots=True)
class OverrideTouch:
    """A touch that overrode a decision, with what the decision had chosen."""

    event_id: str
    decision_hcp_id: str
    chosen_action_id: str
    touch: Touch


def override_touches(store: EventStore, event_ids: Sequence[str]) -> list[OverrideTouch]:
    """The touches overriding any of ``event_ids``, in time order."""
    out: list[OverrideTouch] = []
    ids = list(dict.fromkeys(event_ids))
    cols = ", ".join("t." + c.strip() for c in EventStore._TOUCH_COLS.split(","))
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        rows = (
            store._conn()
            .execute(
                f"SELECT {cols}, t.overrides_event_id, d.hcp_id, d.chosen_action_id"
                " FROM touches t JOIN decisions d ON d.event_id=t.overrides_event_id"
                f" WHERE t.overrides_event_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY t.ts_us, t.id",
                chunk,
            )
            .fetchall()
        )
        out.extend(OverrideTouch(r[9], r[10], r[11], EventStore._touch_from_row(r)) for r in rows)
    out.sort(key=lambda o: o.touch.ts)
    return out
