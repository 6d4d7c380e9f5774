"""Event-triggered journeys: "when the HCP does X, within N hours give the territory's
rep suggestion Y, or suppress Z for D days" (docs/triggers.md).

A trigger file (TOML, ``nba/data/triggers.toml`` by default) lists ``[[trigger]]``
tables::

    [[trigger]]
    name = "visit-request"
    event = "visit_request"          # one of EVENTS
    within_hours = 24                # the rep's notification is due by event time + 24 h
    notify = { channel = "rep_visit", content = "VEL-EFF-01", priority = 1 }

    [[trigger]]
    name = "unsubscribed"
    event = "unsubscribe"
    suppress = { channel = "email", days = 365 }   # content = "..." for one item only

Everything is checked when the file is loaded, and a bad file is refused with
``PATH:LINE: ...`` naming the trigger: unknown keys, events, channels or content
(against the catalog), a suggestion the catalog does not offer on that channel, and
a trigger that would fire itself -- its suggestion can produce an event matching
its own condition, directly or through a cycle of triggers (:data:`PRODUCES`).

>>> ts = TriggerSet.default()
>>> [t.name for t in ts.matching("visit_request")]
['visit-request']
>>> TriggerSet.from_text('''
... [[trigger]]
... name = "loop"
... event = "resource_download"
... within_hours = 4
... notify = { channel = "portal", content = "VEL-SAF-01", priority = 2 }
... ''', Catalog.default(), "t.toml")
Traceback (most recent call last):
...
nba.triggers.TriggerError: t.toml:2: trigger 'loop' fires itself: loop --(portal ...
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nba.catalog import Catalog
from nba.domain import Action, ValidationError

#: The events a trigger may wait for, with where each comes from (docs/triggers.md):
#: a touch posted with that ``event`` (``POST /v1/touches``) or an outcome.
EVENTS: Mapping[str, str] = {
    "visit_request": "touch event 'visit_request' (the HCP asked for a visit on the portal)",
    "resource_download": "touch event 'resource_download', or a 'downloaded' outcome",
    "webinar_attended": "touch event 'webinar_attended', or an 'attended' outcome",
    "safety_click": "a 'clicked' outcome on content whose topic is safety",
    "unsubscribe": "an 'unsubscribed' outcome",
}
#: events a touch may carry in its ``event`` field
TOUCH_EVENTS: tuple[str, ...] = ("visit_request", "resource_download", "webinar_attended")
#: outcome type -> the event it is (``clicked`` only on safety content)
OUTCOME_EVENTS: Mapping[str, str] = {
    "downloaded": "resource_download",
    "attended": "webinar_attended",
    "clicked": "safety_click",
    "unsubscribed": "unsubscribe",
}
SAFETY_TOPIC = "safety"

#: Which events a suggested action can lead to, by its channel: what the HCP can do
#: in answer to it. ``safety_click`` needs safety content. Used to refuse triggers
#: that fire themselves; a suppression produces nothing.
PRODUCES: Mapping[str, tuple[str, ...]] = {
    "portal": ("visit_request", "resource_download"),
    "webinar": ("webinar_attended",),
    "email": ("unsubscribe", "safety_click"),
}

MAX_HOURS = 24 * 30
MAX_DAYS = 3650
_TRIGGER_KEYS = frozenset({"name", "event", "within_hours", "notify", "suppress"})
_NOTIFY_KEYS = frozenset({"channel", "content", "priority"})
_SUPPRESS_KEYS = frozenset({"channel", "content", "days"})
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TriggerError(ValidationError):
    """A trigger file was refused; the message is ``PATH:LINE: what is wrong``."""


@dataclass(frozen=True, slots=True)
class Notify:
    """Give the HCP's rep this suggestion (``priority`` 1 is the most urgent)."""

    channel: str
    content_id: str
    priority: int

    @property
    def action_id(self) -> str:
        return Action(self.content_id, self.channel).action_id


@dataclass(frozen=True, slots=True)
class Suppress:
    """Offer nothing on ``channel`` (only ``content_id`` when given) for ``days``."""

    channel: str
    content_id: str | None
    days: float

    def covers(self, action: Action) -> bool:
        return action.channel == self.channel and self.content_id in (None, action.content_id)


@dataclass(frozen=True, slots=True)
class Trigger:
    """One rule of the file; ``line`` is where its ``[[trigger]]`` starts."""

    name: str
    event: str
    within_hours: float
    notify: Notify | None
    suppress: Suppress | None
    line: int

    def produces(self, catalog: Catalog) -> tuple[str, ...]:
        """Events the trigger's suggestion can lead to (none for a suppression)."""
        if self.notify is None:
            return ()
        out = PRODUCES.get(self.notify.channel, ())
        topic = catalog.by_id[self.notify.content_id].topic
        return tuple(e for e in out if e != "safety_click" or topic == SAFETY_TOPIC)


class _Lines:
    """Line numbers of the ``[[trigger]]`` blocks of a file and of keys inside them."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.starts = [
            i + 1 for i, ln in enumerate(self.lines) if re.match(r"^\s*\[\[\s*trigger\s*\]\]", ln)
        ]

    def block(self, idx: int) -> tuple[int, int]:
        lo = self.starts[idx] if idx < len(self.starts) else 1
        nxt = [s for s in self.starts if s > lo]
        return lo, (nxt[0] - 1 if nxt else len(self.lines))

    def key(self, idx: int, key: str, sub: str | None = None) -> int:
        """Line of ``key`` in trigger ``idx`` (inside its ``sub`` table when given);
        the block's first line when not found."""
        lo, hi = self.block(idx)
        if sub is not None:
            for n in range(lo, hi + 1):
                text = self.lines[n - 1]
                if re.match(rf"^\s*{sub}\s*=", text):
                    return n
                if re.match(rf"^\s*\[\s*trigger\.{sub}\s*\]", text):
                    lo = n
                    break
            else:
                return lo
        for n in range(lo, hi + 1):
            if re.match(rf"^\s*{key}\s*=", self.lines[n - 1]):
                return n
        return lo


class TriggerSet:
    """The validated triggers of one file, by event.

    Parameters
    ----------
    triggers : sequence of Trigger
    source : str
        The file they came from (for messages).
    """

    def __init__(self, triggers: Sequence[Trigger], source: str = "<memory>") -> None:
        self.triggers = tuple(triggers)
        self.source = source
        self.by_name = {t.name: t for t in self.triggers}

    def matching(self, event: str) -> list[Trigger]:
        """Triggers waiting for ``event``, in file order."""
        return [t for t in self.triggers if t.event == event]

    @classmethod
    def load(cls, path: str | Path, catalog: Catalog) -> TriggerSet:
        """Read and validate a trigger file against ``catalog``."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise TriggerError(f"{p}: cannot read triggers: {exc.strerror or exc}") from exc
        return cls.from_text(text, catalog, str(p))

    @classmethod
    def default(cls, catalog: Catalog | None = None) -> TriggerSet:
        """The packaged ``nba/data/triggers.toml`` against the packaged catalog."""
        return cls.load(
            Path(__file__).parent / "data" / "triggers.toml", catalog or Catalog.default()
        )

    @classmethod
    def from_text(cls, text: str, catalog: Catalog, source: str = "<memory>") -> TriggerSet:
        """Parse and validate; :class:`TriggerError` ``SOURCE:LINE: ...`` when refused."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            where = f"{source}:{m.group(1)}" if m else source
            raise TriggerError(f"{where}: not valid TOML: {exc}") from exc
        lines = _Lines(text)
        extra = sorted(set(data) - {"trigger"})
        if extra:
            n = next(
                (i + 1 for i, ln in enumerate(lines.lines) if re.match(rf"^\s*{extra[0]}\b", ln)),
                1,
            )
            raise TriggerError(
                f"{source}:{n}: unknown key {extra[0]!r}; the file holds [[trigger]] tables"
            )
        raw = data.get("trigger", [])
        if not isinstance(raw, list):
            raise TriggerError(f"{source}:1: 'trigger' must be an array of tables [[trigger]]")
        out: list[Trigger] = []
        for i, t in enumerate(raw):
            out.append(_parse_one(i, t, catalog, source, lines))
        seen: dict[str, Trigger] = {}
        for t in out:
            if t.name in seen:
                raise TriggerError(
                    f"{source}:{t.line}: trigger name {t.name!r} is used twice "
                    f"(first on line {seen[t.name].line})"
                )
            seen[t.name] = t
        _refuse_cycles(out, catalog, source)
        return cls(out, source)


def _parse_one(i: int, t: Any, catalog: Catalog, source: str, lines: _Lines) -> Trigger:
    start = lines.block(i)[0]
    name = t.get("name") if isinstance(t, dict) else None
    label = f"trigger {name!r}" if isinstance(name, str) else f"trigger {i + 1}"

    def fail(line: int, problem: str) -> TriggerError:
        return TriggerError(f"{source}:{line}: {label}: {problem}")

    if not isinstance(t, dict):
        raise fail(start, "must be a table")
    unknown = sorted(set(t) - _TRIGGER_KEYS)
    if unknown:
        raise fail(
            lines.key(i, unknown[0]),
            f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TRIGGER_KEYS))})",
        )
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(lines.key(i, "name"), "name: must be 1-64 letters, digits, '_', '.' or '-'")
    event = t.get("event")
    if event not in EVENTS:
        raise fail(
            lines.key(i, "event"), f"event {event!r} is not one of {', '.join(sorted(EVENTS))}"
        )
    hours = t.get("within_hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= MAX_HOURS:
        raise fail(
            lines.key(i, "within_hours"),
            f"within_hours: must be in (0, {MAX_HOURS}], got {hours!r}",
        )
    if "notify" not in t and "suppress" not in t:
        raise fail(start, "needs a notify or a suppress action (or both)")

    def channel_content(
        sub: str, spec: dict[str, Any], need_content: bool
    ) -> tuple[str, str | None]:
        ch = spec.get("channel")
        if ch not in catalog.channels:
            raise fail(
                lines.key(i, "channel", sub),
                f"{sub}.channel {ch!r} is not one of the catalog's channels "
                f"({', '.join(catalog.channels)})",
            )
        content = spec.get("content")
        if content is None and not need_content:
            return ch, None
        if not isinstance(content, str) or content not in catalog.by_id:
            raise fail(
                lines.key(i, "content", sub),
                f"{sub}.content {content!r} is not an item of catalog {catalog.version}",
            )
        if ch not in catalog.by_id[content].channels:
            raise fail(
                lines.key(i, "content", sub),
                f"{sub}.content {content!r} is not offered on channel {ch!r} "
                f"(only {', '.join(catalog.by_id[content].channels)})",
            )
        return ch, content

    def table(sub: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        spec = t.get(sub)
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise fail(lines.key(i, sub), f"{sub}: must be a table")
        bad = sorted(set(spec) - allowed)
        if bad:
            raise fail(
                lines.key(i, bad[0], sub),
                f"{sub}: unknown key {bad[0]!r} (allowed: {', '.join(sorted(allowed))})",
            )
        return spec

    notify = None
    spec = table("notify", _NOTIFY_KEYS)
    if spec is not None:
        ch, content = channel_content("notify", spec, need_content=True)
        prio = spec.get("priority", 5)
        if isinstance(prio, bool) or not isinstance(prio, int) or not 1 <= prio <= 9:
            raise fail(
                lines.key(i, "priority", "notify"),
                f"notify.priority: must be a whole number 1 (most urgent) .. 9, got {prio!r}",
            )
        assert content is not None
        notify = Notify(ch, content, prio)
    suppress = None
    spec = table("suppress", _SUPPRESS_KEYS)
    if spec is not None:
        ch, content = channel_content("suppress", spec, need_content=False)
        days = spec.get("days")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= MAX_DAYS:
            raise fail(
                lines.key(i, "days", "suppress"),
                f"suppress.days: must be in (0, {MAX_DAYS}], got {days!r}",
            )
        suppress = Suppress(ch, content, float(days))
    return Trigger(name, str(event), float(hours), notify, suppress, start)


def _refuse_cycles(triggers: Sequence[Trigger], catalog: Catalog, source: str) -> None:
    """Refuse a trigger whose suggestion leads, through any chain of triggers, to an
    event that fires it again."""
    edges: dict[str, list[tuple[str, str]]] = {}
    for a in triggers:
        made = a.produces(catalog)
        edges[a.name] = [(b.name, b.event) for b in triggers if b.event in made]
    by_name = {t.name: t for t in triggers}
    for start in triggers:
        # depth-first search from ``start`` for a path back to it
        stack: list[tuple[str, list[str]]] = [(start.name, [start.name])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            notify = by_name[node].notify
            channel = notify.channel if notify is not None else "?"
            for nxt, ev in edges[node]:
                step = [*path, f"--({channel} suggestion can produce {ev})-->", nxt]
                if nxt == start.name:
                    chain = " ".join(step)
                    raise TriggerError(
                        f"{source}:{start.line}: trigger {start.name!r} fires itself: {chain}"
                    )
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, step))
