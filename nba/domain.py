"""Frozen, validated domain records shared by every layer.

Every record validates itself once, where it is built; code that receives one
may trust it. Errors are :class:`ValidationError` and name the record and the
field that was wrong.

>>> Action("cnt-001", "email").action_id
'cnt-001@email'
>>> Action.parse("cnt-001@email")
Action(content_id='cnt-001', channel='email')
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

#: The channels every deployment knows. A catalog may declare more.
CHANNELS: tuple[str, ...] = ("rep_visit", "remote_call", "email", "webinar", "portal")

#: Adoption stages, in the order engagement moves an HCP through them.
ADOPTION_STAGES: tuple[str, ...] = (
    "unaware",
    "aware",
    "considering",
    "trialing",
    "adopting",
    "advocate",
)

#: Outcome types that describe how the HCP responded.
HCP_RESPONSE_TYPES: frozenset[str] = frozenset(
    {
        "delivered",
        "opened",
        "clicked",
        "unsubscribed",
        "meeting_held",
        "call_held",
        "registered",
        "attended",
        "visited",
        "downloaded",
        "sample_requested",
        "rx_signal",
    }
)

#: Outcome types worth money to the brand beyond engagement: a sample request taken
#: by a rep or on a call, and a prescription (Rx) signal from imported data. Valued
#: by the ``value`` reward definition (``nba/data/value.toml``).
VALUE_TYPES: frozenset[str] = frozenset({"sample_requested", "rx_signal"})

#: Outcome types that a rep reports about a suggestion (not an HCP response).
REP_FEEDBACK_TYPES: frozenset[str] = frozenset({"accepted", "dismissed", "snoozed"})

OUTCOME_TYPES: frozenset[str] = HCP_RESPONSE_TYPES | REP_FEEDBACK_TYPES

#: The numeric reward of the Personalizer-compatible routes and of imported DSJSON
#: (its ``value`` is the reward).
REWARD_TYPE = "reward"

#: Outcome types that can only happen on some channels: type -> those channels.
#: Taken from what the simulator's channel models emit (``simulators/hcp/response.py``)
#: and what the service documents per channel: an email is delivered, opened,
#: clicked; a visit or a call is held; a webinar is registered for and attended;
#: the portal is visited and downloaded from.
OUTCOME_CHANNELS: Mapping[str, frozenset[str]] = {
    "delivered": frozenset({"email"}),
    "opened": frozenset({"email"}),
    "clicked": frozenset({"email"}),
    "meeting_held": frozenset({"rep_visit"}),
    "call_held": frozenset({"remote_call"}),
    "registered": frozenset({"webinar"}),
    "attended": frozenset({"webinar"}),
    "visited": frozenset({"portal"}),
    "downloaded": frozenset({"portal"}),
    "sample_requested": frozenset({"rep_visit", "remote_call"}),
}

#: Outcome types that can concern an action on any channel: rep feedback (a rep
#: judges a suggestion whatever its channel), ``unsubscribed`` (consent is given
#: and withdrawn per channel, on every channel), ``rx_signal`` (a prescription signal
#: imported from sales data follows whatever reached the HCP) and the numeric ``reward``.
ANY_CHANNEL_TYPES: frozenset[str] = REP_FEEDBACK_TYPES | {
    "unsubscribed",
    "rx_signal",
    REWARD_TYPE,
}

#: HCP responses that count as engagement in history features.
ENGAGEMENT_TYPES: frozenset[str] = frozenset(
    {"opened", "clicked", "meeting_held", "call_held", "attended", "visited", "downloaded"}
)

TOUCH_ORIGINS: frozenset[str] = frozenset({"ours", "external"})

ACTION_SEPARATOR = "@"


class ValidationError(ValueError):
    """A record or file failed validation; the message names where and what."""


def _fail(record: str, fieldname: str, problem: str) -> ValidationError:
    return ValidationError(f"{record}: field '{fieldname}': {problem}")


def ensure_utc(ts: datetime, record: str = "record", fieldname: str = "ts") -> datetime:
    """Return ``ts`` as an aware UTC datetime; naive datetimes are refused."""
    if not isinstance(ts, datetime):
        raise _fail(record, fieldname, f"expected a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise _fail(record, fieldname, "timestamp must be timezone-aware (UTC)")
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Approval:
    """Approval of one content item in one market, valid on ``[start, expiry)``."""

    market: str
    start: date
    expiry: date

    def __post_init__(self) -> None:
        if not self.market:
            raise _fail("Approval", "market", "must not be empty")
        if self.expiry <= self.start:
            raise _fail(
                "Approval", "expiry", f"expiry {self.expiry} is not after start {self.start}"
            )

    def covers(self, day: date) -> bool:
        """True when ``day`` falls inside ``[start, expiry)``."""
        return self.start <= day < self.expiry


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One approved piece of content that can travel on some channels."""

    id: str
    title: str
    topic: str
    format: str
    channels: tuple[str, ...]
    approvals: tuple[Approval, ...]

    def __post_init__(self) -> None:
        where = f"ContentItem '{self.id}'"
        if not self.id or ACTION_SEPARATOR in self.id:
            raise _fail(where, "id", f"must be non-empty and not contain '{ACTION_SEPARATOR}'")
        if not self.title:
            raise _fail(where, "title", "must not be empty")
        if not self.topic:
            raise _fail(where, "topic", "must not be empty")
        if not self.channels:
            raise _fail(where, "channels", "must list at least one channel")
        if len(set(self.channels)) != len(self.channels):
            raise _fail(where, "channels", "lists a channel twice")
        if not self.approvals:
            raise _fail(where, "approvals", "item is approved in no market")

    @property
    def markets(self) -> tuple[str, ...]:
        return tuple(a.market for a in self.approvals)

    def is_approved(self, market: str, day: date) -> bool:
        """True when the item is approved in ``market`` on ``day``."""
        return any(a.market == market and a.covers(day) for a in self.approvals)

    def actions(self) -> tuple[Action, ...]:
        return tuple(Action(self.id, ch) for ch in self.channels)


@dataclass(frozen=True, slots=True, order=True)
class Action:
    """One (content item, channel) pair; ``action_id`` is ``content@channel``."""

    content_id: str
    channel: str
    #: ``content@channel``, written once when the action is made (a decision reads it
    #: several times per action); not an argument, and not compared, hashed or shown
    action_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.content_id or ACTION_SEPARATOR in self.content_id:
            raise _fail("Action", "content_id", f"invalid content id {self.content_id!r}")
        if not self.channel or ACTION_SEPARATOR in self.channel:
            raise _fail("Action", "channel", f"invalid channel {self.channel!r}")
        object.__setattr__(self, "action_id", f"{self.content_id}{ACTION_SEPARATOR}{self.channel}")

    @classmethod
    def parse(cls, action_id: str) -> Action:
        content_id, sep, channel = action_id.rpartition(ACTION_SEPARATOR)
        if not sep:
            raise _fail("Action", "action_id", f"{action_id!r} is not 'content@channel'")
        return cls(content_id, channel)


@dataclass(frozen=True, slots=True)
class HCPProfile:
    """Observable profile of one healthcare professional."""

    hcp_id: str
    specialty: str
    decile: int
    market: str
    adoption_stage: str
    consents: frozenset[str]
    no_see: bool = False
    digital_affinity: float = 0.5

    def __post_init__(self) -> None:
        where = f"HCPProfile '{self.hcp_id}'"
        if not self.hcp_id:
            raise _fail("HCPProfile", "hcp_id", "must not be empty")
        if not self.specialty:
            raise _fail(where, "specialty", "must not be empty")
        if not isinstance(self.decile, int) or not 1 <= self.decile <= 10:
            raise _fail(where, "decile", f"must be an integer 1-10, got {self.decile!r}")
        if not self.market:
            raise _fail(where, "market", "must not be empty")
        if self.adoption_stage not in ADOPTION_STAGES:
            raise _fail(
                where,
                "adoption_stage",
                f"{self.adoption_stage!r} is not one of {', '.join(ADOPTION_STAGES)}",
            )
        if not isinstance(self.consents, frozenset):
            object.__setattr__(self, "consents", frozenset(self.consents))
        if not (0.0 <= float(self.digital_affinity) <= 1.0):
            raise _fail(
                where, "digital_affinity", f"must be in [0, 1], got {self.digital_affinity}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hcp_id": self.hcp_id,
            "specialty": self.specialty,
            "decile": self.decile,
            "market": self.market,
            "adoption_stage": self.adoption_stage,
            "consents": sorted(self.consents),
            "no_see": self.no_see,
            "digital_affinity": float(self.digital_affinity),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HCPProfile:
        return cls(
            hcp_id=str(d["hcp_id"]),
            specialty=str(d["specialty"]),
            decile=int(d["decile"]),
            market=str(d["market"]),
            adoption_stage=str(d["adoption_stage"]),
            consents=frozenset(d.get("consents", ())),
            no_see=bool(d.get("no_see", False)),
            digital_affinity=float(d.get("digital_affinity", 0.5)),
        )


@dataclass(frozen=True, slots=True)
class Suppression:
    """An action the contact policy removed, with the rule that removed it."""

    action_id: str
    rule: str


PROBABILITY_TOLERANCE = 1e-6

#: Remaining probability mass below which a slot is filled uniformly at random from
#: the actions left (docs/DESIGN.md, "Decisions taken here", "Slates").
SLATE_MASS_FLOOR = 1e-12


@dataclass(frozen=True, slots=True)
class SlateSlot:
    """One slot of a served list: its action and the probability it was drawn with.

    ``probability`` is conditional on the slots before it: for slot 1 it is the
    chosen action's propensity, for slot ``j`` the probability that sampling
    without replacement from the decision's ``probabilities`` draws this action
    once slots ``1..j-1`` are taken (:func:`slot_probability`).
    """

    action_id: str
    probability: float


def slot_probability(probabilities: Sequence[float], taken: Sequence[int], index: int) -> float:
    """Probability that the next slot gets action ``index`` once ``taken`` are placed.

    Sampling without replacement from ``probabilities`` (shape (n_actions,)):
    ``p[index] / (mass left)``; when no mass is left (fewer positive entries
    than slots), every action left is equally likely.

    >>> slot_probability([0.5, 0.25, 0.25], [0], 1)
    0.5
    >>> slot_probability([1.0, 0.0, 0.0], [0], 2)
    0.5
    """
    taken_set = set(taken)
    left = [i for i in range(len(probabilities)) if i not in taken_set]
    mass = math.fsum(probabilities[i] for i in left)
    if mass > SLATE_MASS_FLOOR:
        return float(probabilities[index]) / mass
    return 1.0 / len(left)


@dataclass(frozen=True, slots=True)
class Decision:
    """One call to the policy, exactly as it is logged (docs/DESIGN.md, "Data contracts")."""

    event_id: str
    ts: datetime
    hcp_id: str
    requester: str
    channels_requested: tuple[str, ...]
    context: str
    catalog_version: str
    action_ids: tuple[str, ...]
    probabilities: tuple[float, ...]
    chosen_index: int
    chosen_action_id: str
    propensity: float
    policy: str
    model_version: str
    suppressed: tuple[Suppression, ...] = ()
    activated: bool = True
    #: every slot of the served list, slot 1 first; empty: one slot, the chosen action
    slate: tuple[SlateSlot, ...] = ()
    #: version (hash) of the contact rules applied, and which market's rule set
    #: (``"global"`` when the market has no section); ``None`` when not recorded
    rules_version: str | None = None
    rules_market: str | None = None
    #: the journey step that allowed the actions (``"<journey>/<step>"``); ``None``: none
    journey: str | None = None

    def __post_init__(self) -> None:
        where = f"Decision '{self.event_id}'"
        if not self.event_id:
            raise _fail("Decision", "event_id", "must not be empty")
        object.__setattr__(self, "ts", ensure_utc(self.ts, where))
        if not self.hcp_id:
            raise _fail(where, "hcp_id", "must not be empty")
        n = len(self.action_ids)
        if n == 0:
            raise _fail(where, "action_ids", "a decision needs at least one eligible action")
        if len(set(self.action_ids)) != n:
            raise _fail(where, "action_ids", "lists an action twice")
        if len(self.probabilities) != n:
            raise _fail(
                where,
                "probabilities",
                f"has {len(self.probabilities)} entries for {n} actions",
            )
        for i, p in enumerate(self.probabilities):
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise _fail(where, "probabilities", f"entry {i} is {p}, outside [0, 1]")
        total = math.fsum(self.probabilities)
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            raise _fail(where, "probabilities", f"sum to {total}, not 1")
        if not 0 <= self.chosen_index < n:
            raise _fail(where, "chosen_index", f"{self.chosen_index} outside 0..{n - 1}")
        if self.action_ids[self.chosen_index] != self.chosen_action_id:
            raise _fail(
                where,
                "chosen_action_id",
                f"{self.chosen_action_id!r} is not action_ids[{self.chosen_index}]",
            )
        if not 0.0 < self.propensity <= 1.0:
            raise _fail(where, "propensity", f"{self.propensity} is outside (0, 1]")
        if abs(self.propensity - self.probabilities[self.chosen_index]) > PROBABILITY_TOLERANCE:
            raise _fail(
                where,
                "propensity",
                f"{self.propensity} differs from the served probability "
                f"{self.probabilities[self.chosen_index]} of the chosen action",
            )
        if self.slate:
            self._check_slate(where)

    def _check_slate(self, where: str) -> None:
        """Refuse a slate that is not a draw without replacement from ``probabilities``."""
        slate = self.slate
        if len(slate) < 2:
            raise _fail(where, "slate", "a one-slot list is logged without a slate (empty)")
        if len(slate) > len(self.action_ids):
            raise _fail(
                where, "slate", f"has {len(slate)} slots for {len(self.action_ids)} actions"
            )
        position = {a: i for i, a in enumerate(self.action_ids)}
        probabilities = self.probabilities
        taken: list[int] = []
        # each slot's expected probability is slot_probability(probabilities, taken, i),
        # written here on a copy of the probabilities whose placed entries are zeroed:
        # fsum is exactly rounded, so the placed entries' zeros change neither the mass
        # nor, then, the quotient (the same values as summing the actions left)
        mass_of = list(probabilities)
        n_left = len(mass_of)
        for j, slot in enumerate(slate, start=1):
            if not isinstance(slot, SlateSlot):
                raise _fail(where, "slate", f"slot {j} is not a SlateSlot")
            p = slot.probability
            if not (isinstance(p, float | int) and math.isfinite(p) and 0.0 < p <= 1.0):
                raise _fail(where, "slate", f"slot {j} probability {p} is outside (0, 1]")
            i = position.get(slot.action_id)
            if i is None:
                raise _fail(where, "slate", f"slot {j} action {slot.action_id!r} is not eligible")
            if i in taken:
                raise _fail(where, "slate", f"slot {j} repeats action {slot.action_id!r}")
            if j == 1 and slot.action_id != self.chosen_action_id:
                raise _fail(where, "slate", f"slot 1 is {slot.action_id!r}, not the chosen action")
            mass = math.fsum(mass_of)
            expected = float(probabilities[i]) / mass if mass > SLATE_MASS_FLOOR else 1.0 / n_left
            if abs(p - expected) > PROBABILITY_TOLERANCE * max(1.0, expected):
                raise _fail(
                    where,
                    "slate",
                    f"slot {j} probability {p} differs from {expected}, the probability of "
                    f"drawing {slot.action_id!r} without replacement after the slots before",
                )
            taken.append(i)
            mass_of[i] = 0.0
            n_left -= 1


def outcome_channel_problem(type_: str, channel: str) -> str | None:
    """Why an outcome of ``type_`` cannot concern an action on ``channel`` (None: it can).

    Only the built-in :data:`CHANNELS` are checked: a channel a catalog adds is
    not in the table, so any type is accepted there, as is a type outside
    :data:`OUTCOME_CHANNELS` (types are validated where they are read).

    >>> outcome_channel_problem("opened", "email") is None
    True
    >>> outcome_channel_problem("opened", "rep_visit")
    "outcome type 'opened' cannot happen on channel 'rep_visit' (only on: email)"
    >>> outcome_channel_problem("accepted", "rep_visit") is None
    True
    """
    allowed = OUTCOME_CHANNELS.get(type_)
    if allowed is None or channel not in CHANNELS or channel in allowed:
        return None
    return (
        f"outcome type {type_!r} cannot happen on channel {channel!r} "
        f"(only on: {', '.join(sorted(allowed))})"
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """Something that happened after a decision, joined to it by ``event_id``.

    ``action_id`` names the action of the decision the outcome concerns (a rep's
    feedback or an HCP's response about another of its suggestions); ``None``
    means the decision's chosen action. Only outcomes about the chosen action
    enter the decision's reward (:mod:`nba.logs.join`).
    """

    event_id: str
    ts: datetime
    type: str
    value: float = 1.0
    source: str = "hcp"
    source_id: str = ""
    action_id: str | None = None

    def __post_init__(self) -> None:
        where = f"Outcome for '{self.event_id}'"
        if not self.event_id:
            raise _fail("Outcome", "event_id", "must not be empty")
        object.__setattr__(self, "ts", ensure_utc(self.ts, where))
        if not self.type:
            raise _fail(where, "type", "must not be empty")
        if not math.isfinite(self.value):
            raise _fail(where, "value", f"{self.value} is not finite")
        if self.action_id is not None and (
            not isinstance(self.action_id, str) or not self.action_id
        ):
            raise _fail(where, "action_id", "must be a non-empty string or None")


#: How a touch came about: ``contact`` is a message or visit that reached the HCP (the
#: meaning every touch had before interest signals); the others are the HCP pulling
#: information: topics or slides asked for during a rep detail (CLM), the link
#: clicked in an email, a portal page viewed, a question asked in a webinar.
TOUCH_KINDS: tuple[str, ...] = (
    "contact",
    "detail_pull",
    "email_click",
    "portal_view",
    "webinar_question",
)


@dataclass(frozen=True, slots=True)
class Touch:
    """Something that reached an HCP, or that the HCP pulled.

    ``origin`` says who caused it: us (``ours``) or another system (``external``).
    ``kind`` says what it was (:data:`TOUCH_KINDS`): a ``contact`` (a message or
    visit that reached the HCP) or a pull (``detail_pull``, ``email_click``,
    ``portal_view``, ``webinar_question``) with the ``topics`` the HCP asked
    for. Checking the topics and the channel against a catalog's vocabularies
    is :meth:`nba.catalog.Catalog.check_touch`: this record does not know the
    catalog.

    >>> from datetime import UTC, datetime
    >>> Touch("h1", datetime(2026, 1, 5, tzinfo=UTC), "portal", "page-42", "external",
    ...       "portal_view", topics=["dosing"], dwell_s=31.5).topics
    ('dosing',)
    """

    hcp_id: str
    ts: datetime
    channel: str
    content_id: str
    origin: str = "ours"
    kind: str = "contact"
    topics: tuple[str, ...] = ()
    content_ids: tuple[str, ...] = ()
    dwell_s: float | None = None

    def __post_init__(self) -> None:
        where = f"Touch for '{self.hcp_id}'"
        if not self.hcp_id:
            raise _fail("Touch", "hcp_id", "must not be empty")
        object.__setattr__(self, "ts", ensure_utc(self.ts, where))
        if not self.channel:
            raise _fail(where, "channel", "must not be empty")
        if not isinstance(self.content_id, str) or not self.content_id:
            raise _fail(where, "content_id", "must not be empty (the item or page id)")
        if self.origin not in TOUCH_ORIGINS:
            raise _fail(where, "origin", f"{self.origin!r} is not one of {sorted(TOUCH_ORIGINS)}")
        if self.kind not in TOUCH_KINDS:
            raise _fail(where, "kind", f"{self.kind!r} is not one of {', '.join(TOUCH_KINDS)}")
        topics = _strings(self.topics, where, "topics")
        if self.kind == "contact" and topics:
            raise _fail(
                where, "topics", "a plain contact carries no topics; topics are what a pull asked"
            )
        object.__setattr__(self, "topics", topics)
        object.__setattr__(self, "content_ids", _strings(self.content_ids, where, "content_ids"))
        if self.dwell_s is not None:
            if isinstance(self.dwell_s, bool) or not isinstance(self.dwell_s, int | float):
                raise _fail(where, "dwell_s", f"must be a number of seconds, got {self.dwell_s!r}")
            if not (math.isfinite(self.dwell_s) and self.dwell_s >= 0):
                raise _fail(where, "dwell_s", f"must be a finite number >= 0, got {self.dwell_s}")
            object.__setattr__(self, "dwell_s", float(self.dwell_s))


def _strings(values: Any, where: str, fieldname: str) -> tuple[str, ...]:
    """``values`` as a tuple of distinct non-empty strings, in the given order."""
    if isinstance(values, str) or not isinstance(values, Sequence | frozenset | set):
        raise _fail(where, fieldname, f"must be a list of strings, got {values!r}")
    out = tuple(values)
    for v in out:
        if not isinstance(v, str) or not v:
            raise _fail(where, fieldname, f"entries must be non-empty strings, got {v!r}")
    if len(set(out)) != len(out):
        dup = next(v for v in out if out.count(v) > 1)
        raise _fail(where, fieldname, f"lists {dup!r} twice")
    return out


@dataclass(frozen=True, slots=True)
class StatedPreference:
    """What an HCP told someone they want: topics of interest and preferred channels.

    A statement, not behaviour: it is kept apart from touches (what reached the
    HCP or what the HCP pulled), so learning from behaviour never mistakes what
    was said for what was done. Checking the topics and channels against a
    catalog is :meth:`nba.catalog.Catalog.check_terms`.

    >>> from datetime import UTC, datetime
    >>> StatedPreference("h1", datetime(2026, 1, 5, tzinfo=UTC), "rep-0042",
    ...                  topics=["dosing"], channels=["email"]).channels
    ('email',)
    """

    hcp_id: str
    ts: datetime
    recorded_by: str
    topics: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"StatedPreference for '{self.hcp_id}'"
        if not self.hcp_id:
            raise _fail("StatedPreference", "hcp_id", "must not be empty")
        object.__setattr__(self, "ts", ensure_utc(self.ts, where))
        if not isinstance(self.recorded_by, str) or not self.recorded_by.strip():
            raise _fail(where, "recorded_by", "must name who recorded it")
        object.__setattr__(self, "topics", _strings(self.topics, where, "topics"))
        object.__setattr__(self, "channels", _strings(self.channels, where, "channels"))
        if not self.topics and not self.channels:
            raise _fail(where, "topics", "give at least one topic or channel")


def read_toml(path: str | Path, error: type[ValidationError], what: str = "") -> dict[str, Any]:
    """Parse a TOML file; an unreadable or malformed file raises ``error`` naming it.

    Messages: ``PATH: cannot read[ WHAT]: REASON`` and ``PATH: not valid TOML: ...``.

    >>> read_toml("/no/such.toml", ValidationError, "catalog")
    Traceback (most recent call last):
    ...
    nba.domain.ValidationError: /no/such.toml: cannot read catalog: No such file or directory
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        label = f" {what}" if what else ""
        raise error(f"{p}: cannot read{label}: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: not valid TOML: {exc}") from exc


def parse_day(
    value: date | str | None, what: str, error: type[ValidationError] = ValidationError
) -> date | None:
    """A whole day from a ``date`` or ``YYYY-MM-DD`` (None passes through).

    ``error`` is the exception class raised (callers keep their own), naming
    ``what`` was wrong.

    >>> parse_day("2026-01-05", "since")
    datetime.date(2026, 1, 5)
    """
    if isinstance(value, datetime):
        raise error(f"{what}: give a whole day (date or YYYY-MM-DD), not {value!r}")
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise error(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def action_ids(actions: Sequence[Action]) -> tuple[str, ...]:
    """The ``action_id`` of each action, in order."""
    return tuple(a.action_id for a in actions)
