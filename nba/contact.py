"""The contact policy: hard business rules applied before the bandit.

The rules remove actions a policy must never see (exploration happens only
among what is left), and every removed action carries the name of the first
rule that removed it. Serving applies them one decision at a time with
:meth:`ContactPolicy.filter`; the simulator applies the very same rules to
whole days of decisions with :meth:`ContactPolicy.mask_batch`.

Rules are read from a TOML (or YAML) file, validated once at load; an error
names the file and the rule. The default file is ``nba/data/rules.toml``.

Rule order
----------
An action is checked against the rules in this order and the first one that
fires is recorded (:data:`RULE_ORDER`):

1. ``approval`` -- the content is unknown to the catalog, may not travel on the
   action's channel, or is not approved in the HCP's market on the decision's
   day (always on).
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
_TOP_KEYS = frozenset({"name", "extra_channels", *_SECTIONS})
_DAY = timedelta(days=1)

Bool2D = npt.NDArray[np.bool_]


class RulesError(ValidationError):
    """A rules file is invalid; the message names the file and the rule."""


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


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, rule: str, problem: str) -> RulesError:
        return RulesError(f"{self.source}: rule '{rule}': {problem}")

    def table(self, data: Mapping[str, Any], rule: str, keys: set[str]) -> Mapping[str, Any]:
        value = data.get(rule, {})
        if not isinstance(value, Mapping):
            raise self.err(rule, "must be a table")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.err(
                rule, f"unknown key {unknown[0]!r} (expected: {', '.join(sorted(keys))})"
            )
        return value

    def channels(self, value: Any, rule: str, key: str, known: tuple[str, ...]) -> frozenset[str]:
        if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
            raise self.err(rule, f"'{key}' must be a list of channel names")
        for c in value:
            if c not in known:
                raise self.err(
                    rule, f"unknown channel {c!r} in '{key}' (known: {', '.join(known)})"
                )
        return frozenset(value)

    def number(
        self, value: Any, rule: str, key: str, *, positive: bool, integer: bool = False
    ) -> float:
        ok = (
            isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)
        )
        kind = "an integer" if integer else "a number"
        if not ok:
            raise self.err(rule, f"'{key}' must be {kind}, got {value!r}")
        if positive and value <= 0:
            raise self.err(rule, f"'{key}' must be positive, got {value!r}")
        if value < 0:
            raise self.err(rule, f"'{key}' must not be negative, got {value!r}")
        return float(value)


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
    source : str
        Where the rules came from (for messages; not part of the version).
    version : str
        First 16 hex digits of the SHA-256 of the normalized rules.
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
    source: str = field(default="<memory>", compare=False)
    version: str = field(default="", compare=False)

    # ------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> ContactPolicy:
        """Load and validate a rules file (``.toml``, or ``.yaml``/``.yml``).

        Raises
        ------
        RulesError
            Naming the file and the rule that is wrong.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(f"{p}: cannot read rules file: {exc.strerror or exc}") from exc
        data: Any
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RulesError(f"{p}: not valid YAML: {exc}") from exc
            if data is None:
                data = {}
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise RulesError(f"{p}: not valid TOML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise RulesError(f"{p}: rules file must hold a table of rules")
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> ContactPolicy:
        """The rules shipped with the package (``nba/data/rules.toml``)."""
        return cls.load(Path(__file__).resolve().parent / "data" / DEFAULT_RULES_FILE)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<memory>") -> ContactPolicy:
        """Validate parsed rules. Absent sections: consent/no-see/approval stay on with
        their defaults (no exemptions, no-see blocks ``rep_visit``); repeat, caps and
        minimum gap are off; no holdout."""
        c = _Checker(source)
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise c.err(unknown[0], f"unknown rule (expected one of: {', '.join(_SECTIONS)})")
        name = data.get("name", "rules")
        if not isinstance(name, str) or not name:
            raise c.err("name", "must be a non-empty string")
        extra = data.get("extra_channels", [])
        if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
            raise c.err("extra_channels", "must be a list of channel names")
        channels = tuple(dict.fromkeys([*CHANNELS, *extra]))

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
            if not isinstance(raw, Mapping):
                raise c.err(where, "must be a table {channel, max, days}")
            if isinstance(raw.get("channel"), str):
                where = f"{where} ({raw['channel']})"
            bad = sorted(set(raw) - {"channel", "max", "days"})
            if bad:
                raise c.err(where, f"unknown key {bad[0]!r} (expected: channel, days, max)")
            for key in ("channel", "max", "days"):
                if key not in raw:
                    raise c.err(where, f"missing key '{key}'")
            ch = raw["channel"]
            if not isinstance(ch, str) or ch not in channels:
                raise c.err(where, f"unknown channel {ch!r} (known: {', '.join(channels)})")
            cap_max = int(c.number(raw["max"], where, "max", positive=False, integer=True))
            cap_days = c.number(raw["days"], where, "days", positive=True)
            cap = FrequencyCap(ch, cap_max, cap_days)
            if any(o.channel == ch and o.days == cap_days for o in caps):
                raise c.err(where, f"a cap over {_fmt_num(cap_days)} days on {ch!r} is set twice")
            caps.append(cap)

        gap = c.table(data, "min_gap", {"hours", "days"})
        if "hours" in gap and "days" in gap:
            raise c.err("min_gap", "give either 'hours' or 'days', not both")
        if "hours" in gap:
            min_gap_days = c.number(gap["hours"], "min_gap", "hours", positive=False) / 24.0
        else:
            min_gap_days = c.number(gap.get("days", 0), "min_gap", "days", positive=False)

        ho = c.table(data, "holdout", {"share", "salt"})
        share = c.number(ho.get("share", 0.0), "holdout", "share", positive=False)
        if not share < 1.0:
            raise c.err("holdout", f"'share' must be in [0, 1), got {share!r}")
        salt = ho.get("salt", "nba-holdout")
        if not isinstance(salt, str) or not salt:
            raise c.err("holdout", "'salt' must be a non-empty string")

        pol = cls(
            name=name,
            channels=channels,
            consent_exempt=consent_exempt,
            no_see_channels=no_see_channels,
            dismissed_days=dismissed_days,
            snooze_default_days=snooze_days,
            repeat_days=repeat_days,
            frequency_caps=tuple(caps),
            min_gap_days=min_gap_days,
            holdout_share=share,
            holdout_salt=salt,
            source=source,
        )
        blob = json.dumps(pol.to_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(pol, "version", hashlib.sha256(blob.encode()).hexdigest()[:16])
        return pol

    def to_dict(self) -> dict[str, Any]:
        """The normalized rules (what :attr:`version` hashes); ``from_dict`` reads it back."""
        extra = [c for c in self.channels if c not in CHANNELS]
        return {
            "name": self.name,
            "extra_channels": extra,
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
            "holdout": {"share": self.holdout_share, "salt": self.holdout_salt},
        }

    # ------------------------------------------------------------ queries
    @property
    def rule_names(self) -> tuple[str, ...]:
        """Active rules in checking order (caps expanded, switched-off rules left out)."""
        names = [RULE_APPROVAL, RULE_CONSENT, RULE_NO_SEE]
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
    def cap_windows(self) -> tuple[float, ...]:
        """Distinct cap window lengths in days, ascending: the last axis of
        ``touch_counts`` in :meth:`mask_batch`."""
        return tuple(sorted({c.days for c in self.frequency_caps}))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for ``GET /v1/rules``: version, order and each rule."""
        rules: list[dict[str, Any]] = [
            {
                "rule": RULE_APPROVAL,
                "description": "content must be approved in the HCP's market on the day",
            },
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
            "order": list(self.rule_names),
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
        for ch in {a.channel for a in actions}:
            if ch not in self.consent_exempt and ch not in hcp.consents:
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
        code = {r: i for i, r in enumerate(names)}
        rule = np.full((n, n_act), -1, dtype=np.int16)

        def apply(name: str, fires: Bool2D) -> None:
            rule[(rule < 0) & fires] = code[name]

        apply(RULE_APPROVAL, ~appr)
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
        return BatchMask(allowed=rule < 0, rule=rule, rule_names=names)

    @staticmethod
    def _shaped(value: npt.ArrayLike, shape: tuple[int, ...], name: str, dtype: Any) -> Any:
        arr = np.asarray(value, dtype=dtype)
        if arr.shape != shape:
            raise ContactError(f"mask_batch: '{name}' must have shape {shape}, got {arr.shape}")
        return arr
