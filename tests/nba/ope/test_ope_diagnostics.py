"""Diagnostics: ESS, weights, support, default rewards, warnings; evaluate_policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nba.ope import IPS, SNIPS, LoggedData, diagnose, evaluate_policy


def two_action_log(n: int, target: tuple[float, float], **extra: Any) -> LoggedData:
    """n decisions with actions ("x", "y"); logging 50/50; logged action alternates."""
    action = np.arange(n) % 2
    return LoggedData(
        offsets=np.arange(0, 2 * n + 1, 2),
        action_dist=np.tile(np.array(target), n),
        reward=np.zeros(n),
        pscore=np.full(n, 0.5),
        action=action,
        **extra,
    )


def test_ess_and_weights_by_hand() -> None:
    d = two_action_log(4, (0.8, 0.2))  # weights 1.6, 0.4, 1.6, 0.4
    diag = diagnose(d)
    assert diag.n == 4
    assert diag.ess == pytest.approx(4.0**2 / (4 * 1.6**2 / 2 + 4 * 0.4**2 / 2))
    assert (diag.max_weight, diag.mean_weight) == pytest.approx((1.6, 1.0))
    assert diag.unsupported_share is None and diag.unlogged_share is None
    assert diag.default_reward_share is None


def test_unsupported_share_from_pscore_all() -> None:
    # decision 0: logging never offers action 1; the target puts 0.3 on it
    d = LoggedData(
        offsets=np.array([0, 2, 4]),
        action_dist=np.array([0.7, 0.3, 0.5, 0.5]),
        reward=np.array([1.0, 0.0]),
        pscore=np.array([1.0, 0.5]),
        action=np.array([0, 1]),
        pscore_all=np.array([1.0, 0.0, 0.5, 0.5]),
    )
    diag = diagnose(d)
    assert diag.unsupported_share == pytest.approx(0.15)
    assert any("poor support: 15.0%" in w and "could not choose" in w for w in diag.warnings)
    assert not any("poor support" in w for w in diagnose(d, max_unsupported_share=0.2).warnings)


def test_unlogged_share_per_action_id() -> None:
    n = 100
    ids = np.tile(np.array(["x", "y"]), n)
    ids[1::2][:10] = "z"  # "z" is eligible in 10 decisions but never logged there
    action = np.zeros(n, dtype=np.int64)  # only "x" is ever logged
    d = LoggedData(
        offsets=np.arange(0, 2 * n + 1, 2),
        action_dist=np.tile([0.6, 0.4], n),
        reward=np.zeros(n),
        pscore=np.full(n, 0.5),
        action=action,
        action_ids=ids,
    )
    diag = diagnose(d)
    assert diag.unlogged_share == pytest.approx(0.4)
    assert diag.unlogged_actions == (("y", pytest.approx(0.36)), ("z", pytest.approx(0.04)))
    assert any("never chosen in this log (e.g. y (36.0%), z (4.0%))" in w for w in diag.warnings)


def test_integer_action_ids_and_default_share() -> None:
    d = two_action_log(
        10,
        (0.5, 0.5),
        action_ids=np.tile([7, 8], 10),
        default_reward=np.array([True] * 3 + [False] * 7),
    )
    diag = diagnose(d)
    assert diag.unlogged_share == 0.0 and diag.unlogged_actions == ()
    assert diag.default_reward_share == pytest.approx(0.3)


def test_tiny_ess_warns() -> None:
    d = two_action_log(10, (0.5, 0.5))
    assert any("effective sample size is tiny: 10.0 of 10" in w for w in diagnose(d).warnings)
    big = two_action_log(1000, (0.5, 0.5))
    assert diagnose(big).warnings == ()
    skewed = two_action_log(1000, (0.999, 0.001))
    assert skewed.importance_weights.max() == pytest.approx(1.998)
    assert diagnose(skewed).ess == pytest.approx(
        1000.0**2 / (500 * (1.998**2 + 0.002**2)), rel=1e-9
    )
    # logging tries action 1 in 0.3 % of decisions; the target always wants it
    n = 5000
    action = (np.random.default_rng(0).random(n) < 0.003).astype(np.int64)
    rare = LoggedData(
        offsets=np.arange(0, 2 * n + 1, 2),
        action_dist=np.tile([0.0, 1.0], n),
        reward=np.zeros(n),
        pscore=np.where(action == 1, 0.003, 0.997),
        action=action,
    )
    diag = diagnose(rare)
    assert diag.ess == pytest.approx(action.sum())
    assert any(w.startswith("effective sample size is tiny") for w in diag.warnings)


def test_mean_weight_far_from_one_warns() -> None:
    # every logged action has target probability 0.1 at pscore 0.5: mean weight 0.2
    d = LoggedData(
        offsets=np.arange(0, 401, 2),
        action_dist=np.tile([0.1, 0.9], 200),
        reward=np.zeros(200),
        pscore=np.full(200, 0.5),
        action=np.zeros(200, dtype=np.int64),
    )
    assert any("mean importance weight is 0.200" in w for w in diagnose(d).warnings)


def test_evaluate_policy_rows(simulate: Callable[..., Any]) -> None:
    log = simulate(n=2000, seed=0, action_ids=None)
    results = evaluate_policy(log.data, [IPS(), SNIPS()], n_bootstrap=100, seed=1)
    assert [r.estimator for r in results] == ["ips", "snips"]
    assert results[0].diagnostics is results[1].diagnostics
    row = results[1].as_row()
    assert row["estimator"] == "snips" and row["interval"] == "bootstrap"
    assert row["low"] <= row["estimate"] <= row["high"]
    assert row["n"] == 2000 and row["ess"] > 0
    again = evaluate_policy(log.data, [IPS(), SNIPS()], n_bootstrap=100, seed=1)
    assert [r.interval for r in again] == [r.interval for r in results]


def test_string_action_ids_are_reported_as_strings() -> None:
    import numpy as np

    from nba.ope import LoggedData, diagnose

    data = LoggedData(
        offsets=np.array([0, 2, 4]),
        action_dist=np.array([0.5, 0.5, 0.5, 0.5]),
        reward=np.array([1.0, 0.0]),
        pscore=np.array([0.5, 0.5]),
        action=np.array([0, 0]),
        action_ids=np.array(["a@email", "b@email", "a@email", "b@email"], dtype=object),
    )
    assert diagnose(data).unlogged_actions == (("b@email", 0.5),)
