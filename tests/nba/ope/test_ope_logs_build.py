"""Joined log -> LoggedLog -> LoggedData: ragged layout, validation with event ids,
reward bounds, and ground truth aligned with the simulator's logs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nba.logs.join import join_rewards, load_joined
from nba.logs.schema import DECISIONS, OUTCOMES
from nba.ope import IPS, OPEInputError
from nba.ope.logs import LoggedLog, ground_truth_for, reward_bounds, true_value
from nba.reward import RewardDefinition
from simulators.hcp.world import simulate

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)  # the time of the `decision_row` fixture's rows

DecisionRow = Callable[..., dict[str, Any]]


def _joined(rows: list[dict[str, Any]], outcomes: list[dict[str, Any]] | None = None) -> pa.Table:
    d = pa.Table.from_pylist(rows, schema=DECISIONS)
    o = pa.Table.from_pylist(outcomes or [], schema=OUTCOMES)
    return join_rewards(d, o, RewardDefinition.default()).table


def test_ragged_layout_and_fields(decision_row: DecisionRow) -> None:
    rows = [
        decision_row("e1"),
        decision_row(
            "e2",
            hcp_id="h2",
            ts=T0 + timedelta(hours=1),
            action_ids=["a@email"],
            probabilities=[1.0],
            chosen_index=0,
            chosen_action_id="a@email",
            propensity=1.0,
        ),
    ]
    outcomes = [
        dict(
            event_id="e2",
            ts=T0 + timedelta(hours=2),
            type="opened",
            value=1.0,
            source="hcp",
            source_id="s1",
        ),
    ]
    log = LoggedLog.from_table(_joined(rows, outcomes), reward_range=(-1.0, 4.7))
    assert log.offsets.tolist() == [0, 3, 4]
    assert log.action_ids.tolist() == ["a@email", "b@email", "c@email", "a@email"]
    assert log.pscore_all.tolist() == [0.2, 0.3, 0.5, 1.0]
    assert log.action.tolist() == [2, 0]
    assert log.pscore.tolist() == [0.5, 1.0]
    assert log.reward.tolist() == [0.0, 0.2]
    assert log.default_reward is not None and log.default_reward.tolist() == [True, False]
    assert log.event_ids.tolist() == ["e1", "e2"]
    assert log.hcp_ids.tolist() == ["h1", "h2"]
    assert log.observed_value == pytest.approx(0.1)
    assert log.time_order().tolist() == [0, 1]
    # the logging policy evaluated on its own log: every weight is 1
    data = log.data()
    assert data.importance_weights.tolist() == [1.0, 1.0]
    assert IPS().estimate_policy_value(data) == pytest.approx(0.1)
    # a target that always picks the first action
    target = np.array([1.0, 0.0, 0.0, 1.0])
    d2 = log.data(target)
    assert d2.importance_weights.tolist() == [0.0, 1.0]
    assert d2.reward_range == (-1.0, 4.7)


BAD_ROWS = [
    (dict(probabilities=[0.2, 0.3]), r"event e1: 3 action_ids but 2 probabilities"),
    (dict(chosen_index=3), r"event e1: chosen_index 3 outside its 3 eligible actions"),
    (dict(probabilities=[0.2, 0.3, 0.6]), r"event e1: logged probabilities sum to 1\.1"),
    (dict(probabilities=[-0.2, 0.7, 0.5]), r"event e1: logged probability -0\.2 outside"),
    (dict(propensity=0.3), r"event e1: propensity 0\.3 is not the served probability 0\.5"),
    (
        dict(propensity=0.0, probabilities=[0.5, 0.5, 0.0]),
        r"event e1: propensity 0\.0 outside \(0, 1\]",
    ),
    (dict(action_ids=[], probabilities=[], chosen_index=0), r"event e1: no eligible actions"),
]


@pytest.mark.parametrize(("over", "match"), BAD_ROWS)
def test_bad_logs_name_the_event(
    over: dict[str, Any], match: str, decision_row: DecisionRow
) -> None:
    d = pa.Table.from_pylist(
        [decision_row("e0", hcp_id="h0"), decision_row("e1", **over)], schema=DECISIONS
    )
    with pytest.raises(OPEInputError, match=match):
        LoggedLog.from_table(d.append_column("reward", pa.array([0.0, 0.0])))


def test_missing_columns_and_empty_log(decision_row: DecisionRow) -> None:
    with pytest.raises(OPEInputError, match=r"missing column\(s\) reward"):
        LoggedLog.from_table(pa.Table.from_pylist([decision_row("e1")], schema=DECISIONS))
    with pytest.raises(OPEInputError, match="no decisions to evaluate"):
        LoggedLog.from_table(_joined([decision_row("e1")]).slice(0, 0))


def test_reward_bounds_follow_the_definition() -> None:
    base = {
        "name": "r",
        "version": "1",
        "window_days": 7,
        "weights": {"opened": 0.2, "clicked": 0.6, "meeting_held": 1.0, "unsubscribed": -1.0},
    }
    assert reward_bounds(RewardDefinition.from_dict(base)) == (-1.0, 1.8)
    mx = RewardDefinition.from_dict({**base, "aggregation": "max"})
    assert reward_bounds(mx) == (-1.0, 1.0)
    clipped = RewardDefinition.from_dict({**base, "clip": [0.0, 1.0]})
    assert reward_bounds(clipped) == (0.0, 1.0)
    shifted = RewardDefinition.from_dict({**base, "default": -2.0})
    assert reward_bounds(shifted) == (-2.0, 1.8)


@pytest.fixture(scope="module")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim_logs")
    simulate(hcps=150, days=8, policy="campaign", seed=3, out=out)
    return out


def test_ground_truth_aligned_with_the_join(sim_logs: Path) -> None:
    rd = RewardDefinition.default()
    log = LoggedLog.from_table(load_joined(sim_logs, rd).table, reward_bounds(rd))
    gt = ground_truth_for(sim_logs, log)
    assert gt is not None and gt.reward_definition == rd.id
    assert gt.expected_rewards.shape == (log.n_flat,)
    # reversing the decision order reverses the ground truth with it
    rev = LoggedLog.from_table(log.table.take(pa.array(np.arange(log.n_decisions)[::-1])))
    gt_rev = ground_truth_for(sim_logs, rev)
    assert gt_rev is not None
    assert true_value(gt_rev.expected_rewards, rev.pscore_all, rev.offsets) == pytest.approx(
        true_value(gt.expected_rewards, log.pscore_all, log.offsets)
    )
    # the true value of a one-hot policy is the mean truth of the chosen entries
    one_hot = np.zeros(log.n_flat)
    one_hot[log.chosen_flat] = 1.0
    assert true_value(gt.expected_rewards, one_hot, log.offsets) == pytest.approx(
        float(np.mean(gt.expected_rewards[log.chosen_flat]))
    )


def test_ground_truth_missing_rows_fail_and_absent_truth_is_none(
    sim_logs: Path, tmp_path: Path, decision_row: DecisionRow
) -> None:
    rd = RewardDefinition.default()
    log = LoggedLog.from_table(load_joined(sim_logs, rd).table)
    foreign = _joined([decision_row("not-in-sim")])
    with pytest.raises(OPEInputError, match="no row for event not-in-sim"):
        ground_truth_for(sim_logs, LoggedLog.from_table(foreign))
    assert ground_truth_for(tmp_path, log) is None
