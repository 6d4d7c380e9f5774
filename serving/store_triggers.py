"""Trigger events, rep notifications, trigger suppressions and webhook deliveries in
the service's event store (functions taking the :class:`EventStore` or, to write in
the caller's transaction, its connection).

Firing
------
:func:`fire` runs inside the transaction that stores the event's touch or outcome:
it records the event under its key (``trigger_events``; a key already there means the
same event was posted again, and nothing fires twice), then, for each trigger of the
event, a notification for the rep who owns the HCP on the event's day (none when
nobody does) due by event time + ``within_hours``, and/or a suppression of the HCP's
channel (or one item) from the event time for ``days``. With a webhook configured a
delivery row is written per notification in the same transaction.

Webhook deliveries
------------------
A delivery row is claimed by one deliverer at a time (``UPDATE ... WHERE claimed_by
IS NULL OR the claim expired``), so several workers each running a deliverer send
every notification once; a failed attempt is rescheduled with exponential backoff
until ``max_attempts``; the state is in the store, so a restarted service continues.

>>> import tempfile
>>> from datetime import UTC, date, datetime
>>> from nba.domain import HCPProfile
>>> from nba.triggers import TriggerSet
>>> from serving.store import EventStore
>>> from serving.store_reps import put_rep
>>> store = EventStore(tempfile.mkdtemp() + "/events.db")
>>> store.upsert_hcp(HCPProfile("h1", "cardiology", 5, "US", "aware", frozenset({"email"})))
>>> _ = put_rep(store, "R1", "Ann", 4, ["h1"], date(2026, 1, 1))
>>> ev = TriggerEvent("visit_request", "h1", datetime(2026, 1, 5, 9, tzinfo=UTC), "portal",
...                   "visit-form", key="touch:h1|visit_request|form-1")
>>> with store._write() as c:
...     fire(c, TriggerSet.default(), ev)
Fired(duplicate=False, notifications=(1,), suppressions=0)
>>> with store._write() as c:
...     fire(c, TriggerSet.default(), ev)
Fired(duplicate=True, notifications=(), suppressions=0)
>>> [(n.rep_id, n.trigger, n.due_by.isoformat()) for n in notifications(store, "R1")]
[('R1', 'visit-request', '2026-01-06T09:00:00+00:00')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nba.domain import Action
from nba.triggers import TriggerSet
from serving.store import EventStore, _from_us, _to_us
from serving.store_sql import Connection


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """Something an HCP did that triggers may wait for.

    Attributes
    ----------
    event : str
        One of :data:`nba.triggers.EVENTS`.
    hcp_id, ts, channel, content_id
        Who, when, and on which channel and item.
    key : str
        The event's identity: the same key posted twice is one event.
    """

    event: str
    hcp_id: str
    ts: datetime
    channel: str
    content_id: str
    key: str


@dataclass(frozen=True, slots=True)
class Fired:
    """What :func:`fire` wrote: notification ids and how many suppressions."""

    duplicate: bool
    notifications: tuple[int, ...]
    suppressions: int


@dataclass(frozen=True, slots=True)
class Notification:
    """A rep's notification: the trigger's suggestion, due by ``due_by``."""

    id: int
    rep_id: str
    hcp_id: str
    trigger: str
    event: str
    event_ts: datetime
    due_by: datetime
    channel: str
    content_id: str
    priority: int
    created_at: datetime
    read_at: datetime | None
    day_event_id: str | None

    @property
    def action_id(self) -> str:
        return Action(self.content_id, self.channel).action_id


@dataclass(frozen=True, slots=True)
class ActiveSuppression:
    """A trigger's suppression of an HCP's channel (or one item) until ``until``."""

    trigger: str
    channel: str
    content_id: str | None
    since: datetime
    until: datetime

    def covers(self, action: Action) -> bool:
        return action.channel == self.channel and self.content_id in (None, action.content_id)


def _owner(c: Connection, hcp_id: str, day: date) -> str | None:
    row = c.execute(
        "SELECT rep_id FROM rep_alignment WHERE hcp_id=? AND valid_from<=?"
        " AND (valid_to IS NULL OR valid_to>?)",
        (hcp_id, day.isoformat(), day.isoformat()),
    ).fetchone()
    return None if row is None else str(row[0])


def fire(c: Connection, triggers: TriggerSet, ev: TriggerEvent, webhook: bool = False) -> Fired:
    """Record ``ev`` and write what its triggers do, in the caller's transaction ``c``.

    Parameters
    ----------
    c : Connection
        Inside a write transaction (``EventStore._write``).
    triggers : TriggerSet
    ev : TriggerEvent
    webhook : bool
        Also queue each notification for the webhook.

    Returns
    -------
    Fired
        ``duplicate`` when the event's key was already recorded (nothing written).
    """
    now_us = _to_us(datetime.now(UTC))
    ts_us = _to_us(ev.ts)
    cur = c.execute(
        "INSERT OR IGNORE INTO trigger_events (event_key, event, hcp_id, ts_us, channel,"
        " content_id, received_us) VALUES (?,?,?,?,?,?,?)",
        (ev.key, ev.event, ev.hcp_id, ts_us, ev.channel, ev.content_id, now_us),
    )
    if cur.rowcount != 1:
        return Fired(True, (), 0)
    rep_id = _owner(c, ev.hcp_id, ev.ts.date())
    ids: list[int] = []
    n_supp = 0
    for t in triggers.matching(ev.event):
        if t.notify is not None and rep_id is not None:
            due_us = _to_us(ev.ts + timedelta(hours=t.within_hours))
            cur = c.execute(
                "INSERT INTO rep_notifications (event_key, trigger, event, rep_id, hcp_id,"
                " event_ts_us, due_us, channel, content_id, priority, created_us)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    ev.key,
                    t.name,
                    ev.event,
                    rep_id,
                    ev.hcp_id,
                    ts_us,
                    due_us,
                    t.notify.channel,
                    t.notify.content_id,
                    t.notify.priority,
                    now_us,
                ),
            )
            nid = int(cur.fetchone()[0])
            ids.append(nid)
            if webhook:
                c.execute(
                    "INSERT INTO webhook_deliveries (notification_id, next_us) VALUES (?,?)",
                    (nid, now_us),
                )
        if t.suppress is not None:
            until_us = _to_us(ev.ts + timedelta(days=t.suppress.days))
            c.execute(
                "INSERT INTO trigger_suppressions (event_key, trigger, hcp_id, channel,"
                " content_id, since_us, until_us) VALUES (?,?,?,?,?,?,?)",
                (
                    ev.key,
                    t.name,
                    ev.hcp_id,
                    t.suppress.channel,
                    t.suppress.content_id,
                    ts_us,
                    until_us,
                ),
            )
            n_supp += 1
    return Fired(False, tuple(ids), n_supp)


def event_recorded(store: EventStore, key: str) -> bool:
    """Whether a trigger event with this key is stored."""
    row = store._conn().execute("SELECT 1 FROM trigger_events WHERE event_key=?", (key,))
    return row.fetchone() is not None


# ------------------------------------------------------------ notifications
_N_COLS = (
    "id, rep_id, hcp_id, trigger, event, event_ts_us, due_us, channel, content_id, priority,"
    " created_us, read_us, day_event_id"
)


def _notification(r: Any) -> Notification:
    return Notification(
        id=int(r[0]),
        rep_id=r[1],
        hcp_id=r[2],
        trigger=r[3],
        event=r[4],
        event_ts=_from_us(r[5]),
        due_by=_from_us(r[6]),
        channel=r[7],
        content_id=r[8],
        priority=int(r[9]),
        created_at=_from_us(r[10]),
        read_at=None if r[11] is None else _from_us(r[11]),
        day_event_id=r[12],
    )


def notifications(
    store: EventStore,
    rep_id: str,
    since: datetime | None = None,
    unread: bool | None = None,
    limit: int = 100,
) -> list[Notification]:
    """The rep's notifications, newest first: created at or after ``since``, only the
    unread (``unread=True``) or read (``False``) ones when given."""
    sql = f"SELECT {_N_COLS} FROM rep_notifications WHERE rep_id=?"
    args: list[Any] = [rep_id]
    if since is not None:
        sql += " AND created_us>=?"
        args.append(_to_us(since))
    if unread is not None:
        sql += " AND read_us IS NULL" if unread else " AND read_us IS NOT NULL"
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    return [_notification(r) for r in store._conn().execute(sql, args).fetchall()]


def get_notification(store: EventStore, nid: int) -> Notification | None:
    row = (
        store._conn()
        .execute(f"SELECT {_N_COLS} FROM rep_notifications WHERE id=?", (nid,))
        .fetchone()
    )
    return None if row is None else _notification(row)


def ack(store: EventStore, rep_id: str, nid: int, at: datetime) -> tuple[Notification, bool] | None:
    """Mark the rep's notification read; (notification, already read before), or
    ``None`` when the rep has no such notification."""
    with store._write() as c:
        row = c.execute(
            "SELECT read_us FROM rep_notifications WHERE id=? AND rep_id=?", (nid, rep_id)
        ).fetchone()
        if row is None:
            return None
        already = row[0] is not None
        if not already:
            c.execute("UPDATE rep_notifications SET read_us=? WHERE id=?", (_to_us(at), nid))
    got = get_notification(store, nid)
    assert got is not None
    return got, already


def open_for_day(store: EventStore, rep_id: str, start: datetime) -> dict[str, Notification]:
    """Per HCP, the rep's most urgent notification (lowest priority number, then the
    earliest due) not yet on a day list, whose event happened by ``start`` and which is
    not overdue at ``start``."""
    rows = (
        store._conn()
        .execute(
            f"SELECT {_N_COLS} FROM rep_notifications WHERE rep_id=? AND day_event_id IS NULL"
            " AND event_ts_us<=? AND due_us>=? ORDER BY priority, due_us, id",
            (rep_id, _to_us(start), _to_us(start)),
        )
        .fetchall()
    )
    out: dict[str, Notification] = {}
    for r in rows:
        n = _notification(r)
        out.setdefault(n.hcp_id, n)
    return out


def mark_on_day(store: EventStore, pairs: list[tuple[int, str]]) -> None:
    """Link notifications to the day-list decisions that carry them ((id, event_id))."""
    if not pairs:
        return
    with store._write() as c:
        c.executemany(
            "UPDATE rep_notifications SET day_event_id=? WHERE id=? AND day_event_id IS NULL",
            [(e, i) for i, e in pairs],
        )


# ------------------------------------------------------------- suppressions
def active_suppressions(store: EventStore, hcp_id: str, now: datetime) -> list[ActiveSuppression]:
    """The trigger suppressions of the HCP in force at ``now``."""
    now_us = _to_us(now)
    rows = (
        store._conn()
        .execute(
            "SELECT trigger, channel, content_id, since_us, until_us FROM trigger_suppressions"
            " WHERE hcp_id=? AND until_us>? AND since_us<=? ORDER BY id",
            (hcp_id, now_us, now_us),
        )
        .fetchall()
    )
    return [ActiveSuppression(r[0], r[1], r[2], _from_us(r[3]), _from_us(r[4])) for r in rows]


# ------------------------------------------------------------------ webhook
@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed webhook delivery: the notification and the attempt about to be made."""

    notification: Notification
    attempt: int


def claim_delivery(
    store: EventStore, worker: str, now: datetime, lease_s: float
) -> Delivery | None:
    """Claim the next due delivery for ``worker`` for ``lease_s`` seconds (an expired
    claim of a stopped worker is taken over); ``None`` when nothing is due."""
    now_us = _to_us(now)
    with store._write() as c:
        row = c.execute(
            "SELECT notification_id, attempts FROM webhook_deliveries"
            " WHERE delivered_us IS NULL AND gave_up=0 AND next_us<=?"
            " AND (claimed_by IS NULL OR claimed_until_us<?) ORDER BY next_us LIMIT 1",
            (now_us, now_us),
        ).fetchone()
        if row is None:
            return None
        cur = c.execute(
            "UPDATE webhook_deliveries SET claimed_by=?, claimed_until_us=?"
            " WHERE notification_id=? AND (claimed_by IS NULL OR claimed_until_us<?)",
            (worker, now_us + int(lease_s * 1e6), row[0], now_us),
        )
        if cur.rowcount != 1:  # pragma: no cover - the write lock makes this exclusive
            return None
    n = get_notification(store, int(row[0]))
    assert n is not None
    return Delivery(n, int(row[1]) + 1)


def finish_delivery(
    store: EventStore,
    nid: int,
    worker: str,
    ok: bool,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Record an attempt: delivered, rescheduled at ``retry_at``, or given up (no
    ``retry_at``). Only the worker holding the claim records it."""
    now_us = _to_us(datetime.now(UTC))
    with store._write() as c:
        if ok:
            c.execute(
                "UPDATE webhook_deliveries SET attempts=attempts+1, delivered_us=?,"
                " claimed_by=NULL, claimed_until_us=NULL, last_error=NULL"
                " WHERE notification_id=? AND claimed_by=?",
                (now_us, nid, worker),
            )
        else:
            c.execute(
                "UPDATE webhook_deliveries SET attempts=attempts+1, next_us=?, gave_up=?,"
                " claimed_by=NULL, claimed_until_us=NULL, last_error=?"
                " WHERE notification_id=? AND claimed_by=?",
                (
                    _to_us(retry_at) if retry_at is not None else now_us,
                    int(retry_at is None),
                    (error or "")[:500],
                    nid,
                    worker,
                ),
            )


@dataclass(frozen=True, slots=True)
class DeliveryState:
    notification_id: int
    attempts: int
    delivered_at: datetime | None
    gave_up: bool
    last_error: str | None


def delivery_state(store: EventStore, nid: int) -> DeliveryState | None:
    row = (
        store._conn()
        .execute(
            "SELECT notification_id, attempts, delivered_us, gave_up, last_error"
            " FROM webhook_deliveries WHERE notification_id=?",
            (nid,),
        )
        .fetchone()
    )
    if row is None:
        return None
    return DeliveryState(
        int(row[0]),
        int(row[1]),
        None if row[2] is None else _from_us(row[2]),
        bool(row[3]),
        row[4],
    )
