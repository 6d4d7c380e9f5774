"""The decision context: the feature snapshot a policy sees and the log keeps.

Whatever a decision logs in its ``context`` column is exactly this record, as
canonical JSON, so replaying a log reproduces what the model saw. The
simulator fills it from its vectorized state; the service fills it from its
event store; both use the same definitions of the history counts:

- ``touches_{7,30,90}d[channel]``: contacts (touches of kind ``contact``, ours
  and external; pulls such as a portal page view are not contacts) on the HCP
  in the ``N`` days before the decision day (days ``day-N .. day-1``).
- ``engagements_30d[channel]``: outcomes of a type in
  :data:`nba.domain.ENGAGEMENT_TYPES` in those 30 days, counted once per
  (decision, action, type), by the channel of the action the outcome concerns
  (its ``action_id``, else the decision's chosen action; the simulator's
  outcomes all concern the chosen action).
- ``topic_engagements_90d[topic]``: the same over 90 days, by topic.
- ``topic_channel_engagements_90d["topic@channel"]``: the same 90-day
  engagements, by the chosen action's topic and channel together (key: topic,
  ``@``, channel, like an action id).
- ``days_since_touch[channel]``: whole days since the last contact on that
  channel (absent: none in the last 90 days).
- ``days_since_content[content_id]``: whole days since the HCP last received
  that content item in a contact (any channel), for items contacted in the 90 days before the
  decision day, so always 1..90 (absent: not in those days).
- ``last_content_id``: content of the most recent contact (any channel), or None.
- ``interest[topic]`` (version 3): the HCP's decayed interest in each topic,
  ``sum 0.5 ** (age / INTEREST_HALFLIFE_DAYS)`` over the signals of the 90 days
  before the decision day (``age`` = decision day minus the signal's day, 1..90):
  each topic a pull touch (any ``kind`` but ``contact``) names counts once per
  touch on the day of the touch, and each engagement counted in
  ``topic_engagements_90d`` counts once on the day of the outcome. The sum runs
  over ages in ascending order (:func:`interest_profile`) and is rounded to three
  decimals, so the simulator, the service and both featurizer paths agree to the
  byte; topics that round to 0 are left out.

- ``topic_pulls_90d[topic]`` (version 4): how many pull touches (any ``kind``
  but ``contact``) in the 90 days before the decision day name the topic (each
  topic once per touch), undecayed: the same signals as ``interest`` without the
  two-week half-life, so a topic an HCP asked about two months ago still counts
  in full (the simulated HCP's topic interest does not fade, and with a few
  decisions per HCP per quarter the decayed profile forgets most of it).

- ``overrides_90d`` (version 5): how many of the HCP's decisions a rep overrode
  (did something else than suggested: ``POST /v1/touches`` with
  ``overrides_event_id``) with a touch on days ``day-90 .. day-1``; each decision
  once. Left out of the JSON when 0 (the simulator's reps never override).

Channels or topics with a zero count are left out of the maps.

Besides the history, a version 3 context may carry what the HCP **said**
(``stated``: the topics of the latest statement within
:data:`STATED_WINDOW_DAYS` days before the decision day that names topics, the
channels of the latest one that names channels) and the HCP's **declared
attributes** as the featurizer is to use them (``attributes``: only those whose
``featurize`` rule is not ``none``, already in featurizable form: see
:meth:`nba.hcp_features.HCPFeatures.context_attributes`). Both are left out of
the JSON when empty; the simulator has neither.

Context version 2 added ``topic_channel_engagements_90d`` and
``days_since_content``; version 3 added ``interest``, ``stated`` and
``attributes``; version 4 added ``topic_pulls_90d``; version 5 ``overrides_90d``.
Version 1 to 4 snapshots are still read (the newer fields empty).

>>> from datetime import date
>>> from nba.domain import HCPProfile
>>> hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}))
>>> ctx = DecisionContext(hcp=hcp, day=date(2026, 1, 5))
>>> DecisionContext.from_json(ctx.to_json()) == ctx
True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from nba.domain import ACTION_SEPARATOR, HCPProfile, ValidationError

CONTEXT_VERSION = 5
#: versions :meth:`DecisionContext.from_dict` reads (older ones lack newer maps)
READABLE_CONTEXT_VERSIONS = (1, 2, 3, 4, 5)
HISTORY_WINDOWS = (7, 30, 90)
#: window of ``days_since_content`` (and of every 90-day map, ``interest`` included)
CONTENT_WINDOW = max(HISTORY_WINDOWS)
#: half-life of a signal in ``History.interest``: two weeks, so a pull of last
#: week still weighs ~0.7 and one of three months ago ~0.01 (the window's end)
INTEREST_HALFLIFE_DAYS = 14.0
#: weight of a signal ``age`` days old (index ``age``, 1..90; index 0 unused)
INTEREST_WEIGHTS: tuple[float, ...] = tuple(
    0.5 ** (age / INTEREST_HALFLIFE_DAYS) for age in range(CONTENT_WINDOW + 1)
)
#: how far back a statement of the HCP still counts for ``stated``
STATED_WINDOW_DAYS = 365
#: an attribute name in ``attributes`` (as :mod:`nba.hcp_features` declares them)
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Scalar = str | int | float | bool


def _count_map(value: Any, where: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"context: field '{where}': expected a mapping")
    out: dict[str, int] = {}
    for k, v in value.items():
        iv = int(v)
        if iv < 0:
            raise ValidationError(f"context: field '{where}.{k}': negative count {v}")
        if iv:
            out[str(k)] = iv
    return dict(sorted(out.items()))


def topic_channel_key(topic: str, channel: str) -> str:
    """The key of ``topic_channel_engagements_90d`` for ``topic`` on ``channel``.

    >>> topic_channel_key("efficacy", "email")
    'efficacy@email'
    """
    return f"{topic}{ACTION_SEPARATOR}{channel}"


def _topic_channel_map(value: Any, where: str) -> dict[str, int]:
    out = _count_map(value, where)
    for k in out:
        topic, sep, channel = k.rpartition(ACTION_SEPARATOR)
        if not sep or not topic or not channel:
            raise ValidationError(
                f"context: field '{where}.{k}': key must be 'topic{ACTION_SEPARATOR}channel'"
            )
    return out


def _days_map(value: Any, where: str, lo: int, hi: int | None) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"context: field '{where}': expected a mapping")
    out: dict[str, int] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise ValidationError(f"context: field '{where}.{k}': {v!r} is not a whole number")
        iv = int(v)
        if iv < lo or (hi is not None and iv > hi):
            span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise ValidationError(f"context: field '{where}.{k}': {iv} days is not in {span}")
        out[str(k)] = iv
    return dict(sorted(out.items()))


def interest_profile(counts_by_age: Mapping[int, Mapping[str, int]]) -> dict[str, float]:
    """``History.interest`` from signal counts by age (days before the decision day).

    Parameters
    ----------
    counts_by_age : mapping of int to mapping of str to int
        ``counts_by_age[age][topic]``: pulls and engagements of ``topic`` ``age``
        days before the decision day; ages outside 1..90 are ignored.

    Returns
    -------
    dict of str to float
        Rounded to three decimals, zeros left out, sorted by topic.

    >>> interest_profile({1: {"dosing": 1}, 14: {"dosing": 2, "safety": 1}})
    {'dosing': 1.952, 'safety': 0.5}
    """
    topics = sorted({t for c in counts_by_age.values() for t, v in c.items() if v})
    out: dict[str, float] = {}
    for t in topics:
        total = 0.0
        for age in range(1, CONTENT_WINDOW + 1):  # ascending ages: one summation order
            c = counts_by_age.get(age, {}).get(t, 0)
            total += c * INTEREST_WEIGHTS[age]
        v = round(total, 3)
        if v:
            out[t] = v
    return out


def _interest_map(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"context: field '{where}': expected a mapping")
    out: dict[str, float] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValidationError(f"context: field '{where}.{k}': {v!r} is not a finite number")
        if v < 0:
            raise ValidationError(f"context: field '{where}.{k}': negative interest {v}")
        if not k:
            raise ValidationError(f"context: field '{where}': empty topic name")
        fv = round(float(v), 3)
        if fv:
            out[str(k)] = fv
    return dict(sorted(out.items()))


def _name_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValidationError(f"context: field '{where}': expected a list of names")
    for v in value:
        if not isinstance(v, str) or not v:
            raise ValidationError(f"context: field '{where}': {v!r} is not a non-empty name")
    return tuple(sorted(set(value)))


def _attributes(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"context: field '{where}': expected a mapping")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not ATTRIBUTE_NAME.match(k):
            raise ValidationError(f"context: field '{where}': {k!r} is not an attribute name")
        w = f"{where}.{k}"
        if isinstance(v, bool):
            out[k] = v
        elif isinstance(v, int | float):
            if not math.isfinite(v):
                raise ValidationError(f"context: field '{w}': {v!r} is not a finite number")
            out[k] = float(v)
        elif isinstance(v, str):
            if not v:
                raise ValidationError(f"context: field '{w}': empty value")
            out[k] = v
        elif isinstance(v, list | tuple):
            names = _name_list(v, w)
            if names:
                out[k] = list(names)
        else:
            raise ValidationError(
                f"context: field '{w}': {type(v).__name__} is not a string, number, bool "
                "or list of strings"
            )
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class History:
    """Recent history of one HCP as of the decision day (see module docstring)."""

    touches_7d: Mapping[str, int] = field(default_factory=dict)
    touches_30d: Mapping[str, int] = field(default_factory=dict)
    touches_90d: Mapping[str, int] = field(default_factory=dict)
    engagements_30d: Mapping[str, int] = field(default_factory=dict)
    topic_engagements_90d: Mapping[str, int] = field(default_factory=dict)
    days_since_touch: Mapping[str, int] = field(default_factory=dict)
    last_content_id: str | None = None
    topic_channel_engagements_90d: Mapping[str, int] = field(default_factory=dict)
    days_since_content: Mapping[str, int] = field(default_factory=dict)
    interest: Mapping[str, float] = field(default_factory=dict)
    topic_pulls_90d: Mapping[str, int] = field(default_factory=dict)
    overrides_90d: int = 0

    def __post_init__(self) -> None:
        for name in (
            "touches_7d",
            "touches_30d",
            "touches_90d",
            "engagements_30d",
            "topic_engagements_90d",
            "topic_pulls_90d",
        ):
            object.__setattr__(self, name, _count_map(getattr(self, name), name))
        dst: dict[str, int] = {}
        for k, v in dict(self.days_since_touch or {}).items():
            iv = int(v)
            if iv < 0:
                raise ValidationError(f"context: field 'days_since_touch.{k}': negative {v}")
            dst[str(k)] = iv
        object.__setattr__(self, "days_since_touch", dict(sorted(dst.items())))
        object.__setattr__(
            self,
            "topic_channel_engagements_90d",
            _topic_channel_map(self.topic_channel_engagements_90d, "topic_channel_engagements_90d"),
        )
        object.__setattr__(
            self,
            "days_since_content",
            _days_map(self.days_since_content, "days_since_content", 1, CONTENT_WINDOW),
        )
        object.__setattr__(self, "interest", _interest_map(self.interest, "interest"))
        ovr = self.overrides_90d
        if isinstance(ovr, bool) or not isinstance(ovr, int) or ovr < 0:
            raise ValidationError(
                f"context: field 'overrides_90d': {ovr!r} is not a whole-number count >= 0"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "touches_7d": dict(self.touches_7d),
            "touches_30d": dict(self.touches_30d),
            "touches_90d": dict(self.touches_90d),
            "engagements_30d": dict(self.engagements_30d),
            "topic_engagements_90d": dict(self.topic_engagements_90d),
            "days_since_touch": dict(self.days_since_touch),
            "last_content_id": self.last_content_id,
            "topic_channel_engagements_90d": dict(self.topic_channel_engagements_90d),
            "days_since_content": dict(self.days_since_content),
            "interest": dict(self.interest),
            "topic_pulls_90d": dict(self.topic_pulls_90d),
        }
        if self.overrides_90d:
            out["overrides_90d"] = self.overrides_90d
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        return cls(
            touches_7d=d.get("touches_7d") or {},
            touches_30d=d.get("touches_30d") or {},
            touches_90d=d.get("touches_90d") or {},
            engagements_30d=d.get("engagements_30d") or {},
            topic_engagements_90d=d.get("topic_engagements_90d") or {},
            days_since_touch=d.get("days_since_touch") or {},
            last_content_id=d.get("last_content_id"),
            topic_channel_engagements_90d=d.get("topic_channel_engagements_90d") or {},
            days_since_content=d.get("days_since_content") or {},
            interest=d.get("interest") or {},
            topic_pulls_90d=d.get("topic_pulls_90d") or {},
            overrides_90d=d.get("overrides_90d", 0),
        )


@dataclass(frozen=True)
class DecisionContext:
    """Everything a policy may condition on for one decision.

    Attributes
    ----------
    hcp : HCPProfile
        Observable profile (never the simulator's hidden state).
    day : date
        The decision's calendar day (UTC).
    history : History
        Recent touches and engagements.
    request : Mapping[str, str | int | float | bool]
        Flat request features supplied by the caller (requester, ...).
    stated_topics, stated_channels : tuple of str
        What the HCP said it wants (see the module docstring), sorted, distinct.
    attributes : Mapping[str, str | float | bool | list of str]
        Declared attributes in featurizable form (numbers as floats).
    """

    hcp: HCPProfile
    day: date
    history: History = field(default_factory=History)
    request: Mapping[str, Scalar] = field(default_factory=dict)
    stated_topics: tuple[str, ...] = ()
    stated_channels: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stated_topics", _name_list(self.stated_topics, "stated.topics"))
        object.__setattr__(
            self, "stated_channels", _name_list(self.stated_channels, "stated.channels")
        )
        object.__setattr__(self, "attributes", _attributes(self.attributes, "attributes"))
        req = dict(self.request or {})
        for k, v in req.items():
            if not isinstance(v, str | int | float | bool):
                raise ValidationError(
                    f"context: field 'request.{k}': must be a string, number or bool, "
                    f"got {type(v).__name__}"
                )
        object.__setattr__(self, "request", dict(sorted(req.items())))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": CONTEXT_VERSION,
            "hcp": self.hcp.to_dict(),
            "day": self.day.isoformat(),
            "history": self.history.to_dict(),
            "request": dict(self.request),
        }
        if self.stated_topics or self.stated_channels:
            out["stated"] = {
                "topics": list(self.stated_topics),
                "channels": list(self.stated_channels),
            }
        if self.attributes:
            out["attributes"] = _attributes_out(self.attributes)
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the logged ``context``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecisionContext:
        v = d.get("v", CONTEXT_VERSION)
        if isinstance(v, bool) or v not in READABLE_CONTEXT_VERSIONS:
            raise ValidationError(
                f"context: field 'v': unsupported version {v!r} "
                f"(readable: {', '.join(map(str, READABLE_CONTEXT_VERSIONS))})"
            )
        stated = d.get("stated") or {}
        if not isinstance(stated, Mapping):
            raise ValidationError("context: field 'stated': expected a mapping")
        unknown = sorted(set(stated) - {"topics", "channels"})
        if unknown:
            raise ValidationError(f"context: field 'stated.{unknown[0]}': unknown field")
        try:
            return cls(
                hcp=HCPProfile.from_dict(d["hcp"]),
                day=date.fromisoformat(d["day"]),
                history=History.from_dict(d.get("history") or {}),
                request=d.get("request") or {},
                stated_topics=stated.get("topics") or (),
                stated_channels=stated.get("channels") or (),
                attributes=d.get("attributes") or {},
            )
        except KeyError as exc:
            raise ValidationError(f"context: missing field {exc.args[0]!r}") from None
        except ValidationError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            # e.g. "hcp": 3, "decile": "x", "day": "soon": a malformed snapshot
            raise ValidationError(f"context: malformed field value: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> DecisionContext:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"context: not valid JSON: {exc}") from exc
        if not isinstance(d, Mapping):
            raise ValidationError("context: must be a JSON object")
        return cls.from_dict(d)


def _attributes_out(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A context's attributes as :meth:`DecisionContext.to_dict` writes them."""
    return {k: list(v) if isinstance(v, list | tuple) else v for k, v in attributes.items()}


#: the canonical encoder of :meth:`DecisionContext.to_json` (what ``json.dumps`` builds
#: from its arguments on every call)
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


class TextPerObject:
    """Text written once per immutable object, matched by identity.

    A decision service reads the same :class:`~nba.domain.HCPProfile` and
    :class:`History` objects again for the same rows (its store keeps them), and
    both are immutable, so a text made from one (its JSON, its tokens) is the
    same every time. Each object is kept with its text, so that its ``id``
    cannot be reused while it is kept; at most ``max_entries`` are kept, all
    dropped when full. Safe to share between threads (a race makes the same text
    twice).

    Parameters
    ----------
    max_entries : int
        How many objects are kept.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._kept: dict[int, tuple[object, str]] = {}

    def __call__(self, obj: object, make: Callable[[Any], str]) -> str:
        """``make(obj)``, made once while ``obj`` is kept."""
        kept = self._kept.get(id(obj))
        if kept is not None and kept[0] is obj:
            return kept[1]
        text = make(obj)
        if len(self._kept) >= self.max_entries:
            self._kept.clear()
        self._kept[id(obj)] = (obj, text)
        return text


def _json_of(obj: HCPProfile | History) -> str:
    return _encode(obj.to_dict())


class ContextJSON:
    """:meth:`DecisionContext.to_json`, the same text, with the profile's and the
    history's JSON kept per object (:class:`TextPerObject`).

    With sorted keys and no spaces a JSON object's text is its members' texts
    joined in key order, so the context's text is assembled from the parts: the
    same bytes as ``to_json`` (the tests hold the two together).

    Parameters
    ----------
    max_entries : int
        How many profiles and histories are kept (together).
    """

    def __init__(self, max_entries: int = 16_384) -> None:
        self._parts = TextPerObject(max_entries)

    @property
    def max_entries(self) -> int:
        return self._parts.max_entries

    def _part(self, obj: HCPProfile | History) -> str:
        return self._parts(obj, _json_of)

    def __call__(self, context: DecisionContext, request_text: str | None = None) -> str:
        """The text of ``context.to_json()``.

        ``request_text``, when given, must be ``request_json(context.request)``: a
        batch writes its one request's text once for all its decisions (the
        caller holds the mapping each decision's ``request`` was copied from, so
        the text is made from that very object, never looked up by an equal
        value: ``1`` and ``1.0`` are equal and written differently).
        """
        # the members in key order: attributes, day, hcp, history, request, stated, v
        out = "{"
        if context.attributes:
            out += '"attributes":' + _encode(_attributes_out(context.attributes)) + ","
        out += '"day":"' + context.day.isoformat()  # digits and '-': nothing to escape
        out += '","hcp":' + self._part(context.hcp)
        out += ',"history":' + self._part(context.history)
        out += ',"request":' + (
            request_text if request_text is not None else _encode(dict(context.request))
        )
        if context.stated_topics or context.stated_channels:
            out += ',"stated":' + _encode(
                {"channels": list(context.stated_channels), "topics": list(context.stated_topics)}
            )
        return out + _VERSION_TAIL


def request_json(request: Mapping[str, Any]) -> str:
    """The ``request`` member's text in :meth:`DecisionContext.to_json` of a context
    whose ``request`` is a copy of ``request``."""
    return _encode(dict(request))


#: the context's last member and its closing brace, the same for every context
_VERSION_TAIL = ',"v":' + _encode(CONTEXT_VERSION) + "}"
