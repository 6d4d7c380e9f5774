"""Context version 3: the decayed interest profile, stated preferences and declared
attributes -- canonical JSON, the older versions still read, and clear errors."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from nba.context import (
    CONTEXT_VERSION,
    INTEREST_HALFLIFE_DAYS,
    INTEREST_WEIGHTS,
    DecisionContext,
    History,
    interest_profile,
)
from nba.domain import HCPProfile, ValidationError

HCP = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.3)


def v3_context() -> DecisionContext:
    return DecisionContext(
        hcp=HCP,
        day=date(2026, 3, 2),
        history=History(interest={"safety": 0.5, "dosing": 1.9517, "efficacy": 0.0001}),
        stated_topics=("safety", "dosing", "safety"),
        stated_channels=("email",),
        attributes={
            "rx_volume_decile": "4to8",
            "payer_mix_commercial": 0.61,
            "kol": True,
            "affiliations": ["idn", "aco", "idn"],
        },
    )


def test_interest_weights_halve_every_halflife() -> None:
    assert INTEREST_HALFLIFE_DAYS == 14.0
    assert INTEREST_WEIGHTS[14] == pytest.approx(0.5)
    assert INTEREST_WEIGHTS[28] == pytest.approx(0.25)
    assert INTEREST_WEIGHTS[1] == pytest.approx(0.5 ** (1 / 14))


def test_interest_profile_hand_computed() -> None:
    # dosing: one signal a day before (0.95170) + two a fortnight before (2 x 0.5)
    # safety: one signal 28 days before (0.25); efficacy: only beyond the window
    got = interest_profile(
        {
            1: {"dosing": 1},
            14: {"dosing": 2},
            28: {"safety": 1},
            91: {"efficacy": 5},
            0: {"efficacy": 5},
        }
    )
    assert got == {"dosing": 1.952, "safety": 0.25}


def test_v3_round_trip_is_canonical_and_normalized() -> None:
    ctx = v3_context()
    text = ctx.to_json()
    d = json.loads(text)
    assert d["v"] == CONTEXT_VERSION == 5
    # three decimals, zeros (after rounding) left out, keys sorted
    assert d["history"]["interest"] == {"dosing": 1.952, "safety": 0.5}
    assert list(d["history"]["interest"]) == ["dosing", "safety"]
    assert d["stated"] == {"channels": ["email"], "topics": ["dosing", "safety"]}
    assert d["attributes"] == {
        "affiliations": ["aco", "idn"],
        "kol": True,
        "payer_mix_commercial": 0.61,
        "rx_volume_decile": "4to8",
    }
    back = DecisionContext.from_json(text)
    assert back == ctx and back.to_json() == text


def test_empty_stated_and_attributes_are_left_out() -> None:
    d = json.loads(DecisionContext(HCP, date(2026, 3, 2)).to_json())
    assert "stated" not in d and "attributes" not in d
    assert d["history"]["interest"] == {}


V2_CONTEXT = (
    '{"day":"2026-01-05","hcp":{"adoption_stage":"aware","consents":["email"],'
    '"decile":7,"digital_affinity":0.3,"hcp_id":"h1","market":"US","no_see":false,'
    '"specialty":"cardiology"},"history":{"days_since_content":{"VEL-EFF-01":3},'
    '"days_since_touch":{"email":2},"engagements_30d":{},"last_content_id":"VEL-EFF-01",'
    '"topic_channel_engagements_90d":{"efficacy@email":1},"topic_engagements_90d":{},'
    '"touches_30d":{"email":3},"touches_7d":{"email":1},"touches_90d":{"email":9}},'
    '"request":{},"v":2}'
)


def test_version_2_contexts_are_read_with_the_new_fields_empty() -> None:
    ctx = DecisionContext.from_json(V2_CONTEXT)
    assert ctx.history.interest == {}
    assert ctx.stated_topics == () and ctx.stated_channels == () and ctx.attributes == {}
    assert ctx.history.days_since_content == {"VEL-EFF-01": 3}
    assert json.loads(ctx.to_json())["v"] == CONTEXT_VERSION == 5


def _d(**over: Any) -> str:
    d = v3_context().to_dict()
    for k, v in over.items():
        if k == "history":
            d["history"] = {**d["history"], **v}
        else:
            d[k] = v
    return json.dumps(d)


BAD = [
    (_d(history={"interest": {"safety": -0.5}}), "field 'interest.safety': negative interest"),
    (_d(history={"interest": {"safety": "high"}}), "field 'interest.safety': 'high' is not a"),
    (_d(history={"interest": {"safety": True}}), "field 'interest.safety': True is not a finite"),
    (_d(history={"interest": {"safety": None}}), "field 'interest.safety': None is not a finite"),
    (_d(history={"interest": [1]}), "field 'interest': expected a mapping"),
    (_d(history={"interest": {"": 1.0}}), "field 'interest': empty topic name"),
    (_d(stated=["safety"]), "field 'stated': expected a mapping"),
    (_d(stated={"topics": "safety"}), "field 'stated.topics': expected a list of names"),
    (_d(stated={"topics": ["safety", ""]}), "field 'stated.topics': '' is not a non-empty"),
    (_d(stated={"channels": [3]}), "field 'stated.channels': 3 is not a non-empty name"),
    (_d(stated={"topic": ["safety"]}), "field 'stated.topic': unknown field"),
    (_d(attributes=[1]), "field 'attributes': expected a mapping"),
    (_d(attributes={"Bad-Name": 1}), "field 'attributes': 'Bad-Name' is not an attribute name"),
    (_d(attributes={"kol": None}), "field 'attributes.kol': NoneType is not a string"),
    (_d(attributes={"kol": {"a": 1}}), "field 'attributes.kol': dict is not a string"),
    (_d(attributes={"kol": ""}), "field 'attributes.kol': empty value"),
    (_d(attributes={"aff": ["idn", 2]}), "field 'attributes.aff': 2 is not a non-empty name"),
]


@pytest.mark.parametrize(("text", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_v3_fields_are_refused(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match="context: ") as info:
        DecisionContext.from_json(text)
    assert match in str(info.value)


def test_non_finite_interest_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'interest\.safety': nan is not a finite"):
        History(interest={"safety": float("nan")})
    with pytest.raises(ValidationError, match=r"'attributes\.x': inf is not a finite"):
        DecisionContext(HCP, date(2026, 1, 1), attributes={"x": float("inf")})
