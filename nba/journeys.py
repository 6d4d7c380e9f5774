"""Journeys: cadence and branching beyond the contact rules' caps.

A journey is a small sequence a marketer writes down: *after an HCP attended a
webinar, send a follow-up email on the same topic 2 to 5 days later; if they do
not engage, try again on the same topic up to three times*. Journeys sit after
the contact policy (:mod:`nba.contact`) and before the bandit: while a journey
step is due for an HCP, a decision whose requested channels include the step's
channels may only offer what the step allows (its channels and topics, among
what the contact rules left); the bandit explores among those, and the decision
records the step (``journey``: ``"<journey>/<step>"``). When no journey step is
due, decisions are as without journeys.

The file (TOML, ``nba/data/journeys.toml``; its JSON schema is
``nba/data/journeys.schema.json``, :func:`json_schema`) holds ``[[journeys]]``,
each with:

- ``name``, ``priority`` (higher wins when several steps are due), ``description``;
- ``[journeys.entry]``: ``event`` (an HCP response to one of our actions, e.g.
  ``attended``), optional ``channels`` and ``topics`` the response must be on;
- ``[journeys.exit]``: ``events`` that end the journey (default
  ``["unsubscribed"]``), ``engaged`` (end once the HCP engages with the journey's
  topic), ``max_days`` after entry (default 60; also how far back history is read);
- ``[journeys.exclude]``: ``markets``, ``specialties``, ``stages`` (adoption
  stages), ``no_see`` -- HCPs who never enter;
- ``[[journeys.steps]]``: ``channels``, ``topic`` (``"same"``: the entry's
  topic, ``"any"``) or ``topics`` (a list), ``after_days = [min, max]`` (whole UTC
  calendar days after the previous step, or after the entry for step 1),
  ``hold`` (nothing on the step's channels before its window opens),
  ``until_engaged`` with ``max_attempts`` (stay on the topic: the step is
  repeated, each attempt ``after_days`` after the last, until the HCP engages
  with the topic).

Semantics (one function, :meth:`JourneySet.states`, used by the service and
the simulator alike, so equal histories give equal answers):

- the history is a list of :class:`JourneyEvent`: our executed decisions
  (``kind="decision"``: the chosen action's channel, content and topic) and the
  outcomes reported on them (``kind`` = the outcome type, on the action it
  concerns); events after ``now`` and before ``now``'s day minus ``max_days`` are
  ignored, and events are ordered by time (a decision before an outcome at the
  same instant);
- an entry event starts the journey unless it is running already (an entry
  while it runs is ignored) or the HCP is excluded;
- a step is *done* by a decision on one of its channels and topics inside its
  window; with ``until_engaged`` a decision is an *attempt*, and the step is
  done when the HCP engages (an outcome of :data:`nba.domain.ENGAGEMENT_TYPES`)
  with the step's topic after its first attempt; the next step's window is
  counted from the day the step was done;
- the journey ends when every step is done (``completed``), on an exit event
  (``exit:<type>``), on engagement when ``exit.engaged`` (``engaged``), when a
  step's window passes without a decision (``window_missed``), when the last
  attempt's window passes without engagement (``not_engaged``), or ``max_days``
  after entry (``max_days``).

Errors name the file, the line and the key (:class:`JourneysError`), like the
contact rules' errors.

>>> from datetime import UTC, datetime
>>> from nba.domain import HCPProfile
>>> js = JourneySet.default()
>>> hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email", "webinar"}))
>>> t0 = datetime(2026, 1, 5, 18, tzinfo=UTC)
>>> ev = [JourneyEvent(t0, "decision", "webinar", "VEL-EFF-05", "efficacy"),
...       JourneyEvent(t0, "attended", "webinar", "VEL-EFF-05", "efficacy")]
>>> [(s.journey, s.status) for s in js.states(hcp, ev, datetime(2026, 1, 6, 9, tzinfo=UTC))][:1]
[('webinar-followup', 'waiting')]
>>> due = js.states(hcp, ev, datetime(2026, 1, 7, 9, tzinfo=UTC))[0]
>>> due.status, due.label, due.window
('due', 'webinar-followup/1', ('2026-01-07', '2026-01-10'))
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from nba.contact import KeyPath, key_lines
from nba.domain import (
    ADOPTION_STAGES,
    CHANNELS,
    ENGAGEMENT_TYPES,
    HCP_RESPONSE_TYPES,
    OUTCOME_TYPES,
    HCPProfile,
    ValidationError,
    ensure_utc,
)

DEFAULT_JOURNEYS_FILE = "journeys.toml"
SCHEMA_FILE = "journeys.schema.json"
#: the event kind of one of our executed decisions in a journey history
DECISION = "decision"
#: the rule suppressions carry when a due step removes an action: ``journey:<label>``
RULE_JOURNEY = "journey"
#: ... and when a step that holds its channels removes one before its window opens
RULE_JOURNEY_HOLD = "journey_hold"

#: what a journey's ``status`` may be
STATUSES = ("due", "waiting", "completed", "ended", "not_entered", "excluded")

_TOP_KEYS = ("name", "journeys")
_JOURNEY_KEYS = ("name", "description", "priority", "entry", "exit", "exclude", "steps")
_ENTRY_KEYS = ("event", "channels", "topics")
_EXIT_KEYS = ("events", "engaged", "max_days")
_EXCLUDE_KEYS = ("markets", "specialties", "stages", "no_see")
_STEP_KEYS = (
    "name",
    "channels",
    "topic",
    "topics",
    "after_days",
    "hold",
    "until_engaged",
    "max_attempts",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_MAX_DAYS = 60


class JourneysError(ValidationError):
    """A journeys file is invalid; the message names the file, the line and the key.

    Attributes
    ----------
    key : str or None
        Dotted path of the offending key (``journeys.0.steps.1.after_days``).
    line : int or None
        Its 1-based line in the TOML text, when known.
    """

    def __init__(self, message: str, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


# --------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class JourneyEvent:
    """One event of an HCP's journey history.

    Attributes
    ----------
    ts : datetime
        When it happened (aware; stored as UTC).
    kind : str
        ``"decision"`` (one of our executed decisions; its chosen action below) or
        an outcome type reported on one of our actions.
    channel, content_id : str
        The action the event concerns.
    topic : str or None
        That content's catalog topic (``None`` when unknown).
    """

    ts: datetime
    kind: str
    channel: str
    content_id: str
    topic: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", ensure_utc(self.ts, "JourneyEvent", "ts"))

    def sort_key(self) -> tuple[datetime, int, str, str, str, str]:
        """Time order; at one instant a decision comes before its outcomes."""
        return (
            self.ts,
            0 if self.kind == DECISION else 1,
            self.kind,
            self.channel,
            self.content_id,
            self.topic or "",
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """What starts a journey: an outcome ``event``, optionally on these channels/topics."""

    event: str
    channels: frozenset[str] | None = None
    topics: frozenset[str] | None = None

    def matches(self, ev: JourneyEvent) -> bool:
        return (
            ev.kind == self.event
            and (self.channels is None or ev.channel in self.channels)
            and (self.topics is None or ev.topic in self.topics)
        )


@dataclass(frozen=True, slots=True)
class Exit:
    """What ends a journey besides its last step."""

    events: frozenset[str] = frozenset({"unsubscribed"})
    engaged: bool = False
    max_days: int = DEFAULT_MAX_DAYS


@dataclass(frozen=True, slots=True)
class Exclude:
    """HCPs who never enter the journey."""

    markets: frozenset[str] = frozenset()
    specialties: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    no_see: bool = False

    def why(self, hcp: HCPProfile) -> str | None:
        """The exclusion that applies to ``hcp``, or ``None``."""
        if hcp.market in self.markets:
            return f"market {hcp.market} is excluded"
        if hcp.specialty in self.specialties:
            return f"specialty {hcp.specialty} is excluded"
        if hcp.adoption_stage in self.stages:
            return f"adoption stage {hcp.adoption_stage} is excluded"
        if self.no_see and hcp.no_see:
            return "no-see HCPs are excluded"
        return None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a journey.

    Attributes
    ----------
    name : str
    channels : tuple of str
    topic : {"same", "any", "list"}
        ``same``: the entry event's topic; ``any``: every topic; ``list``: ``topics``.
    topics : frozenset of str
    after_days : (int, int)
        Window, in whole UTC days after the previous step (or the entry).
    hold : bool
        Nothing on ``channels`` before the window opens.
    until_engaged : bool
    max_attempts : int
    """

    name: str
    channels: tuple[str, ...]
    topic: str
    topics: frozenset[str]
    after_days: tuple[int, int]
    hold: bool = False
    until_engaged: bool = False
    max_attempts: int = 1

    def topics_for(self, journey_topic: str | None) -> frozenset[str] | None:
        """The topics this step allows (``None``: any)."""
        if self.topic == "any":
            return None
        if self.topic == "same":
            return frozenset() if journey_topic is None else frozenset({journey_topic})
        return self.topics

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": list(self.channels),
            "topic": self.topic,
            "topics": sorted(self.topics),
            "after_days": list(self.after_days),
            "hold": self.hold,
            "until_engaged": self.until_engaged,
            "max_attempts": self.max_attempts,
        }


@dataclass(frozen=True, slots=True)
class Journey:
    """One validated journey (see the module docstring)."""

    name: str
    priority: int
    entry: Entry
    exit: Exit
    exclude: Exclude
    steps: tuple[Step, ...]
    description: str = ""

    def label(self, step: int) -> str:
        """``"<name>/<step>"`` (1-based), what decisions and suppressions record."""
        return f"{self.name}/{step}"

    def to_dict(self) -> dict[str, Any]:
        """Normalized form (what the set's version hashes)."""
        e = self.entry
        return {
            "name": self.name,
            "description": self.description,
            "priority": self.priority,
            "entry": {
                "event": e.event,
                "channels": None if e.channels is None else sorted(e.channels),
                "topics": None if e.topics is None else sorted(e.topics),
            },
            "exit": {
                "events": sorted(self.exit.events),
                "engaged": self.exit.engaged,
                "max_days": self.exit.max_days,
            },
            "exclude": {
                "markets": sorted(self.exclude.markets),
                "specialties": sorted(self.exclude.specialties),
                "stages": sorted(self.exclude.stages),
                "no_see": self.exclude.no_see,
            },
            "steps": [s.describe() for s in self.steps],
        }


@dataclass(frozen=True, slots=True)
class JourneyState:
    """Where one HCP stands in one journey at ``now`` (:meth:`JourneySet.states`).

    Attributes
    ----------
    journey : str
    priority : int
    status : str
        ``due`` (a step's window is open), ``waiting`` (in the journey, no step
        due), ``completed`` / ``ended`` (the last run finished, see ``reason``),
        ``not_entered``, ``excluded``.
    step : int or None
        The current (1-based) step while in the journey, else ``None``.
    label : str or None
        ``"<journey>/<step>"`` while in the journey.
    topic : str or None
        The journey's topic (the entry event's).
    entered : datetime or None
        When the current (or last) run started.
    window : (str, str) or None
        The current step's window, ISO dates, inclusive.
    attempts : int
        Decisions that attempted the current step (``until_engaged``).
    holding : bool
        The current step holds its channels (before its window opens).
    channels : tuple of str
        The current step's channels (empty outside the journey).
    topics : tuple of str or None
        The topics the current step allows (``None``: any).
    reason : str
        Why, in words.
    """

    journey: str
    priority: int
    status: str
    reason: str
    step: int | None = None
    label: str | None = None
    topic: str | None = None
    entered: datetime | None = None
    window: tuple[str, str] | None = None
    attempts: int = 0
    holding: bool = False
    channels: tuple[str, ...] = ()
    topics: tuple[str, ...] | None = None

    def allows(self, channel: str, topic: str | None) -> bool:
        """Whether the current step allows an action on ``channel`` about ``topic``."""
        return channel in self.channels and (self.topics is None or topic in self.topics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "priority": self.priority,
            "status": self.status,
            "step": self.step,
            "label": self.label,
            "topic": self.topic,
            "entered": None if self.entered is None else self.entered.isoformat(),
            "window": None if self.window is None else list(self.window),
            "attempts": self.attempts,
            "holding": self.holding,
            "channels": list(self.channels),
            "topics": None if self.topics is None else list(self.topics),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Gate:
    """What the journeys allow for one decision (:meth:`JourneySet.gate`).

    Attributes
    ----------
    label : str or None
        The due step that governs the decision (``None``: no step governs).
    keep : tuple of bool, length n_candidates
        Whether each candidate is still allowed.
    rules : tuple of str or None, length n_candidates
        For each removed candidate, its suppression rule (``journey:<label>`` or
        ``journey_hold:<label>``); ``None`` where kept.
    """

    label: str | None
    keep: tuple[bool, ...]
    rules: tuple[str | None, ...]


# ------------------------------------------------------------------- the state
@dataclass
class _Run:
    """One run of a journey through an HCP's history (mutable while scanning)."""

    journey: Journey
    entered: datetime
    topic: str | None
    step: int = 0
    anchor: date = date.min
    attempts: int = 0
    first_attempt: datetime | None = None
    last_attempt: date | None = None
    ended: str | None = None

    def __post_init__(self) -> None:
        self.anchor = self.entered.date()

    @property
    def current(self) -> Step:
        return self.journey.steps[self.step]

    def window(self) -> tuple[date, date]:
        lo, hi = self.current.after_days
        base = self.last_attempt if self.attempts else self.anchor
        assert base is not None
        return base + timedelta(days=lo), base + timedelta(days=hi)

    def expire(self, day: date) -> None:
        """End the run if ``day`` is past its life or its current window."""
        if self.ended:
            return
        if day > self.entered.date() + timedelta(days=self.journey.exit.max_days):
            self.ended = "max_days"
            return
        if day > self.window()[1]:
            step = self.current
            if step.until_engaged and self.attempts:
                self.ended = "not_engaged"
            else:
                self.ended = "window_missed"

    def engaged_with(self, ev: JourneyEvent, topics: frozenset[str] | None) -> bool:
        return ev.kind in ENGAGEMENT_TYPES and (topics is None or ev.topic in topics)

    def done(self, day: date) -> None:
        self.step += 1
        self.anchor = day
        self.attempts = 0
        self.first_attempt = None
        self.last_attempt = None
        if self.step == len(self.journey.steps):
            self.ended = "completed"

    def apply(self, ev: JourneyEvent) -> None:
        j = self.journey
        if ev.kind in j.exit.events:
            self.ended = f"exit:{ev.kind}"
            return
        step = self.current
        topics = step.topics_for(self.topic)
        if (
            step.until_engaged
            and self.first_attempt is not None
            and ev.ts > self.first_attempt
            and self.engaged_with(ev, topics)
        ):
            self.done(ev.ts.date())
            return
        journey_topics = None if self.topic is None else frozenset({self.topic})
        if j.exit.engaged and self.engaged_with(ev, journey_topics):
            self.ended = "engaged"
            return
        if ev.kind != DECISION or ev.channel not in step.channels:
            return
        if topics is not None and ev.topic not in topics:
            return
        if step.until_engaged and self.attempts >= step.max_attempts:
            return
        lo, hi = self.window()
        if not lo <= ev.ts.date() <= hi:
            return
        if not step.until_engaged:
            self.done(ev.ts.date())
            return
        self.attempts += 1
        self.last_attempt = ev.ts.date()
        if self.first_attempt is None:
            self.first_attempt = ev.ts


_REASONS = {
    "completed": "every step done",
    "max_days": "the journey's max_days passed",
    "window_missed": "a step's window passed without a decision",
    "not_engaged": "no engagement after the last attempt",
    "engaged": "the HCP engaged with the journey's topic",
}


def _scan(
    journey: Journey, events: Sequence[JourneyEvent], now: datetime
) -> tuple[_Run | None, _Run | None]:
    """(run in progress at ``now`` or None, last finished run or None)."""
    today = now.date()
    since = today - timedelta(days=journey.exit.max_days)
    needs_topic = any(s.topic == "same" for s in journey.steps)
    run: _Run | None = None
    last: _Run | None = None
    for ev in events:
        if ev.ts > now:
            break
        if ev.ts.date() < since:
            continue
        if run is not None:
            run.expire(ev.ts.date())
            if run.ended:
                last, run = run, None
        if run is None:
            if journey.entry.matches(ev) and not (needs_topic and ev.topic is None):
                run = _Run(journey, ev.ts, ev.topic)
            continue
        run.apply(ev)
        if run.ended:
            last, run = run, None
    if run is not None:
        run.expire(today)
        if run.ended:
            last, run = run, None
    return run, last


# --------------------------------------------------------------------- the set
@dataclass(frozen=True)
class JourneySet:
    """Validated journeys, highest priority first (file order among equals).

    Build with :meth:`load`, :meth:`loads`, :meth:`default` or :meth:`from_dict`.

    Attributes
    ----------
    name : str
    journeys : tuple of Journey
    source : str
        Where they came from (messages only).
    version : str
        First 16 hex digits of the SHA-256 of the normalized journeys.
    """

    name: str
    journeys: tuple[Journey, ...]
    source: str = field(default="<memory>", compare=False)
    version: str = field(default="", compare=False)

    # ------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path, topics: Sequence[str] | None = None) -> JourneySet:
        """Load and validate a journeys file (TOML).

        Raises
        ------
        JourneysError
            Naming the file, the line and the key that is wrong.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise JourneysError(f"{p}: cannot read journeys file: {exc.strerror or exc}") from exc
        return cls.loads(text, source=str(p), topics=topics)

    @classmethod
    def loads(
        cls, text: str, source: str = "<text>", topics: Sequence[str] | None = None
    ) -> JourneySet:
        """Validate journeys given as TOML text; errors name ``source``, the line and key.

        Parameters
        ----------
        text : str
        source : str
        topics : sequence of str, optional
            Topics steps and entries may name (default: the packaged catalog's).
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))
            line = int(found.group(1)) if found else max(len(text.splitlines()), 1)
            raise JourneysError(
                f"{source}, line {line}: not valid TOML: {exc}", key=None, line=line
            ) from exc
        return cls.from_dict(data, source=source, topics=topics, lines=key_lines(text))

    @classmethod
    def default(cls) -> JourneySet:
        """The example journeys shipped with the package (``nba/data/journeys.toml``)."""
        return cls.load(Path(__file__).resolve().parent / "data" / DEFAULT_JOURNEYS_FILE)

    @classmethod
    def empty(cls) -> JourneySet:
        """No journeys: every decision as without journeys."""
        return cls.from_dict({"name": "none"})

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        source: str = "<memory>",
        topics: Sequence[str] | None = None,
        lines: Mapping[KeyPath, int] | None = None,
    ) -> JourneySet:
        """Validate parsed journeys (see the module docstring for the format)."""
        if topics is None:
            from nba.catalog import Catalog

            topics = Catalog.default().topics
        c = _Check(source, lines or {}, tuple(topics))
        if not isinstance(data, Mapping):
            raise JourneysError(f"{source}: a journeys file must hold a table")
        c.keys(data, _TOP_KEYS, ())
        name = data.get("name", "journeys")
        if not isinstance(name, str) or not name:
            raise c.err("must be a non-empty string", "name")
        raw = data.get("journeys", [])
        if not isinstance(raw, list):
            raise c.err("must be a list of [[journeys]] tables", "journeys")
        journeys: list[Journey] = []
        for i, rj in enumerate(raw):
            j = c.journey(rj, i)
            if any(o.name == j.name for o in journeys):
                raise c.err(f"journey {j.name!r} is defined twice", "journeys", i, "name")
            journeys.append(j)
        order = sorted(range(len(journeys)), key=lambda k: (-journeys[k].priority, k))
        out = cls(name, tuple(journeys[k] for k in order), source=source)
        blob = json.dumps(out.to_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(out, "version", hashlib.sha256(blob.encode()).hexdigest()[:16])
        return out

    def to_dict(self) -> dict[str, Any]:
        """The normalized journeys, highest priority first (what :attr:`version` hashes)."""
        return {"name": self.name, "journeys": [j.to_dict() for j in self.journeys]}

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for ``GET /v1/journeys``."""
        return {"source": self.source, "version": self.version, **self.to_dict()}

    def __bool__(self) -> bool:
        return bool(self.journeys)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Every suppression rule these journeys can record, in a fixed order."""
        out: list[str] = []
        for j in self.journeys:
            for k in range(1, len(j.steps) + 1):
                out += [f"{RULE_JOURNEY}:{j.label(k)}", f"{RULE_JOURNEY_HOLD}:{j.label(k)}"]
        return tuple(out)

    @property
    def lookback_days(self) -> int:
        """How many days of history (before the decision day) any journey reads."""
        return max((j.exit.max_days for j in self.journeys), default=0)

    # ------------------------------------------------------------- queries
    def states(
        self, hcp: HCPProfile, events: Iterable[JourneyEvent], now: datetime
    ) -> list[JourneyState]:
        """Where ``hcp`` stands in every journey at ``now``, highest priority first.

        Parameters
        ----------
        hcp : HCPProfile
            For the exclusions.
        events : iterable of JourneyEvent
            The HCP's decisions and outcomes, any order; at least
            :attr:`lookback_days` days before ``now``'s day. Later ones are ignored.
        now : datetime
            Decision time (aware).

        Returns
        -------
        list of JourneyState
        """
        now = ensure_utc(now, "JourneySet.states", "now")
        ordered = sorted(events, key=JourneyEvent.sort_key)
        return [self._state(j, hcp, ordered, now) for j in self.journeys]

    def _state(
        self, j: Journey, hcp: HCPProfile, events: Sequence[JourneyEvent], now: datetime
    ) -> JourneyState:
        excluded = j.exclude.why(hcp)
        if excluded is not None:
            return JourneyState(j.name, j.priority, "excluded", excluded)
        run, last = _scan(j, events, now)
        if run is None:
            if last is None:
                return JourneyState(
                    j.name,
                    j.priority,
                    "not_entered",
                    f"no {j.entry.event!r} event in the last {j.exit.max_days} days",
                )
            reason = last.ended or ""
            status = "completed" if reason == "completed" else "ended"
            words = _REASONS.get(reason, f"exit event {reason.partition(':')[2]!r}")
            return JourneyState(
                j.name,
                j.priority,
                status,
                f"entered {last.entered.date().isoformat()}, {status}: {words}",
                topic=last.topic,
                entered=last.entered,
            )
        step = run.current
        lo, hi = run.window()
        today = now.date()
        allowed = step.topics_for(run.topic)
        k = run.step + 1
        waiting_engagement = step.until_engaged and run.attempts >= step.max_attempts
        if waiting_engagement:
            status, holding = "waiting", False
            why = (
                f"step {k} {step.name!r}: {run.attempts} attempts on "
                f"{run.topic or 'its topics'}; waiting for engagement until {hi.isoformat()}"
            )
        elif lo <= today:
            status, holding = "due", False
            why = f"step {k} {step.name!r} due {lo.isoformat()}..{hi.isoformat()}"
            if step.until_engaged:
                why += f" (attempt {run.attempts + 1} of {step.max_attempts}, until engaged)"
        else:
            status, holding = "waiting", step.hold
            why = f"step {k} {step.name!r} opens {lo.isoformat()}" + (
                f" ({', '.join(step.channels)} held until then)" if step.hold else ""
            )
        what = f"entered {run.entered.date().isoformat()} on {j.entry.event}"
        if run.topic is not None:
            what += f" ({run.topic})"
        return JourneyState(
            j.name,
            j.priority,
            status,
            f"{what}; {why}",
            step=k,
            label=j.label(k),
            topic=run.topic,
            entered=run.entered,
            window=(lo.isoformat(), hi.isoformat()),
            attempts=run.attempts,
            holding=holding,
            channels=step.channels,
            topics=None if allowed is None else tuple(sorted(allowed)),
        )

    @staticmethod
    def gate(
        states: Sequence[JourneyState],
        candidates: Sequence[tuple[str, str | None]],
    ) -> Gate:
        """What the journeys allow among ``candidates`` (the actions the contact rules
        left, as ``(channel, topic)``) for one decision.

        The due step of the highest priority whose channels and topics allow at
        least one candidate governs: only what it allows is kept and the decision
        records its label. When no due step allows a candidate, the candidates on
        channels a waiting step holds are removed and the rest kept (no label).
        """
        n = len(candidates)
        for s in states:
            if s.status != "due":
                continue
            keep = tuple(s.allows(ch, tp) for ch, tp in candidates)
            if any(keep):
                rule = f"{RULE_JOURNEY}:{s.label}"
                return Gate(s.label, keep, tuple(None if k else rule for k in keep))
        rules: list[str | None] = [None] * n
        for s in states:
            if not s.holding:
                continue
            for i, (ch, _) in enumerate(candidates):
                if rules[i] is None and ch in s.channels:
                    rules[i] = f"{RULE_JOURNEY_HOLD}:{s.label}"
        return Gate(None, tuple(r is None for r in rules), tuple(rules))


# ----------------------------------------------------------------- validation
class _Check:
    """Builds :class:`JourneysError` messages naming the file, the line and the key."""

    def __init__(self, source: str, lines: Mapping[KeyPath, int], topics: tuple[str, ...]):
        self.source = source
        self.lines = lines
        self.topics = topics

    def line_of(self, path: KeyPath) -> int | None:
        if path in self.lines:
            return self.lines[path]
        below = [n for k, n in self.lines.items() if k[: len(path)] == path]
        if below:
            return min(below)
        for cut in range(len(path) - 1, 0, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return None

    def err(self, problem: str, *path: str | int) -> JourneysError:
        line = self.line_of(path)
        key = ".".join(str(p) for p in path)
        where = self.source if line is None else f"{self.source}, line {line}"
        return JourneysError(f"{where}: key '{key}': {problem}", key=key, line=line)

    def keys(self, data: Mapping[str, Any], allowed: Sequence[str], path: KeyPath) -> None:
        bad = sorted(set(data) - set(allowed))
        if bad:
            raise self.err(f"unknown key (expected one of: {', '.join(allowed)})", *path, bad[0])

    def table(self, data: Mapping[str, Any], key: str, path: KeyPath) -> Mapping[str, Any]:
        v = data.get(key, {})
        if not isinstance(v, Mapping):
            raise self.err("must be a table", *path, key)
        return v

    def names(
        self, v: Any, known: Sequence[str], what: str, path: KeyPath, *, empty: bool = True
    ) -> frozenset[str]:
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(f"must be a list of {what}", *path)
        for x in v:
            if x not in known:
                raise self.err(f"unknown {what[:-1]} {x!r} (known: {', '.join(known)})", *path)
        if not empty and not v:
            raise self.err(f"must name at least one {what[:-1]}", *path)
        return frozenset(v)

    def integer(self, v: Any, path: KeyPath, lo: int) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.err(f"must be an integer, got {v!r}", *path)
        if v < lo:
            raise self.err(f"must be >= {lo}, got {v!r}", *path)
        return int(v)

    def boolean(self, v: Any, path: KeyPath) -> bool:
        if not isinstance(v, bool):
            raise self.err(f"must be true or false, got {v!r}", *path)
        return v

    def journey(self, rj: Any, i: int) -> Journey:
        at: KeyPath = ("journeys", i)
        if not isinstance(rj, Mapping):
            raise self.err("must be a table", *at)
        self.keys(rj, _JOURNEY_KEYS, at)
        for key in ("name", "entry", "steps"):
            if key not in rj:
                raise self.err(f"missing key '{key}'", *at)
        name = rj["name"]
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise self.err(
                f"must be 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit, "
                f"got {name!r}",
                *at,
                "name",
            )
        desc = rj.get("description", "")
        if not isinstance(desc, str):
            raise self.err("must be a string", *at, "description")
        priority = self.integer(rj.get("priority", 0), (*at, "priority"), -1000)

        en = self.table(rj, "entry", at)
        self.keys(en, _ENTRY_KEYS, (*at, "entry"))
        if "event" not in en:
            raise self.err("missing key 'event'", *at, "entry")
        ev = en["event"]
        responses = sorted(HCP_RESPONSE_TYPES)
        if ev not in HCP_RESPONSE_TYPES:
            raise self.err(
                f"{ev!r} is not an HCP response (known: {', '.join(responses)})",
                *at,
                "entry",
                "event",
            )
        entry = Entry(
            ev,
            None
            if "channels" not in en
            else self.names(en["channels"], CHANNELS, "channels", (*at, "entry", "channels")),
            None
            if "topics" not in en
            else self.names(en["topics"], self.topics, "topics", (*at, "entry", "topics")),
        )

        ex = self.table(rj, "exit", at)
        self.keys(ex, _EXIT_KEYS, (*at, "exit"))
        exit_ = Exit(
            self.names(
                ex.get("events", ["unsubscribed"]),
                sorted(OUTCOME_TYPES),
                "events",
                (*at, "exit", "events"),
            ),
            self.boolean(ex.get("engaged", False), (*at, "exit", "engaged")),
            self.integer(ex.get("max_days", DEFAULT_MAX_DAYS), (*at, "exit", "max_days"), 1),
        )
        if entry.event in exit_.events:
            raise self.err(
                f"{entry.event!r} is the entry event; it cannot also end the journey",
                *at,
                "exit",
                "events",
            )

        xc = self.table(rj, "exclude", at)
        self.keys(xc, _EXCLUDE_KEYS, (*at, "exclude"))
        from nba.hcp_features import HCPFeatures

        feats = HCPFeatures.default()
        exclude = Exclude(
            self.names(
                xc.get("markets", []), feats.markets, "markets", (*at, "exclude", "markets")
            ),
            self.names(
                xc.get("specialties", []),
                feats.specialties,
                "specialties",
                (*at, "exclude", "specialties"),
            ),
            self.names(xc.get("stages", []), ADOPTION_STAGES, "stages", (*at, "exclude", "stages")),
            self.boolean(xc.get("no_see", False), (*at, "exclude", "no_see")),
        )

        raw_steps = rj["steps"]
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.err("must be a non-empty list of [[journeys.steps]] tables", *at, "steps")
        steps = tuple(self.step(rs, (*at, "steps", k), k) for k, rs in enumerate(raw_steps))
        total = sum(s.after_days[1] * (s.max_attempts if s.until_engaged else 1) for s in steps)
        if total > exit_.max_days:
            raise self.err(
                f"the steps' windows may reach {total} days after entry, beyond "
                f"max_days = {exit_.max_days}; raise max_days or shorten the windows",
                *at,
                "exit",
                "max_days",
            )
        return Journey(name, priority, entry, exit_, exclude, steps, desc)

    def step(self, rs: Any, at: KeyPath, k: int) -> Step:
        if not isinstance(rs, Mapping):
            raise self.err("must be a table", *at)
        self.keys(rs, _STEP_KEYS, at)
        for key in ("channels", "after_days"):
            if key not in rs:
                raise self.err(f"missing key '{key}'", *at)
        name = rs.get("name", f"step {k + 1}")
        if not isinstance(name, str) or not name:
            raise self.err("must be a non-empty string", *at, "name")
        channels = self.names(rs["channels"], CHANNELS, "channels", (*at, "channels"), empty=False)
        if "topic" in rs and "topics" in rs:
            raise self.err("give either 'topic' or 'topics', not both", *at, "topics")
        if "topics" in rs:
            mode = "list"
            topics = self.names(rs["topics"], self.topics, "topics", (*at, "topics"), empty=False)
        else:
            mode = rs.get("topic", "same")
            topics = frozenset()
            if mode not in ("same", "any"):
                raise self.err(
                    f"must be 'same' or 'any' (or give a 'topics' list), got {mode!r}",
                    *at,
                    "topic",
                )
        ad = rs["after_days"]
        if (
            not isinstance(ad, list)
            or len(ad) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in ad)
        ):
            raise self.err(
                f"must be [min, max], two whole numbers of days, got {ad!r}", *at, "after_days"
            )
        if ad[0] < 0 or ad[1] < ad[0]:
            raise self.err(f"must have 0 <= min <= max, got {ad!r}", *at, "after_days")
        until = self.boolean(rs.get("until_engaged", False), (*at, "until_engaged"))
        if "max_attempts" in rs and not until:
            raise self.err(
                "only a step with until_engaged = true has attempts", *at, "max_attempts"
            )
        attempts = self.integer(rs.get("max_attempts", 3 if until else 1), (*at, "max_attempts"), 1)
        return Step(
            name,
            tuple(c for c in CHANNELS if c in channels),
            mode,
            topics,
            (int(ad[0]), int(ad[1])),
            self.boolean(rs.get("hold", False), (*at, "hold")),
            until,
            attempts,
        )


# ----------------------------------------------------------------- JSON schema
def json_schema() -> dict[str, Any]:
    """The JSON schema of a journeys file (as parsed from TOML), built from the
    vocabularies the validator checks; ``nba/data/journeys.schema.json`` is this,
    published (a test keeps them equal). The validator also checks what a schema
    cannot say (names unique, the windows fitting in ``max_days``)."""
    from nba.catalog import Catalog
    from nba.hcp_features import HCPFeatures

    topics = list(Catalog.default().topics)
    feats = HCPFeatures.default()

    def names(values: Sequence[str], min_items: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "array",
            "items": {"type": "string", "enum": list(values)},
            "uniqueItems": True,
        }
        if min_items:
            out["minItems"] = min_items
        return out

    step = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channels", "after_days"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "channels": names(CHANNELS, 1),
            "topic": {"type": "string", "enum": ["same", "any"], "default": "same"},
            "topics": names(topics, 1),
            "after_days": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 2,
                "maxItems": 2,
                "description": "[min, max] whole UTC days after the previous step (or entry)",
            },
            "hold": {"type": "boolean", "default": False},
            "until_engaged": {"type": "boolean", "default": False},
            "max_attempts": {"type": "integer", "minimum": 1},
        },
        "not": {"required": ["topic", "topics"]},
    }
    journey = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "entry", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": _NAME_RE.pattern},
            "description": {"type": "string"},
            "priority": {"type": "integer", "minimum": -1000, "default": 0},
            "entry": {
                "type": "object",
                "additionalProperties": False,
                "required": ["event"],
                "properties": {
                    "event": {"type": "string", "enum": sorted(HCP_RESPONSE_TYPES)},
                    "channels": names(CHANNELS),
                    "topics": names(topics),
                },
            },
            "exit": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "events": names(sorted(OUTCOME_TYPES)),
                    "engaged": {"type": "boolean", "default": False},
                    "max_days": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_DAYS},
                },
            },
            "exclude": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "markets": names(feats.markets),
                    "specialties": names(feats.specialties),
                    "stages": names(ADOPTION_STAGES),
                    "no_see": {"type": "boolean", "default": False},
                },
            },
            "steps": {"type": "array", "minItems": 1, "items": step},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nba journeys",
        "description": "Journeys file (TOML) of nba; see docs/journeys.md.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "journeys": {"type": "array", "items": journey},
        },
    }


def schema_text() -> str:
    """:func:`json_schema` as the published file's text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def schema_path() -> Path:
    """Where the published schema lives (``nba/data/journeys.schema.json``)."""
    return Path(__file__).resolve().parent / "data" / SCHEMA_FILE
