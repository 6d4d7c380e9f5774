"""The logged decision context: canonical JSON that round-trips, and clear errors."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from nba.context import CONTEXT_VERSION, DecisionContext, History
from nba.domain import HCPProfile, ValidationError

HCP = HCPProfile(
    "h1", "cardiology", 7, "US", "considering", frozenset({"email", "rep_visit"}), True, 0.3
)


def full_context() -> DecisionContext:
    hist = History(
        touches_7d={"email": 1},
        touches_30d={"email": 3, "rep_visit": 1, "portal": 0},
        touches_90d={"email": 9, "rep_visit": 2},
        engagements_30d={"email": 2},
        topic_engagements_90d={"safety": 1, "efficacy": 4},
        days_since_touch={"email": 2, "rep_visit": 40},
        last_content_id="VEL-EFF-01",
        topic_channel_engagements_90d={"safety@email": 1, "efficacy@rep_visit": 4},
        days_since_content={"VEL-EFF-01": 2, "VEL-SAF-01": 90},
    )
    return DecisionContext(
        hcp=HCP,
        day=date(2026, 1, 5),
        history=hist,
        request={"requester": "rep_app", "k": 3, "urgent": False, "score": 0.5},
    )


def test_round_trip() -> None:
    ctx = full_context()
    text = ctx.to_json()
    back = DecisionContext.from_json(text)
    assert back == ctx
    assert back.to_json() == text  # canonical: stable bytes
    d = json.loads(text)
    assert d["v"] == CONTEXT_VERSION
    assert list(d) == sorted(d)
    assert " " not in text.replace("VEL-EFF-01", "")


def test_zero_counts_dropped_and_maps_sorted() -> None:
    h = full_context().history
    assert "portal" not in h.touches_30d
    assert list(h.topic_engagements_90d) == ["efficacy", "safety"]
    assert History.from_dict(h.to_dict()) == h


def test_same_content_same_json_regardless_of_insertion_order() -> None:
    a = DecisionContext(
        HCP, date(2026, 1, 5), History(touches_30d={"a": 1, "b": 2}), {"x": 1, "y": 2}
    )
    b = DecisionContext(
        HCP, date(2026, 1, 5), History(touches_30d={"b": 2, "a": 1}), {"y": 2, "x": 1}
    )
    assert a.to_json() == b.to_json()


def _ctx_dict(**over: Any) -> dict[str, Any]:
    d = full_context().to_dict()
    d.update(over)
    return d


BAD = [
    ("{", "context: not valid JSON"),
    ("[1]", "context: must be a JSON object"),
    (json.dumps(_ctx_dict(v=99)), "context: field 'v': unsupported version 99"),
    (
        json.dumps({k: v for k, v in _ctx_dict().items() if k != "hcp"}),
        "context: missing field 'hcp'",
    ),
    (
        json.dumps({k: v for k, v in _ctx_dict().items() if k != "day"}),
        "context: missing field 'day'",
    ),
    (json.dumps(_ctx_dict(day="soon")), "context: malformed field value"),
    (json.dumps(_ctx_dict(hcp=3)), "context: malformed field value"),
    (
        json.dumps(_ctx_dict(history={"touches_7d": [1, 2]})),
        "field 'touches_7d': expected a mapping",
    ),
    (
        json.dumps(_ctx_dict(history={"touches_7d": {"email": -1}})),
        "field 'touches_7d.email': negative",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_touch": {"email": -3}})),
        "field 'days_since_touch.email'",
    ),
    (
        json.dumps(_ctx_dict(v=6)),
        "context: field 'v': unsupported version 6 (readable: 1, 2, 3, 4, 5)",
    ),
    (
        json.dumps(_ctx_dict(history={"overrides_90d": -1})),
        "context: field 'overrides_90d': -1 is not a whole-number count >= 0",
    ),
    (
        json.dumps(_ctx_dict(history={"overrides_90d": 1.5})),
        "context: field 'overrides_90d': 1.5 is not a whole-number count >= 0",
    ),
    (
        json.dumps(_ctx_dict(history={"overrides_90d": True})),
        "context: field 'overrides_90d': True is not a whole-number count >= 0",
    ),
    (
        json.dumps(_ctx_dict(history={"topic_pulls_90d": {"safety": -2}})),
        "context: field 'topic_pulls_90d.safety': negative count -2",
    ),
    (
        json.dumps(_ctx_dict(history={"topic_pulls_90d": ["safety"]})),
        "context: field 'topic_pulls_90d': expected a mapping",
    ),
    (
        json.dumps(_ctx_dict(history={"topic_channel_engagements_90d": {"efficacy": 2}})),
        "field 'topic_channel_engagements_90d.efficacy': key must be 'topic@channel'",
    ),
    (
        json.dumps(_ctx_dict(history={"topic_channel_engagements_90d": {"@email": 2}})),
        "field 'topic_channel_engagements_90d.@email': key must be 'topic@channel'",
    ),
    (
        json.dumps(_ctx_dict(history={"topic_channel_engagements_90d": {"safety@email": -1}})),
        "field 'topic_channel_engagements_90d.safety@email': negative count",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": ["c1"]})),
        "field 'days_since_content': expected a mapping",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": {"c1": 0}})),
        "field 'days_since_content.c1': 0 days is not in 1..90",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": {"c1": 91}})),
        "field 'days_since_content.c1': 91 days is not in 1..90",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": {"c1": 2.5}})),
        "field 'days_since_content.c1': 2.5 is not a whole number",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": {"c1": "3"}})),
        "field 'days_since_content.c1': '3' is not a whole number",
    ),
    (
        json.dumps(_ctx_dict(history={"days_since_content": {"c1": True}})),
        "field 'days_since_content.c1': True is not a whole number",
    ),
    (
        json.dumps(_ctx_dict(request={"nested": {"a": 1}})),
        "field 'request.nested': must be a string",
    ),
    (
        json.dumps(_ctx_dict(hcp={**HCP.to_dict(), "decile": 12})),
        "HCPProfile 'h1': field 'decile'",
    ),
]


@pytest.mark.parametrize(("text", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_context_json(text: str, match: str) -> None:
    with pytest.raises(ValidationError) as info:
        DecisionContext.from_json(text)
    assert match in str(info.value)


#: a context logged before version 2, byte for byte as the service and the
#: simulator wrote it
V1_CONTEXT = (
    '{"day":"2026-01-05","hcp":{"adoption_stage":"considering","consents":["email"],'
    '"decile":7,"digital_affinity":0.3,"hcp_id":"h1","market":"US","no_see":false,'
    '"specialty":"cardiology"},"history":{"days_since_touch":{"email":2},'
    '"engagements_30d":{"email":2},"last_content_id":"VEL-EFF-01",'
    '"topic_engagements_90d":{"efficacy":4},"touches_30d":{"email":3},'
    '"touches_7d":{"email":1},"touches_90d":{"email":9}},"request":{},"v":1}'
)


def test_version_1_contexts_are_read_with_the_newer_maps_empty() -> None:
    ctx = DecisionContext.from_json(V1_CONTEXT)
    assert ctx.history.topic_channel_engagements_90d == {}
    assert ctx.history.days_since_content == {}
    assert ctx.history.days_since_touch == {"email": 2}
    assert ctx.history.last_content_id == "VEL-EFF-01"
    # written back as the current version, with the maps present and empty
    d = json.loads(ctx.to_json())
    assert d["v"] == CONTEXT_VERSION == 5
    assert d["history"]["days_since_content"] == {}
    assert DecisionContext.from_json(ctx.to_json()) == ctx


def test_override_count_round_trips_and_is_left_out_when_zero() -> None:
    ctx = DecisionContext(HCP, date(2026, 1, 5), History(overrides_90d=3))
    assert json.loads(ctx.to_json())["history"]["overrides_90d"] == 3
    assert DecisionContext.from_json(ctx.to_json()) == ctx
    none = DecisionContext(HCP, date(2026, 1, 5))
    assert "overrides_90d" not in json.loads(none.to_json())["history"]
    assert DecisionContext.from_json(V1_CONTEXT).history.overrides_90d == 0
