"""Contract every registered estimator must pass (found through ESTIMATORS)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest

from nba.ope import ESTIMATORS, INTERVAL_METHODS, Interval, LoggedData, make_estimator
from nba.ope.estimators import IntervalMethod


@pytest.fixture(params=sorted(ESTIMATORS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data(simulate: Callable[..., Any]) -> LoggedData:
    return simulate(
        n=600,
        seed=21,
        min_actions=1,
        max_actions=8,
        estimated_rewards="noisy",
        reward_range=(0.0, 1.0),
    ).data


def _permute_actions(d: LoggedData, seed: int) -> LoggedData:
    """Shuffle the order of the eligible actions inside every decision."""
    rng = np.random.default_rng(seed)
    key = d.decision_of_flat * 2.0 + rng.random(d.n_flat)  # sort within each segment only
    perm = np.argsort(key, kind="stable")
    new_pos = np.empty_like(perm)
    new_pos[perm] = np.arange(d.n_flat)
    action = new_pos[d.chosen_flat] - d.offsets[:-1]
    assert d.pscore_all is not None and d.estimated_rewards is not None
    return LoggedData(
        d.offsets,
        d.action_dist[perm],
        d.reward,
        d.pscore,
        action,
        pscore_all=d.pscore_all[perm],
        estimated_rewards=d.estimated_rewards[perm],
    )


def _permute_decisions(d: LoggedData, seed: int) -> LoggedData:
    order = np.random.default_rng(seed).permutation(d.n_decisions)
    sizes = d.sizes[order]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    starts = d.offsets[:-1][order]
    flat = np.repeat(starts - (offsets[:-1]), sizes) + np.arange(int(offsets[-1]))
    assert d.pscore_all is not None and d.estimated_rewards is not None
    return LoggedData(
        offsets,
        d.action_dist[flat],
        d.reward[order],
        d.pscore[order],
        d.action[order],
        pscore_all=d.pscore_all[flat],
        estimated_rewards=d.estimated_rewards[flat],
    )


def test_name_params_and_float_result(name: str, data: LoggedData) -> None:
    est = make_estimator(name)
    assert est.name == name
    assert type(est)(**est.params).params == est.params
    v = est.estimate_policy_value(data)
    assert isinstance(v, float) and math.isfinite(v)
    assert est.estimate_policy_value(data) == v


def test_invariant_to_action_order_within_decisions(name: str, data: LoggedData) -> None:
    est = make_estimator(name)
    shuffled = _permute_actions(data, seed=1)
    assert est.estimate_policy_value(shuffled) == pytest.approx(
        est.estimate_policy_value(data), rel=1e-12, abs=1e-14
    )


def test_invariant_to_decision_order(name: str, data: LoggedData) -> None:
    est = make_estimator(name)
    shuffled = _permute_decisions(data, seed=2)
    assert est.estimate_policy_value(shuffled) == pytest.approx(
        est.estimate_policy_value(data), rel=1e-12, abs=1e-14
    )


@pytest.mark.parametrize("method", INTERVAL_METHODS)
def test_every_interval_method_works(name: str, data: LoggedData, method: str) -> None:
    est = make_estimator(name)
    kind = cast(IntervalMethod, method)
    iv = est.estimate_interval(data, alpha=0.1, method=kind, n_bootstrap=100, seed=4)
    assert isinstance(iv, Interval)
    assert (iv.method, iv.alpha) == (method, 0.1)
    assert iv.estimate == est.estimate_policy_value(data)
    assert math.isfinite(iv.low) and math.isfinite(iv.high) and iv.low < iv.high
    if method != "bootstrap":
        assert iv.low <= iv.estimate <= iv.high
    again = est.estimate_interval(data, alpha=0.1, method=kind, n_bootstrap=100, seed=4)
    assert again == iv
    narrower = est.estimate_interval(data, alpha=0.3, method=kind, n_bootstrap=100, seed=4)
    assert narrower.width <= iv.width
