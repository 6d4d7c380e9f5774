"""The SQLite backend of the event store: one database file in WAL mode.

The embedded default (no ``NBA_STORE_URL``). Several worker processes (and
threads) may share one file: each process/thread gets its own connection
(re-opened after a fork), waits on a lock for up to ``busy_timeout_s`` and takes
the write lock up front (``BEGIN IMMEDIATE``) for every write, so writers queue
instead of failing half-way; before that, each takes its turn on a lock file
beside the database (``<database>-lock``, :mod:`serving.writer_turn`), so that
waiting writers are woken when the lock is free instead of sleeping in SQLite's
busy handler. ``synchronous="FULL"`` fsyncs the write-ahead log
at each commit (see :mod:`serving.store`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

from nba.catalog import Catalog
from nba.domain import ensure_utc
from serving.store import (
    _TOUCH_PART_COLS,
    EventStore,
    HCPState,
    StoreError,
    _day_bounds,
    _history_parts,
    _Part,
    _to_us,
)
from serving.store_sql import SQLITE, Connection
from serving.writer_turn import WriterTurn

#: statement text (and type sets) of the merged outcome parts, per the parts' types
_OUTCOME_SQL: dict[tuple[Any, ...], tuple[str, tuple[str, ...], tuple[frozenset[str], ...]]] = {}
#: statement text of the profile riding on the extras' statement, per part shapes
_PROFILE_EXTRAS_SQL: dict[tuple[Any, ...], str] = {}


def _overridden_sql() -> str:
    """The statement text of the history's ``h_overridden`` part on SQLite (built
    once): :meth:`SQLiteStore._fetch_state_parts` runs its own statement for that
    part only when the part is this one."""
    global _OVERRIDDEN_PART_SQL
    if not _OVERRIDDEN_PART_SQL:
        _OVERRIDDEN_PART_SQL = _history_parts(SQLITE, "", date(2000, 1, 1))["h_overridden"].sql()
    return _OVERRIDDEN_PART_SQL


_OVERRIDDEN_PART_SQL = ""


def _profile_extras_sql(profile: _Part, extras: _Part) -> str:
    """The statement of the context's extras with the profile's columns riding on
    it (both read the HCP's row): the profile's columns first, then the extras'."""
    # the texts name the parts' shapes (hashed once per string, not per call)
    key = (profile.sql(), extras.sql())
    sql = _PROFILE_EXTRAS_SQL.get(key)
    if sql is None:
        sql = _Part(
            tuple(("h." + c, k) for c, k in profile.cols) + extras.cols,
            extras.rest,
            extras.order,
        ).sql()
        if len(_PROFILE_EXTRAS_SQL) >= 64:
            _PROFILE_EXTRAS_SQL.clear()
        _PROFILE_EXTRAS_SQL[key] = sql
    return sql


class _DirectPlan(NamedTuple):
    """What :meth:`SQLiteStore._state_rows` runs, built once per ``evidence``
    from the parts of :meth:`EventStore._state_parts` (so the statements are the
    same texts as :meth:`SQLiteStore._fetch_state_parts` runs)."""

    feedback: str
    suppressions: str
    stated: str | None
    profile_extras: str
    profile_width: int
    latest: str
    outcomes: str
    outcome_types: tuple[str, ...]
    #: the type sets of the outcome parts: the history's engagements (30 and 90
    #: days), then, with the evidence, the responses
    outcome_kinds: tuple[frozenset[str], ...]


#: :class:`_DirectPlan` by ``evidence``
_DIRECT_PLANS: dict[bool, _DirectPlan] = {}


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
        self._turn = WriterTurn(self.path.with_name(self.path.name + "-lock"))
        con = self._conn()
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"EventStore: {self.path} cannot use WAL mode (got {mode!r})")
        self._setup_schema()

    def writer_turn(self) -> WriterTurn:
        """This thread's turn to write: a ``flock`` on ``<database>-lock``
        (:mod:`serving.writer_turn`), so that writers of all processes queue in the
        kernel instead of sleeping in SQLite's busy handler."""
        return self._turn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one read transaction, so that every
        statement run on it sees the same snapshot of the file (inside the caller's
        own transaction: that transaction's)."""
        con = cast(sqlite3.Connection, self._conn())  # this backend's connections
        if con.in_transaction:  # inside the caller's transaction: its snapshot already
            yield con
            return
        con.execute("BEGIN")  # deferred: a read snapshot from the first SELECT on
        try:
            yield con
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to see
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

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
        with self._snapshot() as con:
            return {name: con.execute(p.sql(), p.args).fetchall() for name, p in parts.items()}

    #: the parts of an HCP's state read from the touches table: their rows come from
    #: one statement (:meth:`_fetch_state_parts`)
    _TOUCH_PARTS = ("touches", "h_touches", "h_pulls", "h_latest")
    _WIDE_TOUCHES = (
        f"SELECT id, {', '.join(c for c, _ in _TOUCH_PART_COLS)} FROM touches"
        " WHERE hcp_id=? AND ts_us>=? ORDER BY ts_us, id"
    )

    #: the history's ``h_overridden`` part (its parameters ``(hcp_id, lo_us, end_us)``):
    #: the HCP's decisions that a touch in the range overrides, counted once each.
    #: The touches of the range that override the HCP's decisions are one range of
    #: ``touches_overrides_hcp`` (schema version 5), each joined to its decision by
    #: the key; the distinct decisions are the part's ``COUNT(DISTINCT ...)``
    _OVERRIDDEN = (
        "SELECT COUNT(*) FROM decisions d WHERE d.event_id IN (SELECT t.overrides_event_id"
        " FROM touches t WHERE t.overrides_hcp_id=? AND t.ts_us>=? AND t.ts_us<?)"
    )

    #: the history's parts on outcomes joined to the HCP's decisions (always there);
    #: "outcomes", the evidence's responses, joins them when asked for
    _OUTCOME_PARTS = ("h_engaged", "h_engaged_at")

    @staticmethod
    def _outcome_parts(
        con: sqlite3.Connection, hcp_id: str, parts: Mapping[str, _Part]
    ) -> dict[str, list[tuple[Any, ...]]]:
        """The rows of the parts on outcomes (:data:`_OUTCOME_PARTS`, and
        ``outcomes`` when in ``parts``) from one statement; see
        :meth:`_fetch_state_parts`. Each part's parameters are ``(hcp_id, *types,
        lo_us, hi_us)``; the engagements of 30 days and the responses include
        ``hi_us``, the engagements of 90 days do not."""
        sql, types_, spans, lo, hi = SQLiteStore._outcome_plan(hcp_id, parts)
        rows = con.execute(sql, (hcp_id, *types_, lo, hi)).fetchall()
        return SQLiteStore._outcome_rows_split(rows, spans)

    @staticmethod
    def _outcome_plan(
        hcp_id: str, parts: Mapping[str, _Part]
    ) -> tuple[str, tuple[str, ...], dict[str, tuple[frozenset[str], int, int, bool]], int, int]:
        """The merged statement of the outcome parts (its parameters ``(hcp_id,
        *types, lo, hi)``), its types, each part's span (types, lo, hi, hi
        included) and the union's ``lo`` and ``hi``."""
        # (types, lo, hi, hi included) of each part, read from its own parameters
        spans: dict[str, tuple[frozenset[str], int, int, bool]] = {}
        shape: list[tuple[Any, ...]] = []
        for name, hi_in in (("h_engaged", True), ("h_engaged_at", False), ("outcomes", True)):
            if name in parts:
                args = parts[name].args
                if args[0] != hcp_id:
                    raise StoreError(f"hcp_state: part {name!r} is of another HCP")
                shape.append(args[1:-2])
                spans[name] = (frozenset(), int(args[-2]), int(args[-1]), hi_in)
        shape_key = tuple(shape)
        # "+o.type": the type is tested on each outcome row of a decision, not used to
        # search the (event_id, type, source_id) index, which would take one search per
        # decision and type (ten types) instead of one per decision (the same rows)
        built = _OUTCOME_SQL.get(shape_key)  # the statement and type sets of these parts' types
        if built is None:
            types = sorted(set().union(*shape))
            built = (
                "SELECT o.event_id, COALESCE(o.action_id, d.chosen_action_id), o.type, o.ts_us"
                " FROM outcomes o JOIN decisions d ON d.event_id=o.event_id"
                f" WHERE o.hcp_id=? AND +o.type IN ({','.join('?' * len(types))})"
                " AND o.ts_us>=? AND o.ts_us<=?",
                tuple(types),
                tuple(frozenset(t) for t in shape),
            )
            if len(_OUTCOME_SQL) >= 64:  # the shapes are few; stay bounded all the same
                _OUTCOME_SQL.clear()
            _OUTCOME_SQL[shape_key] = built
        sql, types_, kinds_ = built
        spans = {
            n: (kinds, lo_, hi_, inc)
            for (n, (_, lo_, hi_, inc)), kinds in zip(spans.items(), kinds_, strict=True)
        }
        lo = min(v[1] for v in spans.values())
        hi = max(v[2] for v in spans.values())
        return sql, types_, spans, lo, hi

    @staticmethod
    def _outcome_rows_split(
        rows: Sequence[tuple[Any, ...]],
        spans: Mapping[str, tuple[frozenset[str], int, int, bool]],
    ) -> dict[str, list[tuple[Any, ...]]]:
        """Each outcome part's rows from the merged statement's rows ``(event_id,
        action, type, ts_us)`` of one HCP; ``spans`` gives each part's (types, lo,
        hi, hi included), as :meth:`_outcome_parts` reads them."""
        if not rows:
            return {name: [] for name in spans}
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name, (kinds, p_lo, p_hi, hi_in) in spans.items():
            first: dict[tuple[str, str, str], int] = {}  # MIN(ts) per GROUP BY key
            for event_id, action, typ, ts in rows:
                if typ in kinds and ts >= p_lo and (ts <= p_hi if hi_in else ts < p_hi):
                    key = (event_id, action, typ)
                    seen = first.get(key)
                    if seen is None or ts < seen:
                        first[key] = ts
            if name == "h_engaged":  # ORDER BY event_id, action, type
                out[name] = [(k[1],) for k in sorted(first)]
            elif name == "h_engaged_at":
                out[name] = [(k[1], first[k]) for k in sorted(first)]
            else:  # ORDER BY MIN(ts), action, type, event_id
                order = sorted(first, key=lambda k: (first[k], k[1], k[2], k[0]))
                out[name] = [(k[0], k[1], k[2], first[k]) for k in order]
        return out

    def _fetch_state_parts(
        self, parts: Mapping[str, _Part]
    ) -> Mapping[str, Sequence[tuple[Any, ...]]]:
        """The rows of :meth:`EventStore.hcp_state`'s parts, in one read transaction,
        with fewer statements than parts:

        - the four parts on the touches table (the touches since ``since``, the
          history's contacts and pulls of its 90 days, the latest contact before
          the day) from one statement: the HCP's touches since the earlier of the
          two starts, split in Python by the parts' own conditions and parameters;
          only when that range holds no contact before the day is the latest
          contact (however old) read by its own statement;
        - the profile from the statement of the context's extras (the HCP's row
          joined to its statements of the window: the profile's columns are
          those of the first row);
        - the parts on outcomes joined to the HCP's decisions (the history's
          engagements of 30 and 90 days, and the responses of the evidence) from
          one statement: the outcomes of all their types over the union of their
          ranges, grouped and ordered in Python as each part's ``GROUP BY`` and
          ``ORDER BY`` do (the smallest time of each (decision, action, type));
        - the count of overridden decisions by :data:`_OVERRIDDEN` (the same count
          without the part's ``COUNT(DISTINCT ...)``).

        Each part's rows equal its own statement's (the same values, in the same
        order); each statement saved is several per cent of a decision's SQLite time.
        """
        if not all(n in parts for n in self._TOUCH_PARTS):
            return self._fetch_parts(parts)
        hcp_id, since_us = parts["touches"].args
        h_hcp, lo_us, end_us = parts["h_touches"].args
        if h_hcp != hcp_id or parts["h_pulls"].args != (hcp_id, lo_us, end_us):
            return self._fetch_parts(parts)
        merged: tuple[str, ...] = ()
        if all(n in parts for n in self._OUTCOME_PARTS):
            # the evidence's responses ("outcomes") join them when asked for
            merged = self._OUTCOME_PARTS + (("outcomes",) if "outcomes" in parts else ())
        # the profile's columns ride on the extras' statement (both read the HCP's row)
        profile, extras = parts.get("profile"), parts.get("extras")
        if (
            profile is not None
            and extras is not None
            and profile.args == (hcp_id,)
            and extras.args[-1] == hcp_id
        ):
            merged += ("profile", "extras")
        rest = {n: p for n, p in parts.items() if n not in self._TOUCH_PARTS and n not in merged}
        over = rest.get("h_overridden")
        if over is not None and over.args[0] == hcp_id and over.sql() == _overridden_sql():
            del rest["h_overridden"]  # the same count by a statement of its own (below)
        else:
            over = None
        with self._snapshot() as con:
            out: dict[str, Sequence[tuple[Any, ...]]] = {
                name: con.execute(p.sql(), p.args).fetchall() for name, p in rest.items()
            }
            if over is not None:
                out["h_overridden"] = con.execute(self._OVERRIDDEN, over.args).fetchall()
            if self._OUTCOME_PARTS[0] in merged:
                out.update(self._outcome_parts(con, hcp_id, parts))
            if profile is not None and extras is not None and "profile" in merged:
                rows = con.execute(_profile_extras_sql(profile, extras), extras.args).fetchall()
                width = len(profile.cols)
                # the HCP's row once per statement in the window (at least once)
                out["profile"] = [rows[0][:width]] if rows else []
                out["extras"] = [r[width:] for r in rows]
            p = parts["h_latest"]
            out.update(self._touch_rows(con, hcp_id, since_us, lo_us, end_us, p.sql(), p.args))
        return out

    def hcp_state(
        self,
        hcp_id: str,
        now: datetime,
        since: datetime,
        catalog: Catalog,
        evidence: bool = True,
    ) -> HCPState:
        """:meth:`EventStore.hcp_state` from :meth:`_state_rows`: the same statements
        and rows as :meth:`_fetch_state_parts` of :meth:`_state_parts`, without
        building the parts (a decision reads one state; the parts, their checks
        and the outcome statement's plan were about a fifth of the read's CPU)."""
        now = ensure_utc(now, "hcp_state", "now")
        since = ensure_utc(since, "hcp_state", "since")
        rows = self._state_rows(hcp_id, now, since, evidence)
        return self._state_from(rows, now.date(), catalog, evidence)

    def _direct_plan(self, evidence: bool) -> _DirectPlan:
        """The statements of :meth:`_state_rows`, built once from template parts."""
        plan = _DIRECT_PLANS.get(evidence)
        if plan is None:
            t = datetime(2000, 1, 1, tzinfo=UTC)
            parts = self._state_parts("", t, t, evidence)
            sql, types_, spans, _, _ = self._outcome_plan("", parts)
            stated = parts.get("stated")
            plan = _DIRECT_PLANS[evidence] = _DirectPlan(
                feedback=parts["feedback"].sql(),
                suppressions=parts["suppressions"].sql(),
                stated=None if stated is None else stated.sql(),
                profile_extras=_profile_extras_sql(parts["profile"], parts["extras"]),
                profile_width=len(parts["profile"].cols),
                latest=parts["h_latest"].sql(),
                outcomes=sql,
                outcome_types=types_,
                outcome_kinds=tuple(v[0] for v in spans.values()),
            )
        return plan

    def _state_rows(
        self, hcp_id: str, now: datetime, since: datetime, evidence: bool
    ) -> dict[str, Sequence[tuple[Any, ...]]]:
        """The rows of :meth:`hcp_state`'s parts (``now`` and ``since`` in UTC): each
        part's rows equal ``_fetch_state_parts(_state_parts(hcp_id, now, since,
        evidence))``'s, from the same statements with the same parameters, taken from
        the bounds directly (the tests compare them part by part)."""
        plan = _DIRECT_PLANS.get(evidence) or self._direct_plan(evidence)
        now_us = _to_us(now)
        since_us = _to_us(since)
        end_us, lo_us, d30_us, stated_lo = _day_bounds(now.date())
        # (types, lo, hi, hi included) of each outcome part, as _outcome_plan reads them
        kinds = plan.outcome_kinds
        spans: dict[str, tuple[frozenset[str], int, int, bool]] = {
            "h_engaged": (kinds[0], d30_us, end_us, True),
            "h_engaged_at": (kinds[1], lo_us, end_us, False),
        }
        o_lo, o_hi = min(d30_us, lo_us), end_us
        if evidence:
            spans["outcomes"] = (kinds[2], since_us, now_us, True)
            o_lo, o_hi = min(o_lo, since_us), max(o_hi, now_us)
        width = plan.profile_width
        with self._snapshot() as con:
            out: dict[str, Sequence[tuple[Any, ...]]] = {
                "feedback": con.execute(
                    plan.feedback, (hcp_id, now_us, -(2**62), now_us)
                ).fetchall(),
                "suppressions": con.execute(plan.suppressions, (hcp_id, now_us, now_us)).fetchall(),
                "h_overridden": con.execute(self._OVERRIDDEN, (hcp_id, lo_us, end_us)).fetchall(),
            }
            if plan.stated is not None:
                out["stated"] = con.execute(plan.stated, (hcp_id,)).fetchall()
            rows = con.execute(plan.outcomes, (hcp_id, *plan.outcome_types, o_lo, o_hi)).fetchall()
            out.update(self._outcome_rows_split(rows, spans))
            rows = con.execute(plan.profile_extras, (stated_lo, end_us, hcp_id)).fetchall()
            # the HCP's row once per statement in the window (at least once)
            out["profile"] = [rows[0][:width]] if rows else []
            out["extras"] = [r[width:] for r in rows]
            out.update(
                self._touch_rows(
                    con, hcp_id, since_us, lo_us, end_us, plan.latest, (hcp_id, end_us)
                )
            )
        return out

    def _touch_rows(
        self,
        con: sqlite3.Connection,
        hcp_id: str,
        since_us: int,
        lo_us: int,
        end_us: int,
        latest_sql: str,
        latest_args: tuple[Any, ...],
    ) -> dict[str, Sequence[tuple[Any, ...]]]:
        """The touch parts (``touches``, ``h_touches``, ``h_pulls``, ``h_latest``) from
        one statement over the HCP's touches since the earlier of ``since_us`` and
        ``lo_us``; the latest contact before it by ``latest_sql`` only when that range
        holds none. Runs on ``con`` (inside the caller's read snapshot)."""
        wide = con.execute(self._WIDE_TOUCHES, (hcp_id, min(since_us, lo_us))).fetchall()
        # columns: id, hcp_id, ts_us, channel, content_id, origin, kind, topics, ...
        contacts = [r for r in wide if r[6] == "contact" and r[2] < end_us]
        if contacts:
            latest = [(contacts[-1][4],)]  # (ts_us, id) order: the last is the latest
        else:
            latest = con.execute(latest_sql, latest_args).fetchall()
        return {
            "touches": [r[1:] for r in wide if r[2] >= since_us],
            "h_touches": [(r[2], r[3], r[4]) for r in contacts if r[2] >= lo_us],
            # kind is NOT NULL: "kind != 'contact'" is every other kind
            "h_pulls": [(r[2], r[7]) for r in wide if r[6] != "contact" and lo_us <= r[2] < end_us],
            "h_latest": latest,
        }

    #: HCPs per set-based statement of :meth:`hcp_states` (SQLite's parameter limit
    #: is far above; a few statement texts are kept in the connection's cache)
    _MANY_CHUNK = 500

    def hcp_states(
        self,
        hcp_ids: Sequence[str],
        now: datetime,
        since: datetime,
        catalog: Catalog,
        evidence: bool = True,
    ) -> dict[str, HCPState]:
        """:meth:`EventStore.hcp_states` with a few set-based statements for all the
        HCPs instead of one state read each, in one read transaction (one snapshot):
        per chunk of :data:`_MANY_CHUNK` HCPs, the profiles with their statements of
        the window, their touches, feedback, trigger suppressions, outcomes on their
        decisions, overridden decisions (and with ``evidence`` their statements),
        each statement ordered by HCP and then as its part of
        :meth:`EventStore._state_parts` is; the rows are split per HCP as
        :meth:`_fetch_state_parts` splits one HCP's. Only the HCPs without a contact
        in the range read need one more statement (their latest contact, however
        old). Each state equals :meth:`EventStore.hcp_state`'s (the tests compare
        them field by field).
        """
        now = ensure_utc(now, "hcp_states", "now")
        since = ensure_utc(since, "hcp_states", "since")
        ids = list(dict.fromkeys(hcp_ids))
        out: dict[str, HCPState] = {}
        if not ids:
            return out
        day = now.date()
        # the parameters of every part, as one HCP's parts carry them
        parts = self._state_parts(ids[0], now, since, evidence)
        _, since_us = parts["touches"].args
        _, lo_us, end_us = parts["h_touches"].args
        feedback_args = parts["feedback"].args[1:]
        stated_lo, stated_hi, _ = parts["extras"].args
        supp_args = parts["suppressions"].args[1:]
        over_args = parts["h_overridden"].args[1:]
        _, types_, spans, o_lo, o_hi = self._outcome_plan(ids[0], parts)
        profile_cols = ", ".join("h." + c for c, _ in parts["profile"].cols)
        width = len(parts["profile"].cols)
        chunk = self._MANY_CHUNK
        with self._snapshot() as con:
            for start in range(0, len(ids), chunk):
                some = ids[start : start + chunk]
                marks = ",".join("?" * len(some))
                rows: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
                for r in con.execute(
                    f"SELECT {profile_cols}, h.attributes, s.topics, s.channels"
                    " FROM hcps h LEFT JOIN stated_preferences s ON s.hcp_id=h.hcp_id"
                    f" AND s.ts_us>=? AND s.ts_us<? WHERE h.hcp_id IN ({marks})"
                    " ORDER BY h.hcp_id, s.ts_us DESC, s.id DESC",
                    (stated_lo, stated_hi, *some),
                ):
                    got = rows.get(r[0])
                    if got is None:  # the HCP's row once per statement (at least once)
                        got = rows[r[0]] = {n: [] for n in self._MANY_PARTS}
                        got["profile"].append(r[:width])
                    got["extras"].append(r[width:])
                known = [h for h in some if h in rows]
                if not known:
                    continue
                marks = ",".join("?" * len(known))
                wide_of: dict[str, list[tuple[Any, ...]]] = {h: [] for h in known}
                for r in con.execute(
                    f"SELECT id, {', '.join(c for c, _ in _TOUCH_PART_COLS)} FROM touches"
                    f" WHERE hcp_id IN ({marks}) AND ts_us>=? ORDER BY hcp_id, ts_us, id",
                    (*known, min(since_us, lo_us)),
                ):
                    wide_of[r[1]].append(r)
                no_contact: list[str] = []
                for h in known:
                    got, wide = rows[h], wide_of[h]
                    # columns: id, hcp_id, ts_us, channel, content_id, origin, kind, ...
                    contacts = [r for r in wide if r[6] == "contact" and r[2] < end_us]
                    if contacts:  # (ts_us, id) order: the last is the latest
                        got["h_latest"].append((contacts[-1][4],))
                    else:
                        no_contact.append(h)
                    got["touches"] = [r[1:] for r in wide if r[2] >= since_us]
                    got["h_touches"] = [(r[2], r[3], r[4]) for r in contacts if r[2] >= lo_us]
                    got["h_pulls"] = [
                        (r[2], r[7]) for r in wide if r[6] != "contact" and lo_us <= r[2] < end_us
                    ]
                if no_contact:
                    for h, content in con.execute(
                        "SELECT h.hcp_id, (SELECT t.content_id FROM touches t"
                        " WHERE t.hcp_id=h.hcp_id AND t.kind='contact' AND t.ts_us<?"
                        " ORDER BY t.ts_us DESC, t.id DESC LIMIT 1)"
                        f" FROM hcps h WHERE h.hcp_id IN ({','.join('?' * len(no_contact))})",
                        (end_us, *no_contact),
                    ):
                        if content is not None:
                            rows[h]["h_latest"].append((content,))
                for r in con.execute(
                    "SELECT hcp_id, content_id, type, ts_us, event_id, reason_code,"
                    f" snooze_until_us FROM feedback WHERE hcp_id IN ({marks})"
                    " AND type IN ('dismissed', 'snoozed') AND ts_us<=?"
                    " AND (ts_us>=? OR snooze_until_us>?) ORDER BY hcp_id, ts_us, outcome_id",
                    (*known, *feedback_args),
                ):
                    rows[r[0]]["feedback"].append(r)
                for r in con.execute(
                    "SELECT hcp_id, trigger, channel, content_id, since_us, until_us"
                    f" FROM trigger_suppressions WHERE hcp_id IN ({marks})"
                    " AND until_us>? AND since_us<=? ORDER BY hcp_id, id",
                    (*known, *supp_args),
                ):
                    rows[r[0]]["suppressions"].append(r[1:])
                outcomes: dict[str, list[tuple[Any, ...]]] = {}
                for r in con.execute(
                    "SELECT o.hcp_id, o.event_id, COALESCE(o.action_id, d.chosen_action_id),"
                    " o.type, o.ts_us FROM outcomes o JOIN decisions d ON d.event_id=o.event_id"
                    f" WHERE o.hcp_id IN ({marks})"
                    f" AND +o.type IN ({','.join('?' * len(types_))})"  # see _outcome_plan
                    " AND o.ts_us>=? AND o.ts_us<=?",
                    (*known, *types_, o_lo, o_hi),
                ):
                    outcomes.setdefault(r[0], []).append(r[1:])
                overridden = dict(
                    con.execute(
                        # as _OVERRIDDEN, per HCP
                        "SELECT t.overrides_hcp_id, COUNT(DISTINCT t.overrides_event_id)"
                        " FROM touches t JOIN decisions d ON d.event_id=t.overrides_event_id"
                        f" WHERE t.overrides_hcp_id IN ({marks}) AND t.ts_us>=? AND t.ts_us<?"
                        " GROUP BY t.overrides_hcp_id",
                        (*known, *over_args),
                    ).fetchall()
                )
                if evidence:
                    for r in con.execute(
                        "SELECT hcp_id, ts_us, recorded_by, topics, channels"
                        f" FROM stated_preferences WHERE hcp_id IN ({marks})"
                        " ORDER BY hcp_id, ts_us, id",
                        known,
                    ):
                        rows[r[0]]["stated"].append(r)
                for h in known:
                    got = rows[h]
                    got.update(self._outcome_rows_split(outcomes.get(h, []), spans))
                    got["h_overridden"] = [(overridden.get(h, 0),)]
                    out[h] = self._state_from(got, day, catalog, evidence)
        return out

    #: the parts of one HCP's rows :meth:`hcp_states` fills
    _MANY_PARTS = (
        "profile",
        "extras",
        "h_latest",
        "touches",
        "h_touches",
        "h_pulls",
        "feedback",
        "suppressions",
        "stated",
    )

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
