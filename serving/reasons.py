"""Short reasons a rep can read, for each suggestion.

Reasons come from the features of the decision context that speak for the
suggested action (its channel and topic crossed with the HCP's history and
profile) and, when the policy can say which features raised the action's score,
from those first. A reason never restates the action's own label ("because it
is efficacy content"); it always points at something about the HCP.

Each candidate reason has a strength; the strongest 1-3 are returned. When the
policy reports feature contributions (``{feature: contribution}``, positive
raises the score), reasons backed by a positive contribution rank first.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nba.context import DecisionContext
from nba.domain import Action
from nba.topics import suits_stage

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


def _words(channel: str) -> tuple[str, str]:
    return CHANNEL_WORDS.get(channel, (channel.replace("_", " "), channel.replace("_", " ") + "s"))


@dataclass(frozen=True, slots=True)
class Reason:
    """One candidate reason; ``features`` are the feature names that back it."""

    text: str
    strength: float
    features: tuple[str, ...]


def candidate_reasons(context: DecisionContext, action: Action, topic: str) -> list[Reason]:
    """Every reason the context offers for ``action`` (of ``topic``), unsorted."""
    h = context.history
    hcp = context.hcp
    ch = action.channel
    one, many = _words(ch)
    out: list[Reason] = []

    n_ch = h.engagements_30d.get(ch, 0)
    if n_ch:
        noun = one if n_ch == 1 else many
        out.append(
            Reason(f"Engaged with {n_ch} {noun} in the last 30 days", 2.0 + n_ch, (f"eng30:{ch}",))
        )
    total_eng = sum(h.engagements_30d.values())
    if n_ch and total_eng and n_ch == max(h.engagements_30d.values()) and n_ch / total_eng >= 0.5:
        out.append(Reason(f"Prefers {many}", 1.5 + 2.0 * n_ch / total_eng, (f"eng30:{ch}",)))

    n_topic = h.topic_engagements_90d.get(topic, 0)
    if n_topic:
        noun = "piece" if n_topic == 1 else "pieces"
        label = topic.replace("_", " ")
        out.append(
            Reason(
                f"Engaged with {n_topic} {label} {noun} in the last 90 days",
                1.5 + n_topic,
                (f"topic90:{topic}",),
            )
        )

    days = h.days_since_touch.get(ch)
    if days is not None and days >= 21:
        out.append(Reason(f"No {one} for {days} days", 1.0 + days / 30.0, (f"days_since:{ch}",)))
    elif days is None and sum(h.touches_90d.values()) > 0:
        out.append(Reason(f"No {one} in the last 90 days", 2.5, (f"days_since:{ch}",)))

    if not h.touches_30d:
        out.append(Reason("No contact of any kind in the last 30 days", 1.2, ("touches30",)))

    if suits_stage(hcp.adoption_stage, topic):  # the simulator's table too (nba.topics)
        label = topic.replace("_", " ")
        out.append(
            Reason(
                f"{label.capitalize()} content suits an HCP at the '{hcp.adoption_stage}' stage",
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


def reasons_for(
    context: DecisionContext,
    action: Action,
    topic: str,
    contributions: Mapping[str, float] | None = None,
    max_reasons: int = MAX_REASONS,
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
        when the policy can tell. Reasons backed by positive contributions come
        first, ordered by contribution.
    max_reasons : int

    Returns
    -------
    list of str, length 1..max_reasons
    """
    cands = candidate_reasons(context, action, topic)
    contrib = contributions or {}

    def key(r: Reason) -> tuple[float, float]:
        backed = max((contrib.get(f, 0.0) for f in r.features), default=0.0)
        return (max(backed, 0.0), r.strength)

    cands.sort(key=key, reverse=True)
    texts: list[str] = []
    for r in cands:
        if r.text not in texts:
            texts.append(r.text)
        if len(texts) == max_reasons:
            break
    if not texts:
        one, many = _words(action.channel)
        if context.history.touches_7d.get(action.channel):
            texts.append(f"Consents to {many} and is within the contact limits")
        else:
            texts.append(f"Consents to {many} and had no {one} this week")
    return texts
