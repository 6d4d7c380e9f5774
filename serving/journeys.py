"""Journeys in the service: versions in the store, the worker's copy, and each
HCP's journey history read from the store.

The journeys in force are versioned like the contact rules (table
``journeys_versions``, the same functions as :mod:`serving.store_rules`): a
change is validated before anything is written (a bad text is refused naming
its line and key, and the version in force stays), stored with who, when, why
and the diff, and reaches every worker without a restart
(:class:`JourneysKeeper`). ``NBA_JOURNEYS_PATH`` seeds version 1 at the first
start; without it and without a stored version there are no journeys, and every
decision is made as before.

:func:`journey_events` reads an HCP's journey history: its activated decisions
(the chosen action) and the outcomes reported on them (on the action they
concern), with each content's catalog topic -- the same events the simulator
records (:mod:`simulators.hcp.world`), given to the same
:meth:`nba.journeys.JourneySet.states`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from nba.domain import Action
from nba.journeys import DECISION, JourneyEvent, JourneysError, JourneySet
from serving import store_rules
from serving.rules import (
    RulesChangeError,
    rollback_target,
    store_rollback,
    store_version,
)
from serving.store import EventStore, _from_us, _to_us
from serving.store_rules import RulesVersion

log = logging.getLogger("nba.serving.journeys")

TABLE = "journeys_versions"
#: how far before the journeys' lookback the decisions an outcome concerns are read
OUTCOME_DECISION_DAYS = 90


def validate(text: str, topics: Sequence[str], source: str = "journeys") -> JourneySet:
    """The journeys of a TOML text; raises :class:`JourneysError` naming line and key."""
    if not isinstance(text, str) or not text.strip():
        raise JourneysError(f"{source}: the journeys text is empty")
    return JourneySet.loads(text, source=source, topics=topics)


def file_text(path: str | Path, topics: Sequence[str]) -> str:
    """The text of a journeys file, validated (a bad file is refused before anything
    is stored).

    Raises
    ------
    JourneysError
    """
    p = Path(path)
    JourneySet.load(p, topics=topics)
    return p.read_text(encoding="utf-8")


def seed(
    store: EventStore, text: str, who: str, comment: str, topics: Sequence[str]
) -> RulesVersion:
    """The journeys version in force; when the store holds none, ``text`` becomes
    version 1 (exactly one of several workers starting at once stores it)."""
    current = store_rules.get(store, table=TABLE)
    if current is not None:
        return current
    js = validate(text, topics, source="startup journeys")
    try:
        return store_rules.append(
            store,
            text=text,
            rules_hash=js.version,
            who=who,
            action="seed",
            comment=comment,
            diff="",
            expected_head=0,
            table=TABLE,
        )
    except store_rules.RulesConflictError:  # another worker seeded it first
        found = store_rules.get(store, table=TABLE)
        assert found is not None
        return found


def _comment(comment: str | None) -> str:
    if comment is None or not comment.strip():
        raise RulesChangeError("comment: say why the journeys change (a comment is required)")
    return comment.strip()


def apply(
    store: EventStore,
    text: str,
    *,
    who: str,
    comment: str | None,
    topics: Sequence[str],
    expected_version: int | None = None,
) -> tuple[RulesVersion, JourneySet]:
    """Validate ``text`` and store it as the journeys in force.

    Raises
    ------
    JourneysError
        The text is invalid (line and key named); nothing is stored.
    RulesChangeError
        No comment, or the same journeys as the version in force.
    serving.store_rules.RulesConflictError
        Another version was stored since ``expected_version``.
    """
    why = _comment(comment)
    js = validate(text, topics)
    stored = store_version(
        store,
        kind="journeys",
        table=TABLE,
        text=text,
        text_hash=js.version,
        who=who,
        why=why,
        expected_version=expected_version,
    )
    return stored, js


def rollback(
    store: EventStore, version: int, *, who: str, comment: str | None, topics: Sequence[str]
) -> tuple[RulesVersion, JourneySet]:
    """Put the text of an earlier ``version`` back in force, as a new version.

    Raises
    ------
    RulesChangeError
        Unknown version, the version in force itself, or no comment.
    """
    why = _comment(comment)
    target = rollback_target(store, version, kind="journeys", table=TABLE)
    js = validate(target.text, topics, source=f"journeys version {version}")
    stored = store_rollback(store, target, table=TABLE, text_hash=js.version, who=who, why=why)
    return stored, js


def history(store: EventStore, limit: int | None = None) -> list[RulesVersion]:
    """Stored journeys versions, newest first."""
    return store_rules.history(store, limit, table=TABLE)


class JourneysKeeper:
    """The journeys in force for one worker, reloaded when the store's version moves.

    Parameters
    ----------
    store : EventStore
    topics : sequence of str
        Topics a journeys text may name (the catalog's).
    check_ms : float
        Check the store's version counter at most this often (0: on every call).
    clock : callable, optional
        Monotonic seconds (tests).
    """

    def __init__(
        self,
        store: EventStore,
        topics: Sequence[str],
        check_ms: float = 500.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.topics = tuple(topics)
        self.check_ms = float(check_ms)
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._version = 0
        self._refused: int | None = None
        self._record: RulesVersion | None = None
        self._journeys = JourneySet.empty()
        self.refresh()

    def current(self) -> JourneySet:
        """The journeys in force (an empty set when none is stored)."""
        now = self._clock()
        if now - self._checked >= self.check_ms / 1000.0:
            self.refresh(now)
        return self._journeys

    def snapshot(self) -> tuple[RulesVersion | None, JourneySet]:
        """(stored version or None, journeys) after a check, consistent with each other."""
        self.current()
        with self._lock:
            return self._record, self._journeys

    def refresh(self, now: float | None = None) -> bool:
        """Reload if the store's head moved; True when the journeys changed."""
        with self._lock:
            self._checked = self._clock() if now is None else now
            head = store_rules.head(self.store, table=TABLE)
            if head in (self._version, self._refused):
                return False
            record = store_rules.get(self.store, table=TABLE)
            if record is None:
                return False
            try:
                js = validate(record.text, self.topics, f"journeys version {record.version}")
            except JourneysError as exc:
                self._refused = record.version
                log.error("journeys version %d refused, keeping the ones in force: %s", head, exc)
                return False
            self._record, self._journeys, self._version = record, js, record.version
            log.info("journeys version %d (%s) in force", record.version, js.version)
            return True


def journey_events(
    store: EventStore,
    hcp_id: str,
    since: datetime,
    now: datetime,
    topic_of: Mapping[str, str],
) -> list[JourneyEvent]:
    """An HCP's journey history in ``[since, now]``: activated decisions (their chosen
    action) and the outcomes reported on its decisions (on the action each concerns).

    Parameters
    ----------
    store : EventStore
    hcp_id : str
    since, now : datetime
    topic_of : mapping of str to str
        Content id -> catalog topic.

    Returns
    -------
    list of JourneyEvent
        In no particular order (:meth:`~nba.journeys.JourneySet.states` orders them).
    """
    con = store._conn()
    lo, hi = _to_us(since), _to_us(now)
    out: list[JourneyEvent] = []

    def event(ts_us: int, kind: str, action_id: str) -> JourneyEvent:
        a = Action.parse(action_id)
        return JourneyEvent(
            _from_us(ts_us), kind, a.channel, a.content_id, topic_of.get(a.content_id)
        )

    for ts_us, aid in con.execute(
        "SELECT ts_us, chosen_action_id FROM decisions"
        " WHERE hcp_id=? AND activated=1 AND ts_us BETWEEN ? AND ?",
        (hcp_id, lo, hi),
    ):
        out.append(event(ts_us, DECISION, aid))
    early = _to_us(since - timedelta(days=OUTCOME_DECISION_DAYS))
    for ts_us, kind, aid in con.execute(
        "SELECT o.ts_us, o.type, COALESCE(o.action_id, d.chosen_action_id) FROM decisions d"
        " JOIN outcomes o ON o.event_id = d.event_id"
        " WHERE d.hcp_id=? AND d.ts_us BETWEEN ? AND ? AND o.ts_us BETWEEN ? AND ?",
        (hcp_id, early, hi, lo, hi),
    ):
        out.append(event(ts_us, kind, aid))
    return out


def describe_version(record: RulesVersion | None, js: JourneySet) -> dict[str, object]:
    """JSON-ready body of ``GET /v1/journeys``."""
    return {
        "version": None if record is None else record.version,
        "journeys_hash": js.version,
        "created": None if record is None else record.created.isoformat(),
        "who": None if record is None else record.who,
        "comment": None if record is None else record.comment,
        "text": None if record is None else record.text,
        "journeys": json.loads(json.dumps(js.to_dict()["journeys"])),
    }
