"""Reward definitions: loading, identity, reward_of semantics, and errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nba.reward import RewardDefinition, RewardDefinitionError

GOOD = """name = "engagement"
version = "3"
window_days = 7
aggregation = "sum"
default = 0.0

[weights]
opened = 0.2
clicked = 0.6
unsubscribed = -1.0
"""


def write(tmp_path: Path, text: str, name: str = "reward.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_definition() -> None:
    rd = RewardDefinition.default()
    assert rd.name == "engagement" and rd.aggregation in ("sum", "max")
    assert rd.weights["unsubscribed"] < 0 < rd.weights["opened"] < rd.weights["clicked"]
    assert rd.id.startswith(f"{rd.name}@{rd.version}#")


def test_load_and_identity(tmp_path: Path) -> None:
    a = RewardDefinition.load(write(tmp_path, GOOD, "a.toml"))
    b = RewardDefinition.load(write(tmp_path, "# same content\n" + GOOD, "b.toml"))
    c = RewardDefinition.load(write(tmp_path, GOOD.replace("0.6", "0.7"), "c.toml"))
    assert a.id == b.id != c.id
    assert a.id.startswith("engagement@3#")
    assert a.source.endswith("a.toml")
    assert RewardDefinition.from_dict(a.to_dict()).id == a.id
    assert a.window_days == 7


@pytest.mark.parametrize(
    ("kw", "types", "reward"),
    [
        ({}, [], 0.0),
        ({"default_reward": -0.1}, [], -0.1),
        ({}, ["opened"], 0.2),
        ({}, ["opened", "clicked"], 0.8),
        ({}, ["opened", "opened", "clicked"], 0.8),  # a type counts once
        ({}, ["opened", "delivered"], 0.2),  # unweighted types add nothing
        ({}, ["delivered"], 0.0),  # ... but the decision is not "without outcome"
        ({"default_reward": 0.5}, ["delivered"], 0.0),
        ({}, ["opened", "unsubscribed"], -0.8),
        ({"aggregation": "max"}, ["opened", "clicked"], 0.6),
        ({"aggregation": "max"}, ["opened", "unsubscribed"], 0.2),
        ({"aggregation": "max"}, ["unsubscribed"], -1.0),
        ({"clip": (-0.5, 0.5)}, ["opened", "clicked"], 0.5),
        ({"clip": (-0.5, 0.5)}, ["unsubscribed"], -0.5),
        ({"clip": (-0.5, 0.5), "default_reward": 0.9}, [], 0.9),  # the default is not clipped
    ],
)
def test_reward_of(kw: dict[str, Any], types: list[str], reward: float) -> None:
    rd = RewardDefinition("t", "1", {"opened": 0.2, "clicked": 0.6, "unsubscribed": -1.0}, **kw)
    assert rd.reward_of(types) == reward


def test_expected_reward_is_linear_in_type_probabilities() -> None:
    rd = RewardDefinition("t", "1", {"opened": 0.2, "clicked": 0.6})
    p_open = np.array([[0.1, 0.5], [0.0, 1.0]])
    p_click = np.array([[0.05, 0.1], [0.0, 0.5]])
    got = rd.expected_reward({"opened": p_open, "clicked": p_click, "delivered": p_open})
    np.testing.assert_allclose(got, 0.2 * p_open + 0.6 * p_click)
    assert got.shape == (2, 2)
    with pytest.raises(RewardDefinitionError, match="needs aggregation 'sum', no clip"):
        RewardDefinition("t", "1", {"opened": 1.0}, aggregation="max").expected_reward(
            {"opened": p_open}
        )
    with pytest.raises(RewardDefinitionError, match="no outcome probabilities"):
        rd.expected_reward({})


def test_costs_are_subtracted_per_channel_after_clip() -> None:
    rd = RewardDefinition(
        "v",
        "1",
        {"meeting_held": 80.0, "sample_requested": 60.0, "rx_signal": 400.0},
        costs={"rep_visit": 150.0, "email": 0.25},
        clip=(-50.0, 200.0),
    )
    assert rd.reward_of({"meeting_held", "sample_requested"}) == 140.0
    assert rd.reward_of({"meeting_held", "sample_requested"}, action_id="c@rep_visit") == -10.0
    assert rd.reward_of({"meeting_held", "rx_signal"}, action_id="rep_visit") == 50.0  # clipped
    assert rd.reward_of([], action_id="c@email") == -0.25  # the default pays the cost too
    assert rd.reward_of([], action_id="c@portal") == 0.0  # a channel without a cost
    assert rd.to_dict()["costs"] == {"email": 0.25, "rep_visit": 150.0}
    assert RewardDefinition.from_dict(rd.to_dict()).id == rd.id


def test_packaged_value_definition_and_engagement_default() -> None:
    value, engagement = RewardDefinition.business_value(), RewardDefinition.default()
    assert value.name == "value" and engagement.name == "engagement"
    assert not engagement.costs  # the default reward (and its id) is unchanged by costs
    assert "costs" not in engagement.to_dict()
    assert value.weights["rx_signal"] > value.weights["sample_requested"] > 0
    assert value.costs["rep_visit"] > value.costs["email"] > 0


BAD = [
    (GOOD.replace('name = "engagement"', 'name = ""'), "field 'name': must not be empty"),
    (GOOD.replace('version = "3"', 'version = ""'), "field 'version': must not be empty"),
    (GOOD.replace("window_days = 7", "window_days = 0"), "field 'window_days': must be a positive"),
    (GOOD.replace("window_days = 7", "window_days = -2"), "field 'window_days'"),
    (GOOD.replace('"sum"', '"mean"'), "field 'aggregation': 'mean' is not one of"),
    (GOOD.replace("default = 0.0", 'default = "none"'), "field 'default': must be a finite number"),
    (
        GOOD.replace("clicked = 0.6", 'clicked = "a lot"'),
        "field 'weights.clicked': must be a finite",
    ),
    (GOOD.replace("clicked = 0.6", "clicked = nan"), "field 'weights.clicked'"),
    (GOOD.replace("clicked = 0.6", "clicked = true"), "field 'weights.clicked'"),
    (GOOD + "clip = [1.0, -1.0]\n", "field 'weights.clip'"),
    (
        GOOD.replace("default = 0.0", "default = 0.0\nclip = [1.0, -1.0]"),
        "field 'clip': lower bound 1.0 is not below",
    ),
    (
        GOOD.replace("default = 0.0", "default = 0.0\nclip = [1.0]"),
        "field 'clip': must be [low, high]",
    ),
    (GOOD.replace("default = 0.0", "default = 0.0\nwindow = 3"), "field 'window': unknown field"),
    (GOOD.split("[weights]")[0], "field 'weights': must be a table"),
    (GOOD.split("[weights]")[0] + "[weights]\n", "field 'weights': must give at least one"),
    ("name = [", "not valid TOML"),
    (GOOD + "teleported = 1.0\n", ":11: field 'weights.teleported': unknown outcome type"),
    (GOOD + "[costs]\nemail = 0.3\nfax = 1.0\n", ":13: field 'costs.fax': unknown channel 'fax'"),
    (GOOD + "[costs]\nemail = -1\n", ":12: field 'costs.email': must not be negative"),
    (GOOD + '[costs]\nemail = "cheap"\n', ":12: field 'costs.email': must be a finite"),
    (GOOD + "costs = 3\n", "field 'weights.costs': unknown outcome type"),
    (GOOD.replace("[weights]", "costs = 3\n[weights]"), ":7: field 'costs': must be a table"),
]


@pytest.mark.parametrize(("text", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_definitions_name_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text, "bad_reward.toml")
    with pytest.raises(RewardDefinitionError) as info:
        RewardDefinition.load(path)
    assert str(path) in str(info.value)
    assert match in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RewardDefinitionError, match=r"gone\.toml: cannot read"):
        RewardDefinition.load(tmp_path / "gone.toml")
