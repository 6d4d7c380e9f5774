"""The per-decision path: one context and its actions -> VW feature tokens.

Each function returns the tokens of one namespace, every token preceded by a
space (an empty string when there is nothing to write). The bulk Arrow path
(:mod:`nba.features.bulk`) builds the same bytes column-wise; the parity tests
hold the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from nba.context import HISTORY_WINDOWS, DecisionContext, History, topic_channel_key
from nba.domain import HCPProfile
from nba.features.config import age_bucket, clean, fixed3

#: day-of-week names, Monday first (``date.weekday()`` order)
DOW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def profile_tokens(hcp: HCPProfile) -> str:
    out = (
        f" spec={clean(hcp.specialty)} mkt={clean(hcp.market)} stage={hcp.adoption_stage}"
        f" dec={hcp.decile} aff:{fixed3(hcp.digital_affinity)}"
    )
    if hcp.no_see:
        out += " nosee"
    for c in sorted(hcp.consents):
        out += f" cons={clean(c)}"
    return out


def attribute_tokens(attributes: Mapping[str, Any]) -> str:
    """Declared attributes (context version 3), in key order, after the profile in ``p``:
    strings ``a_<name>=<value>``, booleans ``a_<name>=true|false``, numbers
    ``a_<name>:<fixed3>``, lists one ``a_<name>=<value>`` per (sorted) value."""
    out = ""
    for k, v in attributes.items():
        name = f" a_{clean(k)}"
        if isinstance(v, bool):
            out += f"{name}={'true' if v else 'false'}"
        elif isinstance(v, int | float):
            out += f"{name}:{fixed3(v)}"
        elif isinstance(v, str):
            out += f"{name}={clean(v)}"
        else:
            for item in v:
                out += f"{name}={clean(item)}"
    return out


def top_interest(interest: Mapping[str, float]) -> str | None:
    """The topic of highest interest (the first in key order among equals), or None."""
    best: str | None = None
    for k, v in interest.items():
        if best is None or v > interest[best]:
            best = k
    return best


def history_tokens(h: History) -> str:
    out = ""
    for w in HISTORY_WINDOWS:
        for k, v in getattr(h, f"touches_{w}d").items():
            out += f" t{w}_{clean(k)}:{v}"
    for k, v in h.engagements_30d.items():
        out += f" e30_{clean(k)}:{v}"
    for k, v in h.topic_engagements_90d.items():
        out += f" te90_{clean(k)}:{v}"
    for k, v in h.days_since_touch.items():
        out += f" dst_{clean(k)}:{v}"
    if h.last_content_id:
        out += f" last={clean(h.last_content_id)}"
    for k, v in h.interest.items():
        out += f" int_{clean(k)}:{fixed3(v)}"
    top = top_interest(h.interest)
    if top is not None:
        out += f" top_int={clean(top)}"
    if h.overrides_90d:
        out += f" ovr90:{h.overrides_90d}"
    return out


def request_tokens(req: Mapping[str, Any]) -> str:
    out = ""
    for k, v in req.items():
        if isinstance(v, bool):
            out += f" {clean(k)}={'true' if v else 'false'}"
        elif isinstance(v, int | float):
            out += f" {clean(k)}:{fixed3(v)}"
        else:
            out += f" {clean(k)}={clean(str(v))}"
    return out


def calendar_tokens(day: date) -> str:
    return f" dow={DOW[day.weekday()]} mon={day.month}"


def channel_tokens(context: DecisionContext, channel: str) -> str:
    """The part of :func:`cross_tokens` that depends on the action's channel alone
    (the same for every action of that channel in one decision)."""
    h = context.history
    ch = channel
    x = ""
    v = h.touches_7d.get(ch, 0)
    if v:
        x += f" ch_t7:{v}"
    v = h.touches_30d.get(ch, 0)
    if v:
        x += f" ch_t30:{v}"
    v = h.engagements_30d.get(ch, 0)
    if v:
        x += f" ch_e30:{v}"
    d = h.days_since_touch.get(ch)
    x += " ch_dst_none" if d is None else f" ch_dst:{d} ch_dstb={age_bucket(d)}"
    x += f" aff_{clean(ch)}:{fixed3(context.hcp.digital_affinity)}"
    if ch not in context.hcp.consents:
        x += " nocons"
    return x


def cross_tokens(
    context: DecisionContext,
    channel: str,
    topic: str,
    content_id: str,
    channel_part: str | None = None,
) -> str:
    """Tokens of the ``x`` namespace: one action (``channel``, ``topic``,
    ``content_id``) crossed with the decision's context. ``channel_part``, when
    given, is :func:`channel_tokens` of the same context and channel."""
    h = context.history
    ch = channel
    x = ""
    if h.last_content_id is not None and h.last_content_id == content_id:
        x += " same_last"
    x += channel_tokens(context, ch) if channel_part is None else channel_part
    v = h.topic_engagements_90d.get(topic, 0)
    if v:
        x += f" top_e90:{v}"
    x += f" st_top={context.hcp.adoption_stage}_{clean(topic)}"
    v = h.topic_channel_engagements_90d.get(topic_channel_key(topic, ch), 0)
    if v:
        x += f" tc_e90:{v}"
    d = h.days_since_content.get(content_id)
    if d is not None:
        x += f" it_ago={age_bucket(d)}"
    i = h.interest.get(topic)
    if i is not None:
        x += f" it_int:{fixed3(i)}"
    v = h.topic_pulls_90d.get(topic, 0)
    if v:
        x += f" it_pull:{v} it_pull_{clean(ch)}:{v}"
    if topic in context.stated_topics:
        x += " sp_top"
    if ch in context.stated_channels:
        x += " sp_ch"
    return x
