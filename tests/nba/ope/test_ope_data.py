"""LoggedData: validation of ragged inputs, with clear messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nba.domain import ValidationError
from nba.ope import LoggedData, OPEInputError, segment_sum


def _good(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        offsets=np.array([0, 2, 5, 6]),
        action_dist=np.array([0.7, 0.3, 0.2, 0.3, 0.5, 1.0]),
        reward=np.array([1.0, 0.0, 0.5]),
        pscore=np.array([0.5, 0.5, 1.0]),
        action=np.array([0, 2, 0]),
        pscore_all=np.array([0.5, 0.5, 0.25, 0.25, 0.5, 1.0]),
        estimated_rewards=np.array([0.6, 0.2, 0.1, 0.4, 0.3, 0.5]),
        action_ids=np.array(["a", "b", "a", "b", "c", "a"]),
        default_reward=np.array([False, True, False]),
        event_ids=np.array(["e0", "e1", "e2"]),
    )
    kw.update(over)
    return kw


def test_good_log_builds_and_derives() -> None:
    data = LoggedData(**_good())
    assert (data.n_decisions, data.n_flat) == (3, 6)
    assert data.sizes.tolist() == [2, 3, 1]
    assert data.chosen_flat.tolist() == [0, 4, 5]
    assert data.importance_weights.tolist() == pytest.approx([1.4, 1.0, 1.0])
    assert data.decision_of_flat.tolist() == [0, 0, 1, 1, 1, 2]


def test_arrays_are_read_only_and_callers_arrays_stay_writable() -> None:
    kw = _good()
    data = LoggedData(**kw)
    with pytest.raises(ValueError, match="read-only"):
        data.reward[0] = 5.0
    kw["reward"][0] = 0.25  # the caller's own array is untouched by freezing
    assert kw["reward"][0] == 0.25


def test_reward_range_accepted_and_normalised() -> None:
    data = LoggedData(**_good(reward_range=(0, 1)))
    assert data.reward_range == (0.0, 1.0)


BAD_INPUTS = [
    ({"offsets": np.array([0, 2, 2, 6])}, r"offsets: not strictly increasing at decision 1"),
    ({"offsets": np.array([1, 2, 5, 6])}, r"offsets: must start at 0"),
    ({"offsets": np.array([0])}, r"offsets: expected shape \(n \+ 1,\)"),
    ({"offsets": np.array([0.0, 2.0, 5.0, 6.0])}, r"offsets: expected integers"),
    ({"action_dist": np.array([0.7, 0.3, 0.2, 0.3, 0.5])}, r"action_dist: expected shape \(6,\)"),
    (
        {"action_dist": np.array([0.7, 0.3, 0.2, 0.3, 0.6, 1.0])},
        r"action_dist: probabilities do not sum to 1 .* decision 1 \(event_id e1\): sum 1\.1",
    ),
    (
        {"action_dist": np.array([1.2, -0.2, 0.2, 0.3, 0.5, 1.0])},
        r"action_dist: probability 1\.2 outside \[0, 1\] at decision 0",
    ),
    (
        {"action_dist": np.array([0.7, 0.3, 0.2, np.nan, 0.5, 1.0])},
        r"action_dist: NaN or infinite value at flat position 3 \(decision 1",
    ),
    ({"pscore": np.array([0.5, 0.0, 1.0])}, r"pscore: 1 value\(s\) outside \(0, 1\]; .*e1"),
    ({"pscore": np.array([0.5, 0.5, 1.5])}, r"pscore: .*outside \(0, 1\].*decision 2"),
    ({"pscore": np.array([0.5, 0.5, np.nan])}, r"pscore: NaN or infinite value at decision 2"),
    ({"pscore": np.array([0.5, 0.5])}, r"pscore: expected shape \(3,\)"),
    ({"reward": np.array([1.0, np.inf, 0.5])}, r"reward: NaN or infinite value at decision 1"),
    ({"reward": np.array(["1", "0", "0"])}, r"reward: expected numbers"),
    ({"action": np.array([0, 3, 0])}, r"action: position out of range at decision 1 .*: 3 for 3"),
    ({"action": np.array([0, -1, 0])}, r"action: position out of range at decision 1"),
    ({"action": np.array([0, 1])}, r"action: expected shape \(3,\)"),
    ({"action": np.array([0.0, 1.0, 0.0])}, r"action: expected integers"),
    (
        {"pscore_all": np.array([0.5, 0.5, 0.25, 0.25, 0.4, 1.0])},
        r"pscore_all: probabilities do not sum to 1 .*decision 1",
    ),
    (
        {"pscore": np.array([0.5, 0.25, 1.0])},
        r"pscore: disagrees with pscore_all for the logged action at decision 1",
    ),
    ({"estimated_rewards": np.ones(5)}, r"estimated_rewards: expected shape \(6,\)"),
    (
        {"estimated_rewards": np.array([0.6, 0.2, 0.1, 0.4, 0.3, np.nan])},
        r"estimated_rewards: NaN or infinite value at flat position 5 \(decision 2",
    ),
    ({"action_ids": np.array(["a", "b"])}, r"action_ids: expected shape \(6,\)"),
    ({"default_reward": np.array([0, 1, 0])}, r"default_reward: expected booleans"),
    ({"default_reward": np.array([True])}, r"default_reward: expected shape \(3,\)"),
    ({"event_ids": np.array(["e0"])}, r"event_ids: expected shape \(3,\)"),
    ({"reward_range": (1.0, 0.0)}, r"reward_range: need finite low < high"),
    ({"reward_range": (0.0, 0.9)}, r"reward: 1 at decision 0 \(event_id e0\) is outside"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUTS)
def test_bad_inputs_fail_with_clear_messages(override: dict[str, Any], message: str) -> None:
    with pytest.raises(OPEInputError, match=message):
        LoggedData(**_good(**override))


def test_input_error_is_a_validation_error() -> None:
    assert issubclass(OPEInputError, ValidationError)
    assert issubclass(OPEInputError, ValueError)


def test_segment_sum_matches_loop() -> None:
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 9, size=200)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = rng.normal(size=int(offsets[-1]))
    expected = [values[offsets[i] : offsets[i + 1]].sum() for i in range(200)]
    np.testing.assert_allclose(segment_sum(values, offsets), expected)


def test_with_target_swaps_the_policy_and_revalidates() -> None:
    data = LoggedData(**_good())
    other = data.with_target(np.array([0.5, 0.5, 0.0, 0.0, 1.0, 1.0]))
    assert other.importance_weights.tolist() == pytest.approx([1.0, 2.0, 1.0])
    np.testing.assert_array_equal(other.estimated_rewards, data.estimated_rewards)
    assert data.importance_weights.tolist() == pytest.approx([1.4, 1.0, 1.0])
    with pytest.raises(OPEInputError, match=r"action_dist: probabilities do not sum to 1"):
        data.with_target(np.full(6, 0.5))
