"""One stage/topic table (nba.topics) for the simulated world and the rep-facing reasons."""

from __future__ import annotations

from datetime import date

import numpy as np

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import ADOPTION_STAGES, Action, HCPProfile
from nba.reward import RewardDefinition
from nba.topics import STAGE_TOPICS, stage_topic_matrix, suits_stage
from serving.reasons import candidate_reasons
from simulators.hcp.config import WorldConfig
from simulators.hcp.response import ResponseModel


def test_table_covers_every_stage_with_catalog_topics():
    cat = Catalog.default()
    assert tuple(STAGE_TOPICS) == ADOPTION_STAGES
    for stage, topics in STAGE_TOPICS.items():
        assert topics and set(topics) <= set(cat.topics), stage
        assert len(set(topics)) == len(topics), stage


def test_matrix_and_lookup_agree_and_unknown_names_match_nothing():
    topics = ("efficacy", "safety", "no_such_topic")
    m = stage_topic_matrix(topics)
    assert m.shape == (len(ADOPTION_STAGES), 3)
    for si, stage in enumerate(ADOPTION_STAGES):
        for ti, topic in enumerate(topics):
            assert m[si, ti] == float(suits_stage(stage, topic))
    assert not m[:, 2].any()
    assert not suits_stage("no_such_stage", "efficacy")


def test_simulator_stage_match_is_the_shared_table():
    cat = Catalog.default()
    resp = ResponseModel(cat, WorldConfig(), RewardDefinition.default())
    np.testing.assert_array_equal(resp.stage_match, stage_topic_matrix(cat.topics))
    assert dict(WorldConfig().stage_topics) == dict(STAGE_TOPICS)


def test_rep_reason_for_the_stage_follows_the_shared_table():
    cat = Catalog.default()
    for stage in ADOPTION_STAGES:
        hcp = HCPProfile("h1", "cardiology", 5, "US", stage, frozenset({"email"}))
        ctx = DecisionContext(hcp=hcp, day=date(2026, 3, 2))
        for topic in cat.topics:
            reasons = candidate_reasons(ctx, Action("X-1", "email"), topic)
            stage_reason = any(f"stage_topic:{stage}:{topic}" in r.features for r in reasons)
            assert stage_reason == suits_stage(stage, topic), (stage, topic)
