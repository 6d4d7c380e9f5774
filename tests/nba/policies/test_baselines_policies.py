"""The baseline policies: registry names, behaviour, save/load, bad inputs."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, HCPProfile
from nba.policies import registry
from nba.policies.base import PolicyError
from nba.policies.baselines import (
    CampaignPolicy,
    SegmentPolicy,
    SegmentRule,
    UniformPolicy,
    greedy_probabilities,
    load_baseline,
    segment_score,
)

CAT = Catalog.default()
DAY = date(2026, 1, 5)


def ctx(specialty="cardiology", decile=8, day=DAY) -> DecisionContext:
    hcp = HCPProfile("h1", specialty, decile, "US", "aware", frozenset({"email", "rep_visit"}))
    return DecisionContext(hcp=hcp, day=day)


def eligible(market="US", day=DAY, channels=("email", "rep_visit")) -> list[Action]:
    return list(CAT.eligible_actions(market, day, channels))


def test_registered_under_their_names():
    avail = registry.available()
    assert avail["uniform"] is UniformPolicy
    assert avail["campaign"] is CampaignPolicy
    assert avail["segment"] is SegmentPolicy
    assert isinstance(registry.create("campaign", seed=3, epsilon=0.2), CampaignPolicy)


def test_campaign_pushes_the_week_topic_then_the_next():
    pol = CampaignPolicy(epsilon=0.0, topic_sequence=["safety", "efficacy"], anchor=DAY)
    acts = eligible()
    p = pol.probabilities(ctx(), acts)
    chosen = acts[int(np.argmax(p))]
    assert CAT.item_for(chosen).topic == "safety" and p.max() == 1.0
    p2 = pol.probabilities(ctx(day=date(2026, 1, 12)), acts)
    assert CAT.item_for(acts[int(np.argmax(p2))]).topic == "efficacy"
    # week 2 wraps to safety again; before the anchor the weeks count backwards
    assert pol.week(date(2026, 1, 19)) == 2 and pol.week(date(2026, 1, 4)) == -1
    # only efficacy offered in the safety week: falls to the next topic in the sequence
    eff = [a for a in acts if CAT.item_for(a).topic == "efficacy"]
    p3 = pol.probabilities(ctx(), eff)
    assert p3[0] == 1.0


def test_campaign_with_epsilon_keeps_support_everywhere():
    acts = eligible()
    p = CampaignPolicy(epsilon=0.1).probabilities(ctx(), acts)
    assert np.all(p >= 0.1 / len(acts) - 1e-15)
    assert np.isclose(p.max(), 0.9 + 0.1 / len(acts))
    assert np.isclose(p.sum(), 1.0)


def test_actions_unknown_to_the_catalog_still_get_a_distribution():
    acts = [Action("nope-1", "email"), Action("nope-2", "sms")]
    for pol in (UniformPolicy(), CampaignPolicy(), SegmentPolicy()):
        p = pol.probabilities(ctx(), acts)
        assert np.isclose(p.sum(), 1.0) and np.all(p > 0)


def test_segment_rules_are_readable_and_drive_the_choice():
    rules = [
        SegmentRule(
            "cardio likes clinical data",
            specialties=("cardiology",),
            topics=("clinical_data",),
            channels=("rep_visit",),
        )
    ]
    assert segment_score(rules, "cardiology", 5, "clinical_data", "rep_visit") == 2
    assert segment_score(rules, "cardiology", 5, "safety", "email") == 0
    assert segment_score(rules, "pharmacist", 5, "clinical_data", "rep_visit") == 0
    pol = SegmentPolicy(epsilon=0.0, rules=rules)
    acts = eligible()
    p = pol.probabilities(ctx(), acts)
    best = [a for a, x in zip(acts, p, strict=True) if x > 0]
    assert best and all(
        CAT.item_for(a).topic == "clinical_data" and a.channel == "rep_visit" for a in best
    )


def test_decide_is_deterministic_from_seed_and_event_id():
    acts = eligible()
    pol = UniformPolicy(seed=4)
    a = [
        pol.decide(ctx(), acts, f"01J000000000000000000000{i:02d}").chosen_index for i in range(40)
    ]
    b = [
        UniformPolicy(seed=4).decide(ctx(), acts, f"01J000000000000000000000{i:02d}").chosen_index
        for i in range(40)
    ]
    c = [
        UniformPolicy(seed=5).decide(ctx(), acts, f"01J000000000000000000000{i:02d}").chosen_index
        for i in range(40)
    ]
    assert a == b and a != c
    d = pol.decide(ctx(), acts, "01J0000000000000000000000X")
    assert d.propensity == d.probabilities[d.chosen_index]


@pytest.mark.parametrize(
    "pol",
    [
        UniformPolicy(seed=2),
        CampaignPolicy(
            seed=3,
            epsilon=0.25,
            topic_sequence=["dosing", "safety"],
            period_days=3,
            anchor="2026-02-01",
        ),
        SegmentPolicy(seed=4, epsilon=0.05),
    ],
    ids=["uniform", "campaign", "segment"],
)
def test_save_load_round_trip(pol, tmp_path):
    path = tmp_path / "p.json"
    pol.save(path)
    back = type(pol).load(path)
    again = load_baseline(path)
    assert back.params == pol.params == again.params
    for c in (ctx(), ctx("general_practice", 2, date(2026, 3, 9))):
        acts = eligible(day=c.day)
        np.testing.assert_array_equal(back.probabilities(c, acts), pol.probabilities(c, acts))


def test_save_load_keeps_a_non_default_catalog(tmp_path):
    raw = dict(CAT.raw)
    raw["brand"] = "Other"
    cat = Catalog.from_dict(raw)
    pol = CampaignPolicy(catalog=cat)
    pol.save(tmp_path / "c.json")
    assert CampaignPolicy.load(tmp_path / "c.json").catalog.version == cat.version


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CampaignPolicy(epsilon=1.5), "epsilon must be in"),
        (lambda: SegmentPolicy(epsilon=-0.1), "epsilon must be in"),
        (lambda: CampaignPolicy(period_days=0), "period_days must be >= 1"),
        (lambda: CampaignPolicy(topic_sequence=["safety", "safety"]), "lists a topic twice"),
        (lambda: UniformPolicy().probabilities(ctx(), []), "no eligible actions"),
        (lambda: UniformPolicy().decide(ctx(), [], "e1"), "no eligible actions"),
        (
            lambda: greedy_probabilities(np.array([0, 0, 2]), np.ones(2, bool), 0.1),
            "decision 0 has no eligible action",
        ),
        (
            lambda: greedy_probabilities(np.array([0, 2]), np.zeros(2, bool), 0.1),
            "no preferred action",
        ),
    ],
)
def test_bad_inputs(make, message):
    with pytest.raises(PolicyError, match=message):
        make()


def test_load_refuses_the_wrong_file(tmp_path):
    p = tmp_path / "x.json"
    UniformPolicy().save(p)
    with pytest.raises(PolicyError, match="holds policy 'uniform', not 'campaign'"):
        CampaignPolicy.load(p)
    p.write_text("not json")
    with pytest.raises(PolicyError, match="cannot read saved policy"):
        load_baseline(p)
    p.write_text('{"policy": "vw"}')
    with pytest.raises(PolicyError, match="unknown baseline 'vw'"):
        load_baseline(p)
