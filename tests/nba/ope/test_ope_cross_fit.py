"""Cross-fitting: no decision scored by a model that saw it; reward models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nba.ope import (
    DM,
    DR,
    LoggedData,
    OPEInputError,
    PerActionMean,
    RidgeRewardModel,
    block_folds,
    cross_fit,
    flat_positions,
    group_folds,
)


def test_flat_positions_matches_loop() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, size=50)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    dec = rng.permutation(50)[:20]
    expected = [p for i in dec for p in range(offsets[i], offsets[i + 1])]
    assert flat_positions(offsets, dec).tolist() == expected


def test_group_folds_keep_groups_together_and_are_seeded() -> None:
    groups = np.repeat(np.arange(30), 5)[np.random.default_rng(1).permutation(150)]
    f = group_folds(groups, 5, seed=3)
    for g in range(30):
        assert np.unique(f[groups == g]).size == 1
    assert np.bincount(f).tolist() == [30] * 5
    assert np.array_equal(f, group_folds(groups, 5, seed=3))
    assert not np.array_equal(f, group_folds(groups, 5, seed=4))


def test_block_folds_are_contiguous() -> None:
    assert block_folds(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_no_decision_is_scored_by_a_model_trained_on_it(simulate: Callable[..., Any]) -> None:
    d = simulate(n=300, seed=0).data
    folds = group_folds(np.arange(300) // 10, 4, seed=0)  # "HCPs" of 10 decisions each
    seen: list[set[int]] = []

    def fit(train: np.ndarray) -> int:
        seen.append(set(train.tolist()))
        return len(seen) - 1

    def predict(model: int, test: np.ndarray) -> np.ndarray:
        assert not (seen[model] & set(test.tolist()))
        assert len(seen[model]) + len(test) == 300
        # encode which model produced the prediction
        return np.full(flat_positions(d.offsets, test).size, float(model))

    res = cross_fit(d.offsets, folds, fit, predict)
    assert len(seen) == 4
    model_of_decision = res.estimated_rewards[d.offsets[:-1]]
    for k in range(4):
        assert np.all(model_of_decision[folds == k] == k)
        # every flat entry of a decision comes from the same model
    assert np.array_equal(res.estimated_rewards, np.repeat(model_of_decision, d.sizes))
    assert res.heldout_mse is None and res.mean_heldout_mse is None


def test_heldout_mse_and_cross_fitted_dr(simulate: Callable[..., Any]) -> None:
    log = simulate(n=4000, seed=1, max_actions=4)
    d = log.data
    # action identity = (position, decision size): a code per position in the ragged sets
    codes = (np.arange(d.n_flat) - np.repeat(d.offsets[:-1], d.sizes)).astype(np.int64)
    folds = block_folds(d.n_decisions, 5)

    def fit(train: np.ndarray) -> PerActionMean:
        return PerActionMean(n_actions=4, prior_strength=5.0).fit(
            codes[d.chosen_flat[train]], d.reward[train]
        )

    def predict(model: PerActionMean, test: np.ndarray) -> np.ndarray:
        return model.predict(codes[flat_positions(d.offsets, test)])

    res = cross_fit(d.offsets, folds, fit, predict, action=d.action, reward=d.reward)
    assert res.heldout_mse is not None and len(res.heldout_mse) == 5
    for k in range(5):
        test = folds == k
        m = fit(np.flatnonzero(~test))
        pred = m.predict(codes[d.chosen_flat[test]])
        assert res.heldout_mse[k] == pytest.approx(np.mean((pred - d.reward[test]) ** 2))
    with_model = LoggedData(
        d.offsets,
        d.action_dist,
        d.reward,
        d.pscore,
        d.action,
        estimated_rewards=res.estimated_rewards,
    )
    dr = DR().estimate_policy_value(with_model)
    assert abs(dr - log.truth) < 0.03
    assert DM().estimate_policy_value(with_model) != dr


def test_ridge_recovers_coefficients() -> None:
    rng = np.random.default_rng(2)
    x = np.column_stack([np.ones(5000), rng.normal(size=(5000, 3))])
    beta = np.array([0.5, 1.0, -2.0, 0.25])
    y = x @ beta + rng.normal(0, 0.1, size=5000)
    model = RidgeRewardModel(l2=1e-3).fit(x, y)
    np.testing.assert_allclose(model.coef_, beta, atol=0.01)
    assert model.predict(x[:3]).shape == (3,)


def test_per_action_mean_shrinks_toward_global_mean() -> None:
    m = PerActionMean(n_actions=3, prior_strength=2.0).fit([0, 0, 1], [1.0, 1.0, 0.0])
    rbar = 2.0 / 3.0
    assert m.predict([0, 1, 2]).tolist() == pytest.approx(
        [(2.0 + 2 * rbar) / 4, (0.0 + 2 * rbar) / 3, rbar]
    )


BAD = [
    (lambda: group_folds(np.array([1, 1, 2]), 3), r"n_folds: need an integer in \[2, 2\]"),
    (lambda: group_folds(np.zeros((2, 2)), 2), r"groups: expected a 1-d array"),
    (lambda: block_folds(3, 1), r"n_folds: need an integer in \[2, 3\]"),
    (
        lambda: cross_fit([0, 1, 2], [0, 0], lambda t: None, lambda m, t: np.zeros(t.size)),
        r"folds: need at least two distinct folds",
    ),
    (
        lambda: cross_fit([0, 1, 2], [0], lambda t: None, lambda m, t: np.zeros(t.size)),
        r"folds: expected 2 integer fold ids",
    ),
    (
        lambda: cross_fit([0, 2, 4], [0, 1], lambda t: None, lambda m, t: np.zeros(1)),
        r"predict: returned shape \(1,\) for fold 0, expected \(2,\)",
    ),
    (
        lambda: cross_fit([0, 1, 2], [0, 1], lambda t: None, lambda m, t: np.full(1, np.nan)),
        r"predict: NaN or infinite prediction in fold 0",
    ),
    (lambda: PerActionMean(0), r"n_actions: must be >= 1"),
    (lambda: PerActionMean(2).fit([0, 2], [1.0, 0.0]), r"action codes must be in \[0, 2\)"),
    (lambda: PerActionMean(2).fit([0], [1.0, 0.0]), r"fit: codes \(1,\) and reward \(2,\)"),
    (lambda: RidgeRewardModel(l2=0), r"l2: must be > 0"),
    (lambda: RidgeRewardModel().fit(np.ones((3, 2)), np.ones(2)), r"fit: features \(3, 2\)"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_cross_fit_inputs(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(OPEInputError, match=message):
        call()
