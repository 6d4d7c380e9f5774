"""The rep's co-pilot: the day's list, the territory view, the override report and an
HCP's timeline. Routes (:mod:`serving.api.routes.reps`) only parse and format.

The day's list
--------------
For each HCP the rep owns on the day, the engine makes one decision on the rep
channels (:data:`REP_CHANNELS` the catalog has) with requester ``rep_app``, exactly as
``POST /v1/decisions`` would: context, contact rules, the served policy (or the
holdout baseline), a sampled action and its propensity. The HCPs are then ranked
by a priority that does **not** depend on the sampled action -- the policy's
expected score ``sum_a p(a) * score(a)`` when it gives scores, and the HCP's decile
otherwise (the VW policy exposes its probabilities only) -- and the first
``capacity_per_day`` are kept. Ranking on the sampled action's own score would make
keeping a decision depend on what was sampled, and the logged propensity would no
longer be the probability of the logged action among the kept decisions. Only kept
decisions are stored (activated: the list is shown when it is made); the list is
stored with them and returned unchanged on every later call for the same rep and
day.

Triggered suggestions
---------------------
An HCP with an open notification of the rep (docs/triggers.md: not yet on a list,
its event before the list is made, not overdue) gets the trigger's suggestion
instead: a decision whose only candidate is the trigger's action (contact rules
applied; propensity 1; when the rules forbid it, the HCP gets a normal decision).
Those entries come first, most urgent (lowest priority number, then earliest due)
first, before the capacity cut; their first reason names the event and the due
time. This ordering does not depend on any sampled action either. A notification
that arrives after the day's list is stored waits for the next day's list (the
feed and the webhook carry it at once).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from nba.catalog import Catalog
from nba.domain import Action, Touch
from serving import schemas_reps as sr
from serving.engine import DecisionEngine, Prepared
from serving.errors import ApiError, invalid
from serving.store import _from_us
from serving.store_reps import (
    Rep,
    day_items,
    get_day,
    override_touches,
    save_day,
    territory_rows,
)
from serving.store_triggers import Notification, mark_on_day, open_for_day

#: channels a rep delivers: a visit or a remote call
REP_CHANNELS: tuple[str, ...] = ("rep_visit", "remote_call")
REQUESTER = "rep_app"
#: hour (UTC) a replayed day's list is made at, with client time allowed
REPLAY_HOUR = 7


def day_time(engine: DecisionEngine, day: date) -> datetime:
    """When the list of ``day`` is made: now for today; with client time allowed
    (simulation, replay) another day's list is made at 07:00 UTC of that day."""
    now = datetime.now(UTC)
    if day == now.date():
        return now
    if not engine.allow_client_time:
        raise invalid(
            f"date: {day.isoformat()} is not today ({now.date().isoformat()}, UTC); lists of "
            "other days need NBA_ALLOW_CLIENT_TIME=true (simulation or replay)"
        )
    return datetime.combine(day, time(REPLAY_HOUR), tzinfo=UTC)


def _expiry(catalog: Catalog, content_id: str, market: str, day: date) -> datetime:
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    item = catalog.by_id.get(content_id)
    if item is not None:
        for a in item.approvals:
            if a.market == market and a.covers(day):
                end = min(end, datetime.combine(a.expiry, time(0), tzinfo=UTC))
    return end


def make_day(engine: DecisionEngine, rep: Rep, day: date) -> sr.RepDay:
    """The rep's list for ``day``: the stored one, or a new one stored now."""
    store = engine.store
    stored = get_day(store, rep.rep_id, day)
    if stored is not None:
        return sr.RepDay.model_validate(stored)
    now = day_time(engine, day)
    channels = tuple(c for c in REP_CHANNELS if c in engine.catalog.channels)
    if not channels:
        raise ApiError(409, "no_rep_channels", "the catalog has no rep channel (rep_visit, ...)")
    served = engine.models.current
    candidates = [a for a in engine.catalog.actions if a.channel in channels]
    prepared: list[Prepared] = []
    blocked: list[sr.DayBlocked] = []
    # the rep's open notifications (docs/triggers.md): their HCPs get the trigger's
    # suggestion, first in the list
    triggered = open_for_day(store, rep.rep_id, now)
    carried: dict[str, Notification] = {}
    for row in territory_rows(store, rep.rep_id, day):
        hcp = store.get_hcp(row.hcp_id)
        if hcp is None:  # pragma: no cover - alignment rows name stored HCPs
            continue
        note = triggered.get(hcp.hcp_id)
        if note is not None:
            pr = engine.prepare(
                hcp,
                now=now,
                channels=(note.channel,),
                k=1,
                request={"requester": REQUESTER},
                requester=REQUESTER,
                served=served,
                candidates=[Action(note.content_id, note.channel)],
            )
            if pr.decision is not None:
                carried[hcp.hcp_id] = note
                prepared.append(pr)
                continue
            # the contact rules forbid the trigger's suggestion now: a normal decision
        pr = engine.prepare(
            hcp,
            now=now,
            channels=channels,
            k=1,
            request={"requester": REQUESTER},
            requester=REQUESTER,
            served=served,
            candidates=candidates,
        )
        if pr.decision is None:
            blocked.append(
                sr.DayBlocked(hcp_id=hcp.hcp_id, rules=sorted({s.rule for s in pr.suppressed}))
            )
        else:
            prepared.append(pr)
    deciles = {pr.hcp_id: pr.context.hcp.decile for pr in prepared}
    prepared.sort(
        key=lambda pr: (
            -(pr.value if pr.value is not None else float("-inf")),
            -deciles[pr.hcp_id],
            pr.hcp_id,
        )
    )
    # triggered suggestions first, most urgent first; the others keep their order
    first = sorted(
        (pr for pr in prepared if pr.hcp_id in carried),
        key=lambda pr: (carried[pr.hcp_id].priority, carried[pr.hcp_id].due_by, pr.hcp_id),
    )
    prepared = first + [pr for pr in prepared if pr.hcp_id not in carried]
    kept, rest = prepared[: rep.capacity_per_day], prepared[rep.capacity_per_day :]
    entries = []
    for rank, pr in enumerate(kept, start=1):
        d, s = pr.decision, pr.suggestions[0]
        assert d is not None
        entries.append(
            sr.DayEntry(
                rank=rank,
                hcp_id=pr.hcp_id,
                event_id=d.event_id,
                action_id=s.action_id,
                channel=s.channel,
                content_id=s.content_id,
                title=s.title,
                topic=s.topic,
                priority=pr.value,
                propensity=d.propensity,
                reasons=_trigger_reason(carried[pr.hcp_id]) + s.reasons
                if pr.hcp_id in carried
                else s.reasons,
                trigger=carried[pr.hcp_id].trigger if pr.hcp_id in carried else None,
                notification_id=carried[pr.hcp_id].id if pr.hcp_id in carried else None,
                due=day,
                expires_at=_expiry(engine.catalog, s.content_id, pr.context.hcp.market, day),
            )
        )
    body = sr.RepDay(
        rep_id=rep.rep_id,
        date=day,
        capacity_per_day=rep.capacity_per_day,
        model_version=served.version,
        created_at=now,
        suggestions=entries,
        blocked=blocked,
        over_capacity=sorted(pr.hcp_id for pr in rest),
    )
    decisions = [pr.decision for pr in kept if pr.decision is not None]
    saved = save_day(store, rep.rep_id, day, decisions, body.model_dump(mode="json"))
    out = sr.RepDay.model_validate(saved)
    if out.created_at == now:  # this call stored it (another call may have won a race)
        for pr in kept:
            engine._count([pr])
        mark_on_day(
            store,
            [
                (carried[pr.hcp_id].id, pr.decision.event_id)
                for pr in kept
                if pr.hcp_id in carried and pr.decision is not None
            ],
        )
    return out


def _trigger_reason(note: Notification) -> list[str]:
    """The reason a triggered entry leads with: what the HCP did, and by when."""
    fmt = "%Y-%m-%d %H:%M UTC"
    return [
        f"Triggered by {note.event.replace('_', ' ')} on {note.event_ts.strftime(fmt)} "
        f"(trigger '{note.trigger}'): due by {note.due_by.strftime(fmt)}"
    ]


# ------------------------------------------------------------ territory view
def territory_view(engine: DecisionEngine, rep: Rep, day: date) -> sr.RepTerritory:
    """The rep's HCPs on ``day`` with their last contact and open suggestions."""
    store = engine.store
    con = store._conn()
    rows = territory_rows(store, rep.rep_id, day)
    items = day_items(store, rep.rep_id, day, date.max)
    closed = _closed_events(engine, [i.event_id for i in items])
    open_by_hcp: dict[str, list[sr.OpenSuggestion]] = {}
    for i in items:
        if i.event_id not in closed:
            open_by_hcp.setdefault(i.hcp_id, []).append(
                sr.OpenSuggestion(event_id=i.event_id, date=i.day, action_id=i.chosen_action_id)
            )
    out = []
    for row in rows:
        hcp = store.get_hcp(row.hcp_id)
        if hcp is None:  # pragma: no cover
            continue
        last = con.execute(
            "SELECT ts_us, channel, content_id, origin, kind FROM touches"
            " WHERE hcp_id=? AND kind='contact' ORDER BY ts_us DESC, id DESC LIMIT 1",
            (row.hcp_id,),
        ).fetchone()
        out.append(
            sr.TerritoryHCP(
                hcp_id=hcp.hcp_id,
                specialty=hcp.specialty,
                decile=hcp.decile,
                aligned_since=row.valid_from,
                last_touch=None
                if last is None
                else sr.LastTouch(
                    ts=_from_us(last[0]),
                    channel=last[1],
                    content_id=last[2],
                    origin=last[3],
                    kind=last[4],
                ),
                open_suggestions=open_by_hcp.get(row.hcp_id, []),
            )
        )
    return sr.RepTerritory(rep_id=rep.rep_id, date=day, hcps=out)


def _closed_events(engine: DecisionEngine, event_ids: Sequence[str]) -> set[str]:
    """Events with any outcome (response or rep feedback) or an override touch."""
    con = engine.store._conn()
    closed: set[str] = set()
    ids = list(dict.fromkeys(event_ids))
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        marks = ",".join("?" * len(chunk))
        closed.update(
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT event_id FROM outcomes WHERE event_id IN ({marks})", chunk
            )
        )
        closed.update(
            r[0]
            for r in con.execute(
                "SELECT DISTINCT overrides_event_id FROM touches"
                f" WHERE overrides_event_id IN ({marks})",
                chunk,
            )
        )
    return closed


# ------------------------------------------------------------------ overrides
def override_kind(catalog: Catalog, decision_hcp: str, chosen_action_id: str, t: Touch) -> str:
    """What the override changed first: ``hcp``, ``channel``, ``topic`` or ``content``.

    >>> from datetime import datetime, UTC
    >>> cat = Catalog.default()
    >>> a = cat.actions[0]
    >>> override_kind(cat, "h1", a.action_id,
    ...               Touch("h2", datetime(2026, 1, 5, tzinfo=UTC), a.channel, a.content_id))
    'hcp'
    """
    chosen = Action.parse(chosen_action_id)
    if t.hcp_id != decision_hcp:
        return "hcp"
    if t.channel != chosen.channel:
        return "channel"
    suggested = catalog.by_id.get(chosen.content_id)
    done = catalog.by_id.get(t.content_id)
    if suggested is None or done is None or suggested.topic != done.topic:
        return "topic"
    return "content"


OVERRIDE_KINDS: tuple[str, ...] = ("hcp", "channel", "topic", "content")


def override_report(
    engine: DecisionEngine, rep: Rep, since: date, until: date
) -> sr.OverrideReport:
    """Override rates of the rep's day-list entries of ``since..until``, overall, by
    what the override changed, and by the suggested channel and topic."""
    if until < since:
        raise invalid(f"until: {until} is before since {since}")
    items = day_items(engine.store, rep.rep_id, since, until)
    overrides = override_touches(engine.store, [i.event_id for i in items])
    first: dict[str, Any] = {}
    for o in overrides:
        first.setdefault(o.event_id, o)
    by_kind: Counter[str] = Counter({k: 0 for k in OVERRIDE_KINDS})
    for o in first.values():
        by_kind[override_kind(engine.catalog, o.decision_hcp_id, o.chosen_action_id, o.touch)] += 1
    topic_of = {c: it.topic for c, it in engine.catalog.by_id.items()}
    n_ch: Counter[str] = Counter()
    o_ch: Counter[str] = Counter()
    n_tp: Counter[str] = Counter()
    o_tp: Counter[str] = Counter()
    for i in items:
        a = Action.parse(i.chosen_action_id)
        topic = topic_of.get(a.content_id, "unknown")
        n_ch[a.channel] += 1
        n_tp[topic] += 1
        if i.event_id in first:
            o_ch[a.channel] += 1
            o_tp[topic] += 1

    def rates(n: Counter[str], o: Counter[str]) -> list[sr.OverrideRate]:
        return [
            sr.OverrideRate(key=k, suggestions=n[k], overridden=o[k], rate=round(o[k] / n[k], 4))
            for k in sorted(n)
        ]

    total = len(items)
    return sr.OverrideReport(
        rep_id=rep.rep_id,
        since=since,
        until=until,
        suggestions=total,
        overridden=len(first),
        rate=round(len(first) / total, 4) if total else None,
        by_kind=dict(by_kind),
        by_channel=rates(n_ch, o_ch),
        by_topic=rates(n_tp, o_tp),
    )


# ------------------------------------------------------------------- timeline
#: order of the entry types at the same microsecond (the cursor's second key)
_TYPE_RANK = {"decision": 0, "touch": 1, "outcome": 2}


def encode_cursor(ts_us: int, rank: int, key: str) -> str:
    """The ``before`` cursor after an item: ``<ts_us>.<rank>.<key>``.

    >>> decode_cursor(encode_cursor(5, 1, "t42"))
    (5, 1, 't42')
    """
    return f"{ts_us}.{rank}.{key}"


def decode_cursor(cursor: str) -> tuple[int, int, str]:
    parts = cursor.split(".", 2)
    try:
        if len(parts) != 3 or not parts[2]:
            raise ValueError
        return int(parts[0]), int(parts[1]), parts[2]
    except ValueError:
        raise invalid(
            f"before: {cursor!r} is not a cursor from a previous page's next_before"
        ) from None


def timeline(engine: DecisionEngine, hcp_id: str, limit: int, before: str | None) -> sr.Timeline:
    """The HCP's activated decisions, touches (contacts and pulls) and outcomes
    (responses and rep feedback), newest first, ``limit`` per page; and the
    dismissals and snoozes suppressing content now."""
    store = engine.store
    con = store._conn()
    # one ordered union: (ts, type rank, key) is unique and is the cursor
    pad_t, pad_o = store.dialect.zero_pad("t.id", 20), store.dialect.zero_pad("o.id", 20)
    sql = (
        "SELECT * FROM ("
        " SELECT COALESCE(d.activated_us, d.ts_us) AS ts, 0 AS rk, 'd' || d.event_id AS k,"
        "  d.event_id, d.chosen_action_id, d.requester, d.policy, d.model_version,"
        "  NULL AS channel, NULL AS content_id, NULL AS origin, NULL AS kind, NULL AS topics,"
        "  NULL AS over, NULL AS otype, NULL AS reason, NULL AS oaction"
        "  FROM decisions d WHERE d.hcp_id=? AND d.activated=1"
        " UNION ALL"
        f" SELECT t.ts_us, 1, 't' || {pad_t}, NULL, NULL, NULL, NULL, NULL,"
        "  t.channel, t.content_id, t.origin, t.kind, t.topics, t.overrides_event_id,"
        "  NULL, NULL, NULL FROM touches t WHERE t.hcp_id=?"
        " UNION ALL"
        f" SELECT o.ts_us, 2, 'o' || {pad_o}, o.event_id, NULL, NULL, NULL, NULL,"
        "  NULL, NULL, o.source, o.kind, NULL, NULL, o.type, f.reason_code,"
        "  COALESCE(o.action_id, d2.chosen_action_id)"
        "  FROM outcomes o JOIN decisions d2 ON d2.event_id=o.event_id"
        "  LEFT JOIN feedback f ON f.outcome_id=o.id WHERE d2.hcp_id=?"
        ") AS u"
    )
    args: list[Any] = [hcp_id, hcp_id, hcp_id]
    if before is not None:
        ts_us, rank, key = decode_cursor(before)
        sql += " WHERE (ts, rk, k) < (?, ?, ?)"
        args += [ts_us, rank, key]
    sql += " ORDER BY ts DESC, rk DESC, k DESC LIMIT ?"
    args.append(limit + 1)
    rows = con.execute(sql, args).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items: list[sr.TimelineItem] = []
    for r in rows:
        ts = _from_us(r[0])
        if r[1] == 0:
            a = Action.parse(r[4])
            items.append(
                sr.TimelineItem(
                    type="decision",
                    ts=ts,
                    channel=a.channel,
                    content_id=a.content_id,
                    event_id=r[3],
                    action_id=r[4],
                    requester=r[5],
                    policy=r[6],
                    model_version=r[7],
                )
            )
        elif r[1] == 1:
            items.append(
                sr.TimelineItem(
                    type="touch" if r[11] == "contact" else "pull",
                    ts=ts,
                    channel=r[8],
                    content_id=r[9],
                    topics=list(json.loads(r[12])),
                    origin=r[10],
                    kind=r[11],
                    overrides_event_id=r[13],
                )
            )
        else:
            a = Action.parse(r[16])
            items.append(
                sr.TimelineItem(
                    type="feedback" if r[11] == "feedback" else "outcome",
                    ts=ts,
                    channel=a.channel,
                    content_id=a.content_id,
                    event_id=r[3],
                    action_id=r[16],
                    outcome_type=r[14],
                    reason_code=r[15],
                    origin=r[10],
                )
            )
    nxt = encode_cursor(rows[-1][0], rows[-1][1], rows[-1][2]) if more and rows else None
    now = datetime.now(UTC)
    active = []
    for fb in store.recent_feedback(hcp_id, now, lookback_days=engine.contact.dismissed_days):
        if fb.type == "snoozed":
            end = engine.contact.snooze_end(fb)
        else:
            end = fb.ts + timedelta(days=engine.contact.dismissed_days)
        if end > now and (fb.type == "snoozed" or engine.contact.dismissed_days > 0):
            active.append(
                sr.ActiveSuppression(
                    content_id=fb.content_id,
                    rule=fb.type,  # type: ignore[arg-type]
                    since=fb.ts,
                    until=end,
                    event_id=fb.event_id,
                )
            )
    return sr.Timeline(hcp_id=hcp_id, items=items, next_before=nxt, active_suppressions=active)
