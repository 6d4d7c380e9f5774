"""Domain records validate once, where they are built, naming the record and field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from nba.domain import (
    Action,
    Approval,
    ContentItem,
    Decision,
    HCPProfile,
    Outcome,
    Suppression,
    Touch,
    ValidationError,
    action_ids,
    ensure_utc,
)

TS = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def decision(**over: Any) -> Decision:
    fields: dict[str, Any] = {
        "event_id": "01KDECISION",
        "ts": TS,
        "hcp_id": "h1",
        "requester": "rep_app",
        "channels_requested": ("email",),
        "context": "{}",
        "catalog_version": "abc",
        "action_ids": ("a@email", "b@email", "c@email"),
        "probabilities": (0.5, 0.3, 0.2),
        "chosen_index": 1,
        "chosen_action_id": "b@email",
        "propensity": 0.3,
        "policy": "vw",
        "model_version": "m1",
        "suppressed": (Suppression("d@email", "frequency_cap"),),
    }
    fields.update(over)
    return Decision(**fields)


def test_valid_decision_and_utc_normalisation() -> None:
    d = decision(ts=datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=1))))
    assert d.ts == TS and d.ts.tzinfo == UTC
    assert d.activated is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.propensity = 0.5  # type: ignore[misc]


BAD_DECISIONS = [
    ({"event_id": ""}, "Decision: field 'event_id': must not be empty"),
    ({"ts": datetime(2026, 1, 5, 9, 30)}, "field 'ts': timestamp must be timezone-aware"),
    ({"ts": "2026-01-05"}, "field 'ts': expected a datetime, got str"),
    ({"hcp_id": ""}, "field 'hcp_id'"),
    (
        {"action_ids": (), "probabilities": (), "chosen_index": 0},
        "field 'action_ids': a decision needs at least one eligible action",
    ),
    (
        {"action_ids": ("a@email", "a@email", "c@email")},
        "field 'action_ids': lists an action twice",
    ),
    ({"probabilities": (0.5, 0.5)}, "field 'probabilities': has 2 entries for 3 actions"),
    ({"probabilities": (0.5, 0.3, 0.3)}, "field 'probabilities': sum to 1.1"),
    ({"probabilities": (1.2, -0.4, 0.2)}, "field 'probabilities': entry 0 is 1.2, outside"),
    ({"probabilities": (float("nan"), 0.5, 0.5)}, "field 'probabilities': entry 0 is nan"),
    ({"chosen_index": 3}, "field 'chosen_index': 3 outside 0..2"),
    ({"chosen_index": -1}, "field 'chosen_index': -1 outside"),
    ({"chosen_action_id": "a@email"}, "field 'chosen_action_id': 'a@email' is not action_ids[1]"),
    ({"propensity": 0.5}, "field 'propensity': 0.5 differs from the served probability 0.3"),
    (
        {"probabilities": (0.7, 0.0, 0.3), "propensity": 0.0},
        "field 'propensity': 0.0 is outside (0, 1]",
    ),
]


@pytest.mark.parametrize(("over", "match"), BAD_DECISIONS, ids=[m for _, m in BAD_DECISIONS])
def test_bad_decisions(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError) as info:
        decision(**over)
    assert match in str(info.value)
    assert str(info.value).startswith("Decision")


def test_probabilities_tolerate_float_round_off() -> None:
    p = (0.1, 0.2, 0.7000000000000001)
    assert decision(probabilities=p, propensity=0.2).probabilities == p


def profile(**over: Any) -> HCPProfile:
    fields: dict[str, Any] = {
        "hcp_id": "h1",
        "specialty": "cardiology",
        "decile": 7,
        "market": "US",
        "adoption_stage": "aware",
        "consents": frozenset({"email"}),
    }
    fields.update(over)
    return HCPProfile(**fields)


BAD_PROFILES = [
    ({"hcp_id": ""}, "HCPProfile: field 'hcp_id'"),
    ({"specialty": ""}, "HCPProfile 'h1': field 'specialty'"),
    ({"decile": 0}, "field 'decile': must be an integer 1-10, got 0"),
    ({"decile": 11}, "field 'decile'"),
    ({"decile": 7.0}, "field 'decile'"),
    ({"market": ""}, "field 'market'"),
    ({"adoption_stage": "curious"}, "field 'adoption_stage': 'curious' is not one of"),
    ({"digital_affinity": 1.5}, "field 'digital_affinity': must be in [0, 1]"),
]


@pytest.mark.parametrize(("over", "match"), BAD_PROFILES, ids=[m for _, m in BAD_PROFILES])
def test_bad_profiles(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError) as info:
        profile(**over)
    assert match in str(info.value)


def test_profile_dict_round_trip_and_consents_frozen() -> None:
    p = profile(consents=["email", "portal"], no_see=True, digital_affinity=0.25)
    assert isinstance(p.consents, frozenset)
    assert HCPProfile.from_dict(p.to_dict()) == p
    assert p.to_dict()["consents"] == ["email", "portal"]


BAD_OTHERS = [
    (lambda: Outcome("", TS, "opened"), "Outcome: field 'event_id'"),
    (lambda: Outcome("e", datetime(2026, 1, 5), "opened"), "field 'ts': timestamp must be"),
    (lambda: Outcome("e", TS, ""), "Outcome for 'e': field 'type'"),
    (lambda: Outcome("e", TS, "opened", float("inf")), "field 'value': inf is not finite"),
    (
        lambda: Outcome("e", TS, "accepted", action_id=""),
        "Outcome for 'e': field 'action_id': must be a non-empty string or None",
    ),
    (lambda: Touch("", TS, "email", "c"), "Touch: field 'hcp_id'"),
    (lambda: Touch("h", datetime(2026, 1, 5), "email", "c"), "field 'ts'"),
    (lambda: Touch("h", TS, "", "c"), "field 'channel'"),
    (lambda: Touch("h", TS, "email", "c", origin="theirs"), "field 'origin': 'theirs'"),
    (lambda: Touch("h", TS, "email", ""), "field 'content_id': must not be empty"),
    (
        lambda: Touch("h", TS, "email", "c", kind="fax_reply"),
        "field 'kind': 'fax_reply' is not one of contact, detail_pull, email_click",
    ),
    (
        lambda: Touch("h", TS, "email", "c", kind="contact", topics=("dosing",)),
        "field 'topics': a plain contact carries no topics",
    ),
    (
        lambda: Touch("h", TS, "email", "c", kind="email_click", topics="dosing"),  # type: ignore[arg-type]
        "field 'topics': must be a list of strings",
    ),
    (
        lambda: Touch("h", TS, "email", "c", kind="email_click", topics=("dosing", "dosing")),
        "field 'topics': lists 'dosing' twice",
    ),
    (
        lambda: Touch("h", TS, "portal", "c", kind="portal_view", content_ids=("",)),
        "field 'content_ids': entries must be non-empty strings",
    ),
    (lambda: Touch("h", TS, "email", "c", dwell_s=-1.0), "field 'dwell_s': must be a finite"),
    (lambda: Touch("h", TS, "email", "c", dwell_s=float("nan")), "field 'dwell_s': must be"),
    (lambda: Touch("h", TS, "email", "c", dwell_s="9"), "field 'dwell_s': must be a number"),  # type: ignore[arg-type]
    (lambda: Approval("", date(2026, 1, 1), date(2027, 1, 1)), "Approval: field 'market'"),
    (
        lambda: Approval("US", date(2026, 1, 1), date(2026, 1, 1)),
        "field 'expiry': expiry 2026-01-01 is not after start",
    ),
    (lambda: Action("", "email"), "Action: field 'content_id'"),
    (lambda: Action("a@b", "email"), "field 'content_id': invalid content id 'a@b'"),
    (lambda: Action("a", ""), "Action: field 'channel'"),
    (lambda: Action.parse("no-separator"), "field 'action_id': 'no-separator' is not"),
    (
        lambda: ContentItem("c1", "t", "efficacy", "video", (), ()),
        "ContentItem 'c1': field 'channels'",
    ),
    (
        lambda: ContentItem("c1", "t", "efficacy", "video", ("email", "email"), ()),
        "field 'channels': lists a channel twice",
    ),
    (
        lambda: ContentItem("c1", "t", "efficacy", "video", ("email",), ()),
        "field 'approvals': item is approved in no market",
    ),
    (lambda: ensure_utc(datetime(2026, 1, 1), "X", "when"), "X: field 'when'"),
]


@pytest.mark.parametrize(("build", "match"), BAD_OTHERS, ids=[m for _, m in BAD_OTHERS])
def test_bad_records(build: Any, match: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert match in str(info.value)


def test_actions_and_items() -> None:
    a = Action.parse("VEL-EFF-01@email")
    assert a == Action("VEL-EFF-01", "email") and a.action_id == "VEL-EFF-01@email"
    item = ContentItem(
        "c1",
        "t",
        "efficacy",
        "video",
        ("email", "portal"),
        (Approval("US", date(2026, 1, 1), date(2027, 1, 1)),),
    )
    assert action_ids(item.actions()) == ("c1@email", "c1@portal")
    assert item.markets == ("US",)
    assert sorted([Action("b", "x"), Action("a", "y")])[0].content_id == "a"
    o = Outcome("e", datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=2))), "opened")
    assert o.ts == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_touch_pull_fields_are_normalised() -> None:
    t = Touch(
        "h", TS, "rep_visit", "VEL-EFF-01", "ours", "detail_pull",
        topics=["dosing", "safety"], content_ids=["slide-3", "slide-7"], dwell_s=95,
    )  # fmt: skip
    assert t.topics == ("dosing", "safety") and t.content_ids == ("slide-3", "slide-7")
    assert t.dwell_s == 95.0 and isinstance(t.dwell_s, float)
    plain = Touch("h", TS, "email", "c")
    assert (plain.kind, plain.topics, plain.content_ids, plain.dwell_s) == ("contact", (), (), None)
