"""The contact policy: hard business rules applied before the bandit.

The rules remove actions a policy must never see (exploration happens only
among what is left), and every removed action carries the name of the first
rule that removed it. Serving applies them one decision at a time with
:meth:`ContactPolicy.filter`; the simulator applies the very same rules to
whole days of decisions with :meth:`ContactPolicy.mask_batch`.

Rules are read from a TOML (or YAML) file, validated once at load; an error
names the file, the line (TOML) and the rule and key. The default file is
``nba/data/rules.toml``.

Per-market rule sets
--------------------
A ``[markets.XX]`` section (``XX`` one of the HCP vocabulary's markets,
``nba/data/hcp_features.toml``) may set ``allowed_channels`` and any of
``consent``, ``no_see``, ``feedback``, ``repeat``, ``frequency_caps`` and
``min_gap``. Each section it sets replaces the global section for HCPs of that
market (``frequency_caps = []``: no caps there); the others are inherited.
``holdout`` stays global. :attr:`ContactPolicy.markets` holds the effective
rules of each such market, and both :meth:`~ContactPolicy.filter` and
:meth:`~ContactPolicy.mask_batch` pick them by the HCP's market.

Rule order
----------
An action is checked against the rules in this order and the first one that
fires is recorded (:data:`RULE_ORDER`):

1. ``approval`` -- the content is unknown to the catalog, may not travel on the
   action's channel, or is not approved in the HCP's market on the decision's
   day (always on).
1b. ``market_channel`` -- the HCP's market section lists ``allowed_channels``
   and the action's channel is not among them.
2. ``consent`` -- the HCP has no recorded consent for the channel (always on;
   the file may exempt channels).
3. ``no_see`` -- the HCP refuses rep access and the channel is one of the
   no-see channels (default ``rep_visit``; always on).
4. ``dismissed`` -- a rep dismissed a suggestion with this content for this
   HCP less than ``feedback.dismissed_days`` days ago.
5. ``snoozed`` -- a suggestion with this content is snoozed and its snooze
   date has not come (always honoured; a snooze without a date lasts
   ``feedback.snooze_default_days``).
6. ``repeat`` -- the HCP was touched with this content (any channel) less than
   ``repeat.days`` days ago.
7. ``frequency_cap:<channel>:<max>/<days>d`` -- the channel already carried
   ``max`` touches in the last ``days`` days (one rule per configured cap, in
   file order).
8. ``min_gap`` -- the HCP's last touch on any channel is less than
   ``min_gap.hours`` (or ``.days``) ago.

Time windows are measured back from ``now``: a touch at ``ts <= now`` is inside
a window of ``D`` days when ``now - ts < D days``. Touches and feedback stamped
after ``now`` are ignored (they have not happened yet at decision time).

The holdout (``holdout.share`` of HCPs who always get the baseline) does not
remove actions; :meth:`ContactPolicy.is_holdout` answers it from a salted
SHA-256 of the ``hcp_id``, so every process and every restart agrees.

>>> from datetime import UTC, datetime, timedelta
>>> from nba.catalog import Catalog
>>> from nba.domain import HCPProfile, Touch
>>> cat = Catalog.default()
>>> pol = ContactPolicy.default()
>>> hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email", "portal"}))
>>> now = datetime(2026, 6, 1, 9, tzinfo=UTC)
>>> acts = [Action("VEL-EFF-02", "email"), Action("VEL-EFF-01", "rep_visit")]
>>> out = pol.filter(hcp, acts, now, touches=[], feedback=[], catalog=cat)
>>> [a.action_id for a in out.allowed], [(s.action_id, s.rule) for s in out.suppressed]
(['VEL-EFF-02@email'], [('VEL-EFF-01@rep_visit', 'consent')])
>>> sent = [Touch("h1", now - timedelta(days=d), "email", "VEL-RWE-02") for d in (2, 5)]
>>> pol.filter(hcp, acts[:1], now, sent, [], cat).suppressed[0].rule
'frequency_cap:email:2/7d'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.catalog import Catalog
from nba.domain import (
    CHANNELS,
    Action,
    HCPProfile,
    Suppression,
    Touch,
    ValidationError,
    ensure_utc,
)

DEFAULT_RULES_FILE = "rules.toml"

RULE_APPROVAL = "approval"
RULE_MARKET_CHANNEL = "market_channel"
RULE_CONSENT = "consent"
RULE_NO_SEE = "no_see"
RULE_DISMISSED = "dismissed"
RULE_SNOOZED = "snoozed"
RULE_REPEAT = "repeat"
RULE_FREQUENCY_CAP = "frequency_cap"
RULE_MIN_GAP = "min_gap"

#: The order in which rules are checked; the first that fires is recorded.
RULE_ORDER: tuple[str, ...] = (
    RULE_APPROVAL,
    RULE_MARKET_CHANNEL,
    RULE_CONSENT,
    RULE_NO_SEE,
    RULE_DISMISSED,
    RULE_SNOOZED,
    RULE_REPEAT,
    RULE_FREQUENCY_CAP,
    RULE_MIN_GAP,
)

#: Rep feedback types that change what an HCP is offered next.
FEEDBACK_TYPES: tuple[str, ...] = ("dismissed", "snoozed")

_SECTIONS = ("consent", "no_see", "feedback", "repeat", "frequency_caps", "min_gap", "holdout")
_TOP_KEYS = frozenset({"name", "extra_channels", "markets", *_SECTIONS})
#: what a ``[markets.XX]`` section may set; each replaces the global section for that market
_MARKET_KEYS = (
    "allowed_channels",
    "consent",
    "no_see",
    "feedback",
    "repeat",
    "frequency_caps",
    "min_gap",
)
#: :meth:`ContactPolicy.market_of` for an HCP whose market has no section of its own
GLOBAL_MARKET = "global"
_DAY = timedelta(days=1)

Bool2D = npt.NDArray[np.bool_]


class RulesError(ValidationError):
    """A rules file is invalid; the message names the file, the line and the rule.

    Attributes
    ----------
    key : str or None
        Dotted path of the offending key (``markets.DE.min_gap.hours``), when known.
    line : int or None
        Its 1-based line in the TOML text, when known.
    """

    def __init__(self, message: str, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


class ContactError(ValidationError):
    """The contact policy was called with inconsistent inputs."""


# --------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Feedback:
    """A rep's feedback on a suggestion that changes what the HCP is offered next.

    Attributes
    ----------
    hcp_id : str
    content_id : str
        Content of the suggestion the rep dismissed or snoozed.
    type : {"dismissed", "snoozed"}
    ts : datetime
        When the feedback was given (aware, stored as UTC).
    event_id : str
        The decision the suggestion came from ("" when unknown).
    reason_code : str or None
        Why the rep dismissed it (free code from the rep app).
    until : datetime or None
        End of a snooze; ``None`` means ``feedback.snooze_default_days`` after ``ts``.
    """

    hcp_id: str
    content_id: str
    type: str
    ts: datetime
    event_id: str = ""
    reason_code: str | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        where = f"Feedback for '{self.event_id or self.content_id}'"
        if not self.hcp_id:
            raise ValidationError(f"{where}: field 'hcp_id': must not be empty")
        if not self.content_id:
            raise ValidationError(f"{where}: field 'content_id': must not be empty")
        if self.type not in FEEDBACK_TYPES:
            raise ValidationError(
                f"{where}: field 'type': {self.type!r} is not one of {', '.join(FEEDBACK_TYPES)}"
            )
        object.__setattr__(self, "ts", ensure_utc(self.ts, where, "ts"))
        if self.until is not None:
            if self.type != "snoozed":
                raise ValidationError(f"{where}: field 'until': only a snooze has an end date")
            object.__setattr__(self, "until", ensure_utc(self.until, where, "until"))


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max`` touches on ``channel`` in any ``days``-day window."""

    channel: str
    max: int
    days: float

    @property
    def rule(self) -> str:
        """The rule name suppressions carry, e.g. ``frequency_cap:email:2/7d``."""
        return f"{RULE_FREQUENCY_CAP}:{self.channel}:{self.max}/{_fmt_num(self.days)}d"


@dataclass(frozen=True, slots=True)
class Filtered:
    """What :meth:`ContactPolicy.filter` returns.

    Attributes
    ----------
    allowed : tuple of Action
        The actions left, in input order.
    suppressed : tuple of Suppression
        The removed ones, in input order, each with the first rule that fired.
    """

    allowed: tuple[Action, ...]
    suppressed: tuple[Suppression, ...]

    def counts_by_rule(self) -> dict[str, int]:
        """How many actions each rule removed (for metrics)."""
        out: dict[str, int] = {}
        for s in self.suppressed:
            out[s.rule] = out.get(s.rule, 0) + 1
        return out


@dataclass(frozen=True)
class BatchMask:
    """What :meth:`ContactPolicy.mask_batch` returns.

    Attributes
    ----------
    allowed : ndarray of bool, shape (n_decisions, n_actions)
    rule : ndarray of int16, shape (n_decisions, n_actions)
        Index into ``rule_names`` of the first rule that removed the action,
        ``-1`` where the action is allowed.
    rule_names : tuple of str
        The policy's active rules in checking order.
    """

    allowed: Bool2D
    rule: npt.NDArray[np.int16]
    rule_names: tuple[str, ...]


# ---------------------------------------------------------------- validation
def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*(" + _KEY_PART + r"(?:\s*\.\s*" + _KEY_PART + r")*)\s*\]")
_KEY_RE = re.compile(r"^\s*(" + _KEY_PART + r"(?:\s*\.\s*" + _KEY_PART + r")*)\s*=(.*)$")
_PART_RE = re.compile(_KEY_PART)

KeyPath = tuple[str | int, ...]


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART_RE.findall(dotted))


def _bracket_depth(value: str) -> int:
    """Open ``[``/``{`` minus closed ones in a TOML value, outside strings and comments."""
    depth, quote = 0, ""
    for ch in value:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def key_lines(text: str) -> dict[KeyPath, int]:
    """The 1-based line of every table header and key of a TOML text.

    Keys of an array of tables carry their 0-based position, e.g.
    ``("frequency_caps", 1, "max")``, also below a sub-table of one
    (``("journeys", 0, "steps", 1, "channels")``); the text is assumed to be valid TOML (it is
    only read after ``tomllib`` parsed it), so this is a line scanner, not a parser.

    >>> key_lines("a = 1\\n[b]\\nc = 2\\n[[d]]\\ne = 3\\n[[d]]\\ne = 4\\n")[("d", 1, "e")]
    7
    """
    out: dict[KeyPath, int] = {}
    table: KeyPath = ()
    arrays: dict[KeyPath, int] = {}
    depth = 0
    multiline = ""
    for n, line in enumerate(text.splitlines(), start=1):
        if multiline:
            if multiline in line:
                multiline = ""
            continue
        if depth > 0:
            depth += _bracket_depth(line)
            continue
        m = _HEADER_RE.match(line)
        if m and not _KEY_RE.match(line):
            # a header below an array of tables (``[journeys.entry]`` after
            # ``[[journeys]]``) belongs to that array's latest element
            parts: KeyPath = ()
            for p in _key_parts(m.group(2))[:-1]:
                parts = (*parts, p)
                if parts in arrays:
                    parts = (*parts, arrays[parts])
            parts = (*parts, _key_parts(m.group(2))[-1])
            if m.group(1) == "[[":
                idx = arrays.get(parts, -1) + 1
                arrays[parts] = idx
                table = (*parts, idx)
            else:
                table = parts
            out.setdefault(table, n)
            continue
        m = _KEY_RE.match(line)
        if m:
            out.setdefault((*table, *_key_parts(m.group(1))), n)
            value = m.group(2)
            for q in ('"""', "'''"):
                if value.count(q) == 1:
                    multiline = q
            if not multiline:
                depth = max(_bracket_depth(value), 0)
    return out


class _Checker:
    """Builds :class:`RulesError` messages naming the file, the line, the rule and the key.

    ``prefix`` is the key path of the table being checked (``()`` for the global
    rules, ``("markets", "DE")`` for a market's section).
    """

    def __init__(
        self, source: str, lines: Mapping[KeyPath, int] | None, prefix: KeyPath = ()
    ) -> None:
        self.source = source
        self.lines = lines or {}
        self.prefix = prefix

    def sub(self, *prefix: str | int) -> _Checker:
        return _Checker(self.source, self.lines, (*self.prefix, *prefix))

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its first key below, else of its nearest parent."""
        if path in self.lines:
            return self.lines[path]
        below = [n for k, n in self.lines.items() if k[: len(path)] == path]
        if below:
            return min(below)
        for cut in range(len(path) - 1, 0, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return None

    def err(self, rule: str, problem: str, *path: str | int) -> RulesError:
        """``rule`` is the label shown; ``path`` the key path below the prefix."""
        label = ".".join([*(str(p) for p in self.prefix), rule]) if self.prefix else rule
        full = (*self.prefix, *(path or (rule,)))
        line = self.line_of(full)
        where = self.source if line is None else f"{self.source}, line {line}"
        key = ".".join(str(p) for p in full)
        return RulesError(f"{where}: rule '{label}': {problem}", key=key, line=line)

    def table(self, data: Mapping[str, Any], rule: str, keys: set[str]) -> Mapping[str, Any]:
        value = data.get(rule, {})
        if not isinstance(value, Mapping):
            raise self.err(rule, "must be a table")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.err(
                rule,
                f"unknown key {unknown[0]!r} (expected: {', '.join(sorted(keys))})",
                rule,
                unknown[0],
            )
        return value

    def channels(
        self,
        value: Any,
        rule: str,
        key: str,
        known: tuple[str, ...],
        path: KeyPath | None = None,
    ) -> frozenset[str]:
        at = path if path is not None else (rule, key)
        if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
            raise self.err(rule, f"'{key}' must be a list of channel names", *at)
        for c in value:
            if c not in known:
                raise self.err(
                    rule, f"unknown channel {c!r} in '{key}' (known: {', '.join(known)})", *at
                )
        return frozenset(value)

    def number(
        self,
        value: Any,
        rule: str,
        key: str,
        *,
        positive: bool,
        integer: bool = False,
        path: KeyPath | None = None,
    ) -> float:
        at = path if path is not None else (rule, key)
        ok = (
            isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)
        )
        kind = "an integer" if integer else "a number"
        if not ok:
            raise self.err(rule, f"'{key}' must be {kind}, got {value!r}", *at)
        if positive and value <= 0:
            raise self.err(rule, f"'{key}' must be positive, got {value!r}", *at)
        if value < 0:
            raise self.err(rule, f"'{key}' must not be negative, got {value!r}", *at)
        return float(value)


def _sections(c: _Checker, data: Mapping[str, Any], channels: tuple[str, ...]) -> dict[str, Any]:
    """Validate the sections a market may override; keyword arguments of ContactPolicy."""
    consent = c.table(data, "consent", {"exempt"})
    consent_exempt = c.channels(consent.get("exempt", []), "consent", "exempt", channels)

    no_see = c.table(data, "no_see", {"channels"})
    no_see_channels = c.channels(
        no_see.get("channels", ["rep_visit"]), "no_see", "channels", channels
    )

    fb = c.table(data, "feedback", {"dismissed_days", "snooze_default_days"})
    dismissed_days = c.number(
        fb.get("dismissed_days", 0), "feedback", "dismissed_days", positive=False
    )
    snooze_days = c.number(
        fb.get("snooze_default_days", 14), "feedback", "snooze_default_days", positive=True
    )

    rep = c.table(data, "repeat", {"days"})
    repeat_days = c.number(rep.get("days", 0), "repeat", "days", positive=False)

    raw_caps = data.get("frequency_caps", [])
    if not isinstance(raw_caps, list):
        raise c.err("frequency_caps", "must be a list of [[frequency_caps]] tables")
    caps: list[FrequencyCap] = []
    for i, raw in enumerate(raw_caps):
        where = f"frequency_caps[{i + 1}]"
        at: KeyPath = ("frequency_caps", i)
        if not isinstance(raw, Mapping):
            raise c.err(where, "must be a table {channel, max, days}", *at)
        if isinstance(raw.get("channel"), str):
            where = f"{where} ({raw['channel']})"
        bad = sorted(set(raw) - {"channel", "max", "days"})
        if bad:
            raise c.err(
                where, f"unknown key {bad[0]!r} (expected: channel, days, max)", *at, bad[0]
            )
        for key in ("channel", "max", "days"):
            if key not in raw:
                raise c.err(where, f"missing key '{key}'", *at)
        ch = raw["channel"]
        if not isinstance(ch, str) or ch not in channels:
            raise c.err(
                where, f"unknown channel {ch!r} (known: {', '.join(channels)})", *at, "channel"
            )
        cap_max = int(
            c.number(raw["max"], where, "max", positive=False, integer=True, path=(*at, "max"))
        )
        cap_days = c.number(raw["days"], where, "days", positive=True, path=(*at, "days"))
        cap = FrequencyCap(ch, cap_max, cap_days)
        if any(o.channel == ch and o.days == cap_days for o in caps):
            raise c.err(
                where, f"a cap over {_fmt_num(cap_days)} days on {ch!r} is set twice", *at, "days"
            )
        caps.append(cap)

    gap = c.table(data, "min_gap", {"hours", "days"})
    if "hours" in gap and "days" in gap:
        raise c.err("min_gap", "give either 'hours' or 'days', not both", "min_gap", "days")
    if "hours" in gap:
        min_gap_days = c.number(gap["hours"], "min_gap", "hours", positive=False) / 24.0
    else:
        min_gap_days = c.number(gap.get("days", 0), "min_gap", "days", positive=False)
    return {
        "consent_exempt": consent_exempt,
        "no_see_channels": no_see_channels,
        "dismissed_days": dismissed_days,
        "snooze_default_days": snooze_days,
        "repeat_days": repeat_days,
        "frequency_caps": tuple(caps),
        "min_gap_days": min_gap_days,
    }


def _toml_value(v: Any) -> str:
    """One TOML value (strings, numbers, booleans, lists of them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return _fmt_num(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML value for {type(v).__name__}")


def _toml_sections(lines: list[str], prefix: tuple[str, ...], d: Mapping[str, Any]) -> None:
    """Append the rule sections of a normalized rules dict as TOML tables."""
    for key in _SECTIONS:
        if key not in d:
            continue
        path = ".".join((*prefix, key))
        if key == "frequency_caps":
            for cap in d[key]:
                lines += ["", f"[[{path}]]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in cap.items()]
        else:
            lines += ["", f"[{path}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in d[key].items()]


_APPROVED_CACHE: dict[tuple[int, str, str, date], frozenset[str]] = {}
_APPROVED_CACHE_MAX = 4096


def _approved_actions(catalog: Catalog, market: str, day: date) -> frozenset[str]:
    """Ids of the catalog's actions approved in ``market`` on ``day`` (memoized per
    catalog version, market and day; a catalog never changes under its version)."""
    key = (id(catalog), catalog.version, market, day)
    found = _APPROVED_CACHE.get(key)
    if found is None:
        if len(_APPROVED_CACHE) >= _APPROVED_CACHE_MAX:
            _APPROVED_CACHE.clear()
        found = frozenset(
            a.action_id
            for a in catalog.actions
            if catalog.by_id[a.content_id].is_approved(market, day)
        )
        _APPROVED_CACHE[key] = found
    return found


# -------------------------------------------------------------------- policy
@dataclass(frozen=True)
class ContactPolicy:
    """Validated contact rules; build with :meth:`load`, :meth:`default` or :meth:`from_dict`.

    Attributes
    ----------
    name : str
    channels : tuple of str
        Channels rules may name (the standard ones plus ``extra_channels``).
    consent_exempt : frozenset of str
        Channels offered without recorded consent.
    no_see_channels : frozenset of str
        Channels never offered to a no-see HCP.
    dismissed_days : float
        Days a dismissed content stays suppressed (0: rule off).
    snooze_default_days : float
        Length of a snooze given without a date.
    repeat_days : float
        Days before the same content may reach the HCP again (0: rule off).
    frequency_caps : tuple of FrequencyCap
    min_gap_days : float
        Minimum time between two touches, in days (0: rule off).
    holdout_share : float
        Share of HCPs in the global holdout, in [0, 1).
    holdout_salt : str
    allowed_channels : frozenset of str or None
        Channels that may be used at all (``None``: every channel); set by a
        market section, rule ``market_channel``.
    market : str
        The market section these rules are (:data:`GLOBAL_MARKET` for the global rules).
    markets : mapping of str to ContactPolicy
        The effective rules of each market that has a ``[markets.XX]`` section
        (empty in those rules themselves); :meth:`filter` and :meth:`mask_batch`
        apply them to that market's HCPs.
    source : str
        Where the rules came from (for messages; not part of the version).
    version : str
        First 16 hex digits of the SHA-256 of the normalized rules (market sections
        included; a market's rules carry the version of the whole set).
    """

    name: str
    channels: tuple[str, ...]
    consent_exempt: frozenset[str]
    no_see_channels: frozenset[str]
    dismissed_days: float
    snooze_default_days: float
    repeat_days: float
    frequency_caps: tuple[FrequencyCap, ...]
    min_gap_days: float
    holdout_share: float
    holdout_salt: str
    allowed_channels: frozenset[str] | None = None
    market: str = GLOBAL_MARKET
    markets: Mapping[str, ContactPolicy] = field(default_factory=dict, hash=False)
    source: str = field(default="<memory>", compare=False)
    version: str = field(default="", compare=False)

    # ------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path, markets: Sequence[str] | None = None) -> ContactPolicy:
        """Load and validate a rules file (``.toml``, or ``.yaml``/``.yml``).

        Parameters
        ----------
        path : str or Path
        markets : sequence of str, optional
            Markets a ``[markets.XX]`` section may name (default: the packaged HCP
            vocabulary, ``nba/data/hcp_features.toml``).

        Raises
        ------
        RulesError
            Naming the file, the line (TOML) and the rule that is wrong.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(f"{p}: cannot read rules file: {exc.strerror or exc}") from exc
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RulesError(f"{p}: not valid YAML: {exc}") from exc
            if data is None:
                data = {}
            if not isinstance(data, Mapping):
                raise RulesError(f"{p}: rules file must hold a table of rules")
            return cls.from_dict(data, source=str(p), markets=markets)
        return cls.loads(text, source=str(p), markets=markets)

    @classmethod
    def loads(
        cls, text: str, source: str = "<text>", markets: Sequence[str] | None = None
    ) -> ContactPolicy:
        """Validate rules given as TOML text; errors name ``source``, the line and the key.

        Raises
        ------
        RulesError
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))
            line = int(found.group(1)) if found else max(len(text.splitlines()), 1)
            raise RulesError(f"{source}, line {line}: not valid TOML: {exc}", line=line) from exc
        return cls.from_dict(data, source=source, markets=markets, lines=key_lines(text))

    @classmethod
    def default(cls) -> ContactPolicy:
        """The rules shipped with the package (``nba/data/rules.toml``)."""
        return cls.load(Path(__file__).resolve().parent / "data" / DEFAULT_RULES_FILE)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        source: str = "<memory>",
        markets: Sequence[str] | None = None,
        lines: Mapping[KeyPath, int] | None = None,
    ) -> ContactPolicy:
        """Validate parsed rules. Absent sections: consent/no-see/approval stay on with
        their defaults (no exemptions, no-see blocks ``rep_visit``); repeat, caps and
        minimum gap are off; no holdout.

        A ``[markets.XX]`` section (``XX`` from ``markets``, default the packaged HCP
        vocabulary) may set ``allowed_channels`` and any of ``consent``, ``no_see``,
        ``feedback``, ``repeat``, ``frequency_caps`` and ``min_gap``; each section it
        sets replaces the global one for HCPs of that market, the others are the
        global ones. ``lines`` (from :func:`key_lines`) puts line numbers in errors.
        """
        c = _Checker(source, lines)
        if not isinstance(data, Mapping):
            raise RulesError(f"{source}: rules file must hold a table of rules")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise c.err(
                unknown[0], f"unknown rule (expected one of: {', '.join((*_SECTIONS, 'markets'))})"
            )
        name = data.get("name", "rules")
        if not isinstance(name, str) or not name:
            raise c.err("name", "must be a non-empty string")
        extra = data.get("extra_channels", [])
        if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
            raise c.err("extra_channels", "must be a list of channel names")
        channels = tuple(dict.fromkeys([*CHANNELS, *extra]))

        ho = c.table(data, "holdout", {"share", "salt"})
        share = c.number(ho.get("share", 0.0), "holdout", "share", positive=False)
        if not share < 1.0:
            raise c.err("holdout", f"'share' must be in [0, 1), got {share!r}", "holdout", "share")
        salt = ho.get("salt", "nba-holdout")
        if not isinstance(salt, str) or not salt:
            raise c.err("holdout", "'salt' must be a non-empty string", "holdout", "salt")
        common: dict[str, Any] = {
            "name": name,
            "channels": channels,
            "holdout_share": share,
            "holdout_salt": salt,
        }

        pol = cls(**common, **_sections(c, data, channels), source=source)

        raw_markets = data.get("markets", {})
        if not isinstance(raw_markets, Mapping):
            raise c.err("markets", "must be a table of [markets.XX] sections")
        if raw_markets:
            if markets is None:
                from nba.hcp_features import HCPFeatures

                markets = HCPFeatures.default().markets
            by_market: dict[str, ContactPolicy] = {}
            for m, section in raw_markets.items():
                if m not in markets:
                    raise c.err(
                        f"markets.{m}",
                        f"unknown market {m!r} (known: {', '.join(markets)})",
                        "markets",
                        m,
                    )
                mc = c.sub("markets", m)
                if not isinstance(section, Mapping):
                    raise c.err(f"markets.{m}", "must be a table", "markets", m)
                bad = sorted(set(section) - set(_MARKET_KEYS))
                if bad:
                    raise c.err(
                        f"markets.{m}",
                        f"unknown key {bad[0]!r} (a market may set: {', '.join(_MARKET_KEYS)})",
                        "markets",
                        m,
                        bad[0],
                    )
                allowed = None
                if "allowed_channels" in section:
                    allowed = mc.channels(
                        section["allowed_channels"],
                        "allowed_channels",
                        "allowed_channels",
                        channels,
                        path=("allowed_channels",),
                    )
                    if not allowed:
                        raise mc.err("allowed_channels", "must name at least one channel")
                merged = {
                    **{k: v for k, v in data.items() if k in _SECTIONS},
                    **{k: v for k, v in section.items() if k != "allowed_channels"},
                }
                by_market[m] = cls(
                    **common,
                    **_sections(mc, merged, channels),
                    allowed_channels=allowed,
                    market=m,
                    source=source,
                )
            object.__setattr__(pol, "markets", dict(sorted(by_market.items())))

        blob = json.dumps(pol.to_dict(), sort_keys=True, separators=(",", ":"))
        version = hashlib.sha256(blob.encode()).hexdigest()[:16]
        object.__setattr__(pol, "version", version)
        for sub in pol.markets.values():
            object.__setattr__(sub, "version", version)
        return pol

    def _section_dict(self) -> dict[str, Any]:
        return {
            "consent": {"exempt": sorted(self.consent_exempt)},
            "no_see": {"channels": sorted(self.no_see_channels)},
            "feedback": {
                "dismissed_days": self.dismissed_days,
                "snooze_default_days": self.snooze_default_days,
            },
            "repeat": {"days": self.repeat_days},
            "frequency_caps": [
                {"channel": c.channel, "max": c.max, "days": c.days} for c in self.frequency_caps
            ],
            "min_gap": {"days": self.min_gap_days},
        }

    def to_dict(self) -> dict[str, Any]:
        """The normalized rules (what :attr:`version` hashes); ``from_dict`` reads it back.

        Each market section is written out whole (every section as it applies there)."""
        extra = [c for c in self.channels if c not in CHANNELS]
        out: dict[str, Any] = {
            "name": self.name,
            "extra_channels": extra,
            **self._section_dict(),
            "holdout": {"share": self.holdout_share, "salt": self.holdout_salt},
        }
        if self.markets:
            out["markets"] = {}
            for m, sub in self.markets.items():
                sec = sub._section_dict()
                if sub.allowed_channels is not None:
                    sec["allowed_channels"] = sorted(sub.allowed_channels)
                out["markets"][m] = sec
        return out

    def to_toml(self) -> str:
        """The normalized rules as TOML text that :meth:`loads` reads back to the same
        version (for rules that came from YAML or from :meth:`from_dict`).

        >>> pol = ContactPolicy.default()
        >>> ContactPolicy.loads(pol.to_toml()).version == pol.version
        True
        """
        d = self.to_dict()
        lines = [f"name = {_toml_value(d['name'])}"]
        lines.append(f"extra_channels = {_toml_value(d['extra_channels'])}")
        if not d["frequency_caps"]:
            lines.append("frequency_caps = []")
        _toml_sections(lines, (), {k: v for k, v in d.items() if k in _SECTIONS})
        for m, sec in d.get("markets", {}).items():
            lines += ["", f"[markets.{m}]"]
            if "allowed_channels" in sec:
                lines.append(f"allowed_channels = {_toml_value(sec['allowed_channels'])}")
            if not sec["frequency_caps"]:
                lines.append("frequency_caps = []")  # no caps here, not the global ones
            _toml_sections(lines, ("markets", m), sec)
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ queries
    def for_market(self, market: str) -> ContactPolicy:
        """The rules that apply to HCPs of ``market`` (its section, else the global rules)."""
        return self.markets.get(market, self)

    def market_of(self, market: str) -> str:
        """Which rule set applies to ``market``: the market itself, or :data:`GLOBAL_MARKET`."""
        return market if market in self.markets else GLOBAL_MARKET

    @property
    def own_rule_names(self) -> tuple[str, ...]:
        """This rule set's own active rules in checking order (no other market's)."""
        names = [RULE_APPROVAL]
        if self.allowed_channels is not None:
            names.append(RULE_MARKET_CHANNEL)
        names += [RULE_CONSENT, RULE_NO_SEE]
        if self.dismissed_days > 0:
            names.append(RULE_DISMISSED)
        names.append(RULE_SNOOZED)
        if self.repeat_days > 0:
            names.append(RULE_REPEAT)
        names.extend(c.rule for c in self.frequency_caps)
        if self.min_gap_days > 0:
            names.append(RULE_MIN_GAP)
        return tuple(names)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Active rules in checking order (caps expanded, switched-off rules left out);
        with market sections, every rule any market uses, in :data:`RULE_ORDER`."""
        own = self.own_rule_names
        if not self.markets:
            return own
        every = [own, *(sub.own_rule_names for sub in self.markets.values())]
        names: list[str] = []
        for group in RULE_ORDER:
            for seq in every:
                for r in seq:
                    if r.split(":")[0] == group and r not in names:
                        names.append(r)
        return tuple(names)

    @property
    def cap_windows(self) -> tuple[float, ...]:
        """Distinct cap window lengths in days (of every market), ascending: the last
        axis of ``touch_counts`` in :meth:`mask_batch`."""
        caps = [c for p in (self, *self.markets.values()) for c in p.frequency_caps]
        return tuple(sorted({c.days for c in caps}))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for ``GET /v1/rules``: version, order and each rule,
        and per market section its own order and rules."""
        out = self._describe_own()
        out["markets"] = {
            m: {
                "allowed_channels": None
                if sub.allowed_channels is None
                else sorted(sub.allowed_channels),
                "order": list(sub.own_rule_names),
                "rules": sub._describe_own()["rules"],
            }
            for m, sub in self.markets.items()
        }
        return out

    def _describe_own(self) -> dict[str, Any]:
        rules: list[dict[str, Any]] = [
            {
                "rule": RULE_APPROVAL,
                "description": "content must be approved in the HCP's market on the day",
            },
        ]
        if self.allowed_channels is not None:
            rules.append(
                {
                    "rule": RULE_MARKET_CHANNEL,
                    "description": "only these channels may be used in the market",
                    "channels": sorted(self.allowed_channels),
                }
            )
        rules += [
            {
                "rule": RULE_CONSENT,
                "description": "the HCP must have consented to the channel",
                "exempt_channels": sorted(self.consent_exempt),
            },
            {
                "rule": RULE_NO_SEE,
                "description": "no-see HCPs are not offered these channels",
                "channels": sorted(self.no_see_channels),
            },
        ]
        if self.dismissed_days > 0:
            rules.append(
                {
                    "rule": RULE_DISMISSED,
                    "description": "content a rep dismissed is not offered again for N days",
                    "days": self.dismissed_days,
                }
            )
        rules.append(
            {
                "rule": RULE_SNOOZED,
                "description": "snoozed content is not offered before its snooze date",
                "default_days": self.snooze_default_days,
            }
        )
        if self.repeat_days > 0:
            rules.append(
                {
                    "rule": RULE_REPEAT,
                    "description": "the same content is not repeated within N days",
                    "days": self.repeat_days,
                }
            )
        for cap in self.frequency_caps:
            rules.append(
                {
                    "rule": cap.rule,
                    "description": f"at most {cap.max} {cap.channel} touches "
                    f"in any {_fmt_num(cap.days)} days",
                    "channel": cap.channel,
                    "max": cap.max,
                    "days": cap.days,
                }
            )
        if self.min_gap_days > 0:
            rules.append(
                {
                    "rule": RULE_MIN_GAP,
                    "description": "minimum time between two touches on any channel",
                    "hours": self.min_gap_days * 24.0,
                }
            )
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "order": list(self.own_rule_names),
            "rules": rules,
            "holdout": {"share": self.holdout_share},
        }

    # ------------------------------------------------------------ holdout
    def holdout_value(self, hcp_id: str) -> float:
        """Where ``hcp_id`` falls in [0, 1) under this policy's salt (stable everywhere)."""
        digest = hashlib.sha256(f"{self.holdout_salt}\x1f{hcp_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def is_holdout(self, hcp_id: str) -> bool:
        """True when the HCP belongs to the global holdout and must get the baseline."""
        return self.holdout_share > 0.0 and self.holdout_value(hcp_id) < self.holdout_share

    def holdout_mask(self, hcp_ids: Sequence[str]) -> npt.NDArray[np.bool_]:
        """:meth:`is_holdout` for many HCPs, shape (n_hcps,)."""
        return np.fromiter((self.is_holdout(h) for h in hcp_ids), dtype=bool, count=len(hcp_ids))

    # ------------------------------------------------------------- filter
    def filter(
        self,
        hcp: HCPProfile,
        actions: Sequence[Action],
        now: datetime,
        touches: Sequence[Touch],
        feedback: Sequence[Feedback],
        catalog: Catalog,
    ) -> Filtered:
        """Split ``actions`` into the allowed ones and the suppressed ones.

        Parameters
        ----------
        hcp : HCPProfile
        actions : sequence of Action, length n_actions
            Candidate actions, any order; the order is kept in both outputs.
        now : datetime
            Decision time (aware).
        touches : sequence of Touch
            Recent touches of this HCP (ours and external); at least the longest
            window any rule looks at. Touches after ``now`` are ignored.
        feedback : sequence of Feedback
            Recent dismissals and snoozes of this HCP.
        catalog : Catalog
            For approvals (market and dates).

        Returns
        -------
        Filtered

        Raises
        ------
        ContactError
            When a touch or feedback belongs to another HCP.
        """
        if self.markets and hcp.market in self.markets:
            return self.markets[hcp.market].filter(hcp, actions, now, touches, feedback, catalog)
        now = ensure_utc(now, "ContactPolicy.filter", "now")
        day = now.date()
        last_touch_age = math.inf
        content_age: dict[str, float] = {}
        channel_ages: dict[str, list[float]] = {}
        for t in touches:
            if t.hcp_id != hcp.hcp_id:
                raise ContactError(
                    f"ContactPolicy.filter: a touch of another HCP was passed "
                    f"(touch at {t.ts.isoformat()} on {t.channel})"
                )
            if t.ts > now:
                continue
            age = (now - t.ts) / _DAY
            last_touch_age = min(last_touch_age, age)
            content_age[t.content_id] = min(content_age.get(t.content_id, math.inf), age)
            channel_ages.setdefault(t.channel, []).append(age)
        dismissed_age: dict[str, float] = {}
        snoozed: set[str] = set()
        for f in feedback:
            if f.hcp_id != hcp.hcp_id:
                raise ContactError(
                    f"ContactPolicy.filter: feedback of another HCP was passed "
                    f"(event {f.event_id!r}, content {f.content_id!r})"
                )
            if f.ts > now:
                continue
            if f.type == "dismissed":
                age = (now - f.ts) / _DAY
                dismissed_age[f.content_id] = min(dismissed_age.get(f.content_id, math.inf), age)
            elif now < self.snooze_end(f):
                snoozed.add(f.content_id)
        cap_full: dict[str, str] = {}
        for cap in self.frequency_caps:
            if cap.channel in cap_full:
                continue
            n = sum(1 for a in channel_ages.get(cap.channel, ()) if a < cap.days)
            if n >= cap.max:
                cap_full[cap.channel] = cap.rule
        gap_hit = self.min_gap_days > 0 and last_touch_age < self.min_gap_days

        # per-channel verdicts of the rules that do not depend on the content
        channel_rule: dict[str, str | None] = {}
        allowed_channels = self.allowed_channels
        for ch in {a.channel for a in actions}:
            if allowed_channels is not None and ch not in allowed_channels:
                channel_rule[ch] = RULE_MARKET_CHANNEL
            elif ch not in self.consent_exempt and ch not in hcp.consents:
                channel_rule[ch] = RULE_CONSENT
            elif hcp.no_see and ch in self.no_see_channels:
                channel_rule[ch] = RULE_NO_SEE
            else:
                channel_rule[ch] = None
        approved = _approved_actions(catalog, hcp.market, day)
        use_dismissed = self.dismissed_days > 0
        use_repeat = self.repeat_days > 0
        inf = math.inf

        allowed: list[Action] = []
        suppressed: list[Suppression] = []
        for a in actions:
            # the rules in RULE_ORDER; the first that fires is recorded
            aid = a.action_id
            rule: str | None
            if aid not in approved:
                rule = RULE_APPROVAL
            elif (rule := channel_rule[a.channel]) is not None:
                pass
            elif use_dismissed and dismissed_age.get(a.content_id, inf) < self.dismissed_days:
                rule = RULE_DISMISSED
            elif a.content_id in snoozed:
                rule = RULE_SNOOZED
            elif use_repeat and content_age.get(a.content_id, inf) < self.repeat_days:
                rule = RULE_REPEAT
            elif a.channel in cap_full:
                rule = cap_full[a.channel]
            elif gap_hit:
                rule = RULE_MIN_GAP
            if rule is None:
                allowed.append(a)
            else:
                suppressed.append(Suppression(aid, rule))
        return Filtered(tuple(allowed), tuple(suppressed))

    def snooze_end(self, feedback: Feedback) -> datetime:
        """When a snooze ends (its ``until``, or ``snooze_default_days`` after it was given)."""
        if feedback.until is not None:
            return feedback.until
        return feedback.ts + timedelta(days=self.snooze_default_days)

    # ---------------------------------------------------------- vectorized
    def mask_batch(
        self,
        *,
        action_channel: npt.ArrayLike,
        action_content: npt.ArrayLike,
        channels: Sequence[str],
        approved: npt.ArrayLike,
        consents: npt.ArrayLike,
        no_see: npt.ArrayLike,
        touch_counts: npt.ArrayLike,
        days_since_touch: npt.ArrayLike,
        days_since_content: npt.ArrayLike,
        days_since_dismissed: npt.ArrayLike | None = None,
        snoozed: npt.ArrayLike | None = None,
        markets: npt.ArrayLike | None = None,
    ) -> BatchMask:
        """The rules of :meth:`filter` for many decisions at once, without Python loops
        over decisions. Same rules, same order, same window definitions: for inputs
        computed from the same touches and feedback, ``mask_batch`` and ``filter``
        agree action by action.

        Parameters
        ----------
        action_channel : int array, shape (n_actions,)
            Index into ``channels`` of each action's channel.
        action_content : int array, shape (n_actions,)
            Index of each action's content item (into the ``n_contents`` axis below).
        channels : sequence of str, length n_channels
            Channel names for the channel indices.
        approved : bool array, shape (n_decisions, n_actions)
            Whether the content is approved in the HCP's market on the day (e.g. rows
            of :meth:`nba.catalog.Catalog.approval_matrix` picked by market).
        consents : bool array, shape (n_decisions, n_channels)
        no_see : bool array, shape (n_decisions,)
        touch_counts : int array, shape (n_decisions, n_channels, len(cap_windows))
            ``touch_counts[i, c, w]``: touches on channel ``c`` with
            ``0 <= now - ts < cap_windows[w]`` days.
        days_since_touch : float array, shape (n_decisions,)
            Age in days of the HCP's latest touch (any channel); ``inf`` if none.
        days_since_content : float array, shape (n_decisions, n_contents)
            Age in days of the latest touch with each content; ``inf`` if none.
        days_since_dismissed : float array, shape (n_decisions, n_contents), optional
            Age in days of the latest dismissal of each content; ``inf`` if none.
        snoozed : bool array, shape (n_decisions, n_contents), optional
            Whether a snooze of each content is still running.
        markets : str array, shape (n_decisions,), optional
            Each HCP's market; required when the rules have market sections (rows
            of a market with a section get its rules, the others the global ones).

        Returns
        -------
        BatchMask
        """
        a_ch = np.asarray(action_channel, dtype=np.intp)
        a_ct = np.asarray(action_content, dtype=np.intp)
        if a_ch.ndim != 1 or a_ct.shape != a_ch.shape:
            raise ContactError(
                "mask_batch: 'action_channel' and 'action_content' must be 1-d of one length, "
                f"got {a_ch.shape} and {a_ct.shape}"
            )
        n_ch = len(channels)
        appr = np.asarray(approved, dtype=bool)
        if appr.ndim != 2 or appr.shape[1] != a_ch.shape[0]:
            raise ContactError(
                f"mask_batch: 'approved' must have shape (n_decisions, {a_ch.shape[0]}), "
                f"got {appr.shape}"
            )
        n, n_act = appr.shape
        if n_act and (a_ch.min() < 0 or a_ch.max() >= n_ch):
            raise ContactError(f"mask_batch: 'action_channel' has indices outside 0..{n_ch - 1}")
        cons = self._shaped(consents, (n, n_ch), "consents", bool)
        ns = self._shaped(no_see, (n,), "no_see", bool)
        windows = self.cap_windows
        counts = self._shaped(touch_counts, (n, n_ch, len(windows)), "touch_counts", np.int64)
        last = self._shaped(days_since_touch, (n,), "days_since_touch", np.float64)
        cont = np.asarray(days_since_content, dtype=np.float64)
        if cont.ndim != 2 or cont.shape[0] != n:
            raise ContactError(
                f"mask_batch: 'days_since_content' must have shape (n_decisions={n}, "
                f"n_contents), got {cont.shape}"
            )
        n_ct = cont.shape[1]
        if n_act and (a_ct.min() < 0 or a_ct.max() >= n_ct):
            raise ContactError(f"mask_batch: 'action_content' has indices outside 0..{n_ct - 1}")
        dis = (
            None
            if days_since_dismissed is None
            else self._shaped(days_since_dismissed, (n, n_ct), "days_since_dismissed", np.float64)
        )
        snz = None if snoozed is None else self._shaped(snoozed, (n, n_ct), "snoozed", bool)

        names = self.rule_names
        rule = np.full((n, n_act), -1, dtype=np.int16)
        if not self.markets:
            self._mask_rows(
                rule,
                names,
                windows,
                a_ch,
                a_ct,
                channels,
                appr,
                cons,
                ns,
                counts,
                last,
                cont,
                dis,
                snz,
            )
            return BatchMask(allowed=rule < 0, rule=rule, rule_names=names)
        if markets is None:
            raise ContactError(
                "mask_batch: these rules have market sections; pass each HCP's 'markets'"
            )
        mk = np.asarray(markets)
        if mk.shape != (n,):
            raise ContactError(f"mask_batch: 'markets' must have shape {(n,)}, got {mk.shape}")
        rest = np.ones(n, dtype=bool)
        groups: list[tuple[ContactPolicy, npt.NDArray[np.bool_]]] = []
        for m, sub in self.markets.items():
            rows = mk == m
            rest &= ~rows
            groups.append((sub, rows))
        groups.append((self, rest))
        for pol, rows in groups:
            if not rows.any():
                continue
            sel = np.flatnonzero(rows)
            part = np.full((sel.shape[0], n_act), -1, dtype=np.int16)
            pol._mask_rows(
                part,
                names,
                windows,
                a_ch,
                a_ct,
                channels,
                appr[sel],
                cons[sel],
                ns[sel],
                counts[sel],
                last[sel],
                cont[sel],
                None if dis is None else dis[sel],
                None if snz is None else snz[sel],
            )
            rule[sel] = part
        return BatchMask(allowed=rule < 0, rule=rule, rule_names=names)

    def _mask_rows(
        self,
        rule: npt.NDArray[np.int16],
        names: tuple[str, ...],
        windows: tuple[float, ...],
        a_ch: npt.NDArray[np.intp],
        a_ct: npt.NDArray[np.intp],
        channels: Sequence[str],
        appr: Bool2D,
        cons: Bool2D,
        ns: npt.NDArray[np.bool_],
        counts: npt.NDArray[np.int64],
        last: npt.NDArray[np.float64],
        cont: npt.NDArray[np.float64],
        dis: npt.NDArray[np.float64] | None,
        snz: Bool2D | None,
    ) -> None:
        """Fill ``rule`` (shape (n, n_actions), -1 = allowed) with this policy's own
        rules, as indices into ``names``; ``windows`` is the last axis of ``counts``."""
        n, n_act = rule.shape
        code = {r: i for i, r in enumerate(names)}

        def apply(name: str, fires: Bool2D) -> None:
            rule[(rule < 0) & fires] = code[name]

        apply(RULE_APPROVAL, ~appr)
        if self.allowed_channels is not None:
            ok = np.array([c in self.allowed_channels for c in channels], dtype=bool)
            apply(RULE_MARKET_CHANNEL, np.broadcast_to(~ok[a_ch][None, :], (n, n_act)))
        exempt = np.array([c in self.consent_exempt for c in channels], dtype=bool)
        apply(RULE_CONSENT, ~(cons[:, a_ch] | exempt[a_ch][None, :]))
        blocked = np.array([c in self.no_see_channels for c in channels], dtype=bool)
        apply(RULE_NO_SEE, ns[:, None] & blocked[a_ch][None, :])
        if self.dismissed_days > 0 and dis is not None:
            apply(RULE_DISMISSED, dis[:, a_ct] < self.dismissed_days)
        if snz is not None:
            apply(RULE_SNOOZED, snz[:, a_ct])
        if self.repeat_days > 0:
            apply(RULE_REPEAT, cont[:, a_ct] < self.repeat_days)
        ch_pos = {c: i for i, c in enumerate(channels)}
        for cap in self.frequency_caps:
            c = ch_pos.get(cap.channel)
            if c is None:
                continue
            full = counts[:, c, windows.index(cap.days)] >= cap.max  # (n,)
            apply(cap.rule, full[:, None] & (a_ch == c)[None, :])
        if self.min_gap_days > 0:
            apply(RULE_MIN_GAP, np.broadcast_to((last < self.min_gap_days)[:, None], (n, n_act)))

    @staticmethod
    def _shaped(value: npt.ArrayLike, shape: tuple[int, ...], name: str, dtype: Any) -> Any:
        arr = np.asarray(value, dtype=dtype)
        if arr.shape != shape:
            raise ContactError(f"mask_batch: '{name}' must have shape {shape}, got {arr.shape}")
        return arr
