"""Short reasons a rep can read, for each suggestion.

Reasons are **rules over the HCP's own record and the decision context**, not
the model's explanation of its score: the served VW policy exposes only its
probabilities (pmf), not per-feature contributions. A reason says something
true about the HCP that speaks for the suggested topic or channel; whether the
model weighed that fact is not claimed. If a policy ever reports feature
contributions, :func:`reasons_for` takes them (``contributions``) and ranks the
reasons backed by a positive contribution first.

Where the reasons come from, in the order they are cited:

1. the HCP's own record about the suggestion's **topic** (:class:`Evidence`,
   read from the event store over the 90 days before the decision): what the
   HCP pulled ("Asked about dosing in the 12 Nov detail"), how they responded
   to our actions on that topic ("Opened 3 of 4 emails on safety") and what
   they told a rep ("Told rep-0042 on 12 Nov they want dosing content");
2. the record about the suggestion's **channel**: a stated channel
   preference, engagements by channel, how long since the last contact on it;
3. everything else: the stage fit of the topic (:mod:`nba.topics`, the
   simulator's table too), no contact at all lately, digital affinity, decile.

Within a group, stronger evidence first. A reason never restates the action's
own label ("because it is efficacy content"); it always points at the HCP.
Dates are UTC days, written "12 Nov" (with the year when it is not the
decision's year).

Within one list (:func:`reasons_for_list`) no two suggestions lead with the
same reason: a later suggestion whose best reason an earlier one already leads
with leads with its next-best distinct reason instead.

>>> from datetime import date
>>> from nba.context import DecisionContext, History
>>> from nba.domain import Action, HCPProfile
>>> hcp = HCPProfile("h1", "cardiology", 8, "US", "aware", frozenset({"email", "webinar"}))
>>> h = History(engagements_30d={"webinar": 3}, topic_engagements_90d={"efficacy": 2},
...             days_since_touch={"rep_visit": 45})
>>> ctx = DecisionContext(hcp=hcp, day=date(2026, 1, 5), history=h)
>>> reasons_for(ctx, Action("VEL-EFF-09", "webinar"), "efficacy")
['Engaged with 3 webinars in the last 30 days', 'Prefers webinars', \
'Engaged with 2 efficacy pieces in the last 90 days']
>>> reasons_for(ctx, Action("VEL-EFF-01", "rep_visit"), "safety")[0]
'No visit for 45 days'
>>> from datetime import UTC, datetime
>>> from nba.domain import Touch
>>> pull = Touch("h1", datetime(2025, 12, 12, 10, tzinfo=UTC), "rep_visit", "VEL-EFF-01",
...              "ours", "detail_pull", ("safety",))
>>> ev = Evidence.build(date(2026, 1, 5), [pull], [], [], {})
>>> reasons_for(ctx, Action("VEL-SAF-01", "email"), "safety", evidence=ev)[0]
'Asked about safety in the 12 Dec 2025 detail'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from nba.context import DecisionContext
from nba.domain import Action, StatedPreference, Touch
from nba.topics import suits_stage
from serving.store import ActionOutcome

#: how a rep would say each channel, singular and plural
CHANNEL_WORDS: dict[str, tuple[str, str]] = {
    "rep_visit": ("visit", "visits"),
    "remote_call": ("remote call", "remote calls"),
    "email": ("email", "emails"),
    "webinar": ("webinar", "webinars"),
    "portal": ("portal visit", "portal visits"),
}

DIGITAL_CHANNELS = frozenset({"email", "webinar", "portal", "remote_call"})

MAX_REASONS = 3

#: how far back the record is read for reasons (days before the decision)
EVIDENCE_DAYS = 90

#: groups, cited in this order: the record about the topic, about the channel, the rest
TOPIC, CHANNEL, OTHER = 0, 1, 2

#: channel -> (outcome types that show our action reached the HCP, types that show they
#: engaged, sentence with {a} engaged of {b} reached, noun for {b}); channels with a
#: denominator. An engaged action counts as reached (an email clicked was delivered).
RATE_TEXTS: dict[str, tuple[frozenset[str], frozenset[str], str, tuple[str, str]]] = {
    "email": (
        frozenset({"delivered", "opened", "clicked"}),
        frozenset({"opened", "clicked"}),
        "Opened {a} of {b} {noun} on {t}",
        ("email", "emails"),
    ),
    "webinar": (
        frozenset({"registered", "attended"}),
        frozenset({"attended"}),
        "Attended {a} of {b} {noun} on {t}",
        ("webinar", "webinars"),
    ),
}

#: channel -> (engagement types, sentence with {n} and a singular/plural noun pair)
COUNT_TEXTS: dict[str, tuple[frozenset[str], str, tuple[str, str]]] = {
    "rep_visit": (frozenset({"meeting_held"}), "Held {n} {noun} on {t} in the last 90 days",
                  ("visit", "visits")),
    "remote_call": (frozenset({"call_held"}), "Held {n} {noun} on {t} in the last 90 days",
                    ("remote call", "remote calls")),
    "portal": (frozenset({"visited", "downloaded"}), "Opened {n} portal {noun} on {t} we sent",
               ("item", "items")),
}  # fmt: skip

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_text(d: date, today: date) -> str:
    """``12 Nov``, or ``12 Nov 2025`` when ``d`` is not in ``today``'s year.

    >>> day_text(date(2026, 11, 12), date(2026, 12, 1))
    '12 Nov'
    >>> day_text(date(2025, 12, 3), date(2026, 1, 2))
    '3 Dec 2025'
    """
    text = f"{d.day} {_MONTHS[d.month - 1]}"
    return text if d.year == today.year else f"{text} {d.year}"


def _words(channel: str) -> tuple[str, str]:
    return CHANNEL_WORDS.get(channel, (channel.replace("_", " "), channel.replace("_", " ") + "s"))


def _label(topic: str) -> str:
    return topic.replace("_", " ")


def _union(
    by_type: Mapping[str, frozenset[tuple[str, str]]], types: Iterable[str]
) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for ty in types:
        out |= by_type.get(ty, frozenset())
    return out


def _plural(n: int, pair: tuple[str, str]) -> str:
    return pair[0] if n == 1 else pair[1]


@dataclass(frozen=True, slots=True)
class Reason:
    """One candidate reason.

    Attributes
    ----------
    text : str
    strength : float
        Order within its group (higher first).
    features : tuple of str
        Context feature names that back it (for ``contributions``).
    group : int
        :data:`TOPIC`, :data:`CHANNEL` or :data:`OTHER`: cited in that order.
    """

    text: str
    strength: float
    features: tuple[str, ...]
    group: int = OTHER


@dataclass(frozen=True)
class Evidence:
    """The HCP's own record that reasons cite, summarised for one decision.

    Build it with :meth:`build` from what the store returns for the
    :data:`EVIDENCE_DAYS` before the decision.

    Attributes
    ----------
    day : date
        The decision's UTC day (dates are written relative to its year).
    pulls : mapping topic -> mapping pull kind -> (list of (UTC day, channel)), oldest first
    responses : mapping (topic, channel) -> mapping outcome type -> set of (event_id, action_id)
        Our actions on that topic and channel with an outcome of that type.
    stated_topics, stated_channels : mapping topic or channel -> (UTC day, recorded_by)
        The latest statement naming it.
    """

    day: date
    pulls: Mapping[str, Mapping[str, list[tuple[date, str]]]] = field(default_factory=dict)
    responses: Mapping[tuple[str, str], Mapping[str, frozenset[tuple[str, str]]]] = field(
        default_factory=dict
    )
    stated_topics: Mapping[str, tuple[date, str]] = field(default_factory=dict)
    stated_channels: Mapping[str, tuple[date, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        day: date,
        touches: Iterable[Touch],
        outcomes: Iterable[ActionOutcome],
        stated: Iterable[StatedPreference],
        topic_of: Mapping[str, str],
        now: datetime | None = None,
    ) -> Evidence:
        """Summarise the record as of ``day``.

        Parameters
        ----------
        day : date
            The decision's UTC day.
        touches : iterable of Touch
            The HCP's touches of the last :data:`EVIDENCE_DAYS` (contacts are ignored:
            only pulls say what the HCP asked for).
        outcomes : iterable of ActionOutcome
            The HCP's responses to our actions over the same days.
        stated : iterable of StatedPreference
            What the HCP told reps, any time.
        topic_of : mapping content id -> topic
            The catalog's topics; responses about content it does not know are skipped.
        now : datetime, optional
            The decision time; records stamped after it are skipped (a replayed
            decision must not cite what happened later). Default: the end of ``day``.
        """
        end = now
        lo = day - timedelta(days=EVIDENCE_DAYS)

        def in_window(ts: datetime) -> bool:
            if end is not None and ts > end:
                return False
            d = ts.date()
            return lo <= d <= day

        pulls: dict[str, dict[str, list[tuple[date, str]]]] = {}
        for t in sorted(touches, key=lambda t: t.ts):
            if t.kind == "contact" or not in_window(t.ts):
                continue
            for topic in dict.fromkeys(t.topics):
                pulls.setdefault(topic, {}).setdefault(t.kind, []).append((t.ts.date(), t.channel))
        seen: dict[tuple[str, str], dict[str, set[tuple[str, str]]]] = {}
        for o in outcomes:
            if not in_window(o.ts):
                continue
            action = Action.parse(o.action_id)
            item_topic = topic_of.get(action.content_id)
            if item_topic is None:
                continue
            by_type = seen.setdefault((item_topic, action.channel), {})
            by_type.setdefault(o.type, set()).add((o.event_id, o.action_id))
        responses = {k: {ty: frozenset(s) for ty, s in v.items()} for k, v in seen.items()}
        st_topics: dict[str, tuple[date, str]] = {}
        st_channels: dict[str, tuple[date, str]] = {}
        for p in sorted(stated, key=lambda p: p.ts):
            if end is not None and p.ts > end:
                continue
            for topic in p.topics:
                st_topics[topic] = (p.ts.date(), p.recorded_by)
            for ch in p.channels:
                st_channels[ch] = (p.ts.date(), p.recorded_by)
        return cls(day, pulls, responses, st_topics, st_channels)

    def topic_reasons(self, topic: str, channel: str) -> list[Reason]:
        """What the HCP pulled, said or did with our actions about ``topic`` (group
        :data:`TOPIC`), for a suggestion on ``channel`` (evidence there is stronger)."""
        return self.pull_reasons(topic, channel) + self.response_reasons(topic, channel)

    def pull_reasons(self, topic: str, channel: str) -> list[Reason]:
        """What the HCP asked for or said they want about ``topic``."""
        out: list[Reason] = []
        t = _label(topic)
        for kind, hits in self.pulls.get(topic, {}).items():
            text = self._pull_text(kind, t, hits)
            if text is None:
                continue
            same_channel = any(ch == channel for _, ch in hits)
            recency = 1.0 - (self.day - hits[-1][0]).days / (2.0 * EVIDENCE_DAYS)
            base = {"detail_pull": 5.0, "webinar_question": 5.0, "email_click": 4.5}.get(kind, 4.0)
            out.append(
                Reason(text, base + 0.3 * len(hits) + recency + 0.5 * same_channel, (), TOPIC)
            )
        if topic in self.stated_topics:
            d, who = self.stated_topics[topic]
            out.append(
                Reason(
                    f"Told {who} on {day_text(d, self.day)} they want {t} content", 4.8, (), TOPIC
                )
            )
        return out

    def response_reasons(self, topic: str, channel: str) -> list[Reason]:
        """How the HCP responded to our actions on ``topic``, per channel."""
        out: list[Reason] = []
        t = _label(topic)
        for (rtopic, ch), by_type in self.responses.items():
            if rtopic != topic:
                continue
            same = 1.0 if ch == channel else 0.0
            if ch in RATE_TEXTS:
                reached_types, engaged_types, fmt, noun = RATE_TEXTS[ch]
                # distinct actions: an email both opened and clicked counts once
                a = len(_union(by_type, engaged_types))
                b = len(_union(by_type, reached_types | engaged_types))
                if a:
                    out.append(
                        Reason(
                            fmt.format(a=a, b=b, noun=_plural(b, noun), t=t),
                            3.0 + a / b + 0.3 * a + same,
                            (),
                            TOPIC,
                        )
                    )
            elif ch in COUNT_TEXTS:
                types, fmt, noun = COUNT_TEXTS[ch]
                n = len(_union(by_type, types))
                if n:
                    text = fmt.format(n=n, noun=_plural(n, noun), t=t)
                    out.append(Reason(text, 3.0 + 0.3 * n + same, (), TOPIC))
        return out

    def _pull_text(self, kind: str, t: str, hits: list[tuple[date, str]]) -> str | None:
        n = len(hits)
        last = day_text(hits[-1][0], self.day)
        if kind == "detail_pull":
            if n == 1:
                return f"Asked about {t} in the {last} detail"
            return f"Asked about {t} in {n} details, last on {last}"
        if kind == "webinar_question":
            if n == 1:
                return f"Asked a question on {t} in the {last} webinar"
            return f"Asked {n} questions on {t} in webinars, last on {last}"
        if kind == "email_click":
            if n == 1:
                return f"Clicked the {t} link in an email on {last}"
            return f"Clicked {n} {t} links in emails, last on {last}"
        if kind == "portal_view":
            if n == 1:
                return f"Viewed a portal page on {t} on {last}"
            first = hits[0][0]
            if (first.year, first.month) == (self.day.year, self.day.month):
                return f"Viewed {n} portal pages on {t} this month"
            return f"Viewed {n} portal pages on {t} since {day_text(first, self.day)}"
        return None

    def channel_reasons(self, channel: str) -> list[Reason]:
        """What the HCP said about ``channel`` (group :data:`CHANNEL`)."""
        if channel not in self.stated_channels:
            return []
        d, who = self.stated_channels[channel]
        text = f"Told {who} on {day_text(d, self.day)} they prefer {_words(channel)[1]}"
        return [Reason(text, 4.8, (), CHANNEL)]


def candidate_reasons(
    context: DecisionContext, action: Action, topic: str, evidence: Evidence | None = None
) -> list[Reason]:
    """Every reason the context (and, when given, the HCP's record) offers for
    ``action`` (of ``topic``), unsorted."""
    h = context.history
    hcp = context.hcp
    ch = action.channel
    one, many = _words(ch)
    out: list[Reason] = []
    responses: list[Reason] = []
    if evidence is not None:
        responses = evidence.response_reasons(topic, ch)
        out.extend(evidence.pull_reasons(topic, ch) + responses)
        out.extend(evidence.channel_reasons(ch))

    n_ch = h.engagements_30d.get(ch, 0)
    if n_ch:
        noun = one if n_ch == 1 else many
        out.append(
            Reason(
                f"Engaged with {n_ch} {noun} in the last 30 days",
                2.0 + n_ch,
                (f"eng30:{ch}",),
                CHANNEL,
            )
        )
    total_eng = sum(h.engagements_30d.values())
    if n_ch and total_eng and n_ch == max(h.engagements_30d.values()) and n_ch / total_eng >= 0.5:
        out.append(
            Reason(f"Prefers {many}", 1.5 + 2.0 * n_ch / total_eng, (f"eng30:{ch}",), CHANNEL)
        )

    n_topic = h.topic_engagements_90d.get(topic, 0)
    if n_topic and not responses:  # the record says the same thing more precisely
        noun = "piece" if n_topic == 1 else "pieces"
        out.append(
            Reason(
                f"Engaged with {n_topic} {_label(topic)} {noun} in the last 90 days",
                1.5 + n_topic,
                (f"topic90:{topic}",),
                CHANNEL,
            )
        )

    days = h.days_since_touch.get(ch)
    if days is not None and days >= 21:
        out.append(
            Reason(f"No {one} for {days} days", 1.0 + days / 30.0, (f"days_since:{ch}",), CHANNEL)
        )
    elif days is None and sum(h.touches_90d.values()) > 0:
        out.append(Reason(f"No {one} in the last 90 days", 2.5, (f"days_since:{ch}",), CHANNEL))

    if not h.touches_30d:
        out.append(Reason("No contact of any kind in the last 30 days", 1.2, ("touches30",)))

    if suits_stage(hcp.adoption_stage, topic):  # the simulator's table too (nba.topics)
        out.append(
            Reason(
                f"{_label(topic).capitalize()} content suits an HCP at the"
                f" '{hcp.adoption_stage}' stage",
                1.0,
                (f"stage_topic:{hcp.adoption_stage}:{topic}",),
            )
        )

    aff = float(hcp.digital_affinity)
    if ch in DIGITAL_CHANNELS and aff >= 0.65:
        out.append(Reason("Responds well to digital channels", 0.5 + aff, ("digital_affinity",)))
    elif ch == "rep_visit" and aff <= 0.35:
        out.append(Reason("Prefers in-person contact", 0.5 + (1 - aff), ("digital_affinity",)))

    if ch in ("rep_visit", "remote_call") and hcp.decile >= 8:
        out.append(Reason(f"High-decile prescriber (decile {hcp.decile})", 0.8, ("decile",)))
    return out


def _ranked(
    context: DecisionContext,
    action: Action,
    topic: str,
    contributions: Mapping[str, float] | None,
    evidence: Evidence | None,
) -> list[str]:
    """Distinct candidate texts, best first (the fallback sentence when there are none)."""
    cands = candidate_reasons(context, action, topic, evidence)
    contrib = contributions or {}

    def key(r: Reason) -> tuple[float, int, float]:
        backed = max((contrib.get(f, 0.0) for f in r.features), default=0.0)
        return (max(backed, 0.0), -r.group, r.strength)

    def unbacked(r: Reason) -> tuple[float, int, float]:
        # key without contributions: no feature backs any reason, so its first entry
        # is 0.0 for every reason, as key gives it (the same keys, the same order)
        return (0.0, -r.group, r.strength)

    cands.sort(key=key if contrib else unbacked, reverse=True)
    texts = list(dict.fromkeys(r.text for r in cands))
    if not texts:
        one, many = _words(action.channel)
        if context.history.touches_7d.get(action.channel):
            texts.append(f"Consents to {many} and is within the contact limits")
        else:
            texts.append(f"Consents to {many} and had no {one} this week")
    return texts


def reasons_for(
    context: DecisionContext,
    action: Action,
    topic: str,
    contributions: Mapping[str, float] | None = None,
    max_reasons: int = MAX_REASONS,
    evidence: Evidence | None = None,
) -> list[str]:
    """The 1-``max_reasons`` strongest reasons for suggesting ``action``.

    Parameters
    ----------
    context : DecisionContext
        What the policy saw.
    action : Action
        The suggested action.
    topic : str
        Its content item's topic.
    contributions : mapping of feature name -> float, optional
        How much each feature raised (positive) or lowered the action's score,
        when the policy can tell (the VW policy cannot: it gives a pmf only).
        Reasons backed by positive contributions come first, ordered by contribution.
    max_reasons : int
    evidence : Evidence, optional
        The HCP's own record; without it only the context speaks.

    Returns
    -------
    list of str, length 1..max_reasons
    """
    return _ranked(context, action, topic, contributions, evidence)[:max_reasons]


def reasons_for_list(
    context: DecisionContext,
    suggestions: Sequence[tuple[Action, str]],
    evidence: Evidence | None = None,
    contributions: Sequence[Mapping[str, float] | None] | None = None,
    max_reasons: int = MAX_REASONS,
) -> list[list[str]]:
    """Reasons for each suggestion of one ranked list, no two leading alike.

    Each suggestion's reasons are those of :func:`reasons_for`, except that a
    suggestion whose best reason an earlier suggestion already leads with leads
    with its best reason no earlier suggestion leads with (when it has one); the
    rest follow in their order.

    Parameters
    ----------
    context : DecisionContext
    suggestions : sequence of (Action, topic), length k
        In the order shown.
    evidence : Evidence, optional
    contributions : sequence of mapping or None, length k, optional
    max_reasons : int

    Returns
    -------
    list of list of str, length k; each of length 1..max_reasons
    """
    if contributions is not None and len(contributions) != len(suggestions):
        raise ValueError(
            f"reasons_for_list: {len(contributions)} contribution mappings"
            f" for {len(suggestions)} suggestions"
        )
    leads: set[str] = set()
    out: list[list[str]] = []
    for i, (action, topic) in enumerate(suggestions):
        contrib = contributions[i] if contributions is not None else None
        texts = _ranked(context, action, topic, contrib, evidence)
        fresh = next((t for t in texts if t not in leads), None)
        if fresh is not None and fresh != texts[0]:
            texts.remove(fresh)
            texts.insert(0, fresh)
        leads.add(texts[0])
        out.append(texts[:max_reasons])
    return out
