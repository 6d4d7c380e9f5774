"""The paired difference of two policies on the same decisions: exact zero for
identical policies, coverage of a known difference, the same resamples as the
single-policy bootstrap, narrower than two separate intervals, bad inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from nba.ope import DR, IPS, SNDR, SNIPS, LoggedData, OPEInputError
from nba.ope.estimators import INTERVAL_METHODS, bootstrap_replicates, bootstrap_replicates_joint

GATE = (IPS(), SNIPS(), DR(), SNDR())


def _uniform(data: LoggedData) -> np.ndarray:
    sizes = np.diff(data.offsets)
    return np.repeat(1.0 / sizes, sizes)


def _value(dist: np.ndarray, q: np.ndarray, offsets: np.ndarray) -> float:
    return float(np.add.reduceat(dist * q, offsets[:-1]).mean())


@pytest.mark.parametrize("method", INTERVAL_METHODS)
@pytest.mark.parametrize("est", GATE, ids=lambda e: e.name)
def test_identical_policies_differ_by_exactly_zero(
    simulate: Callable[..., Any], est: Any, method: str
) -> None:
    d = simulate(n=800, seed=4, estimated_rewards="noisy").data
    iv = est.estimate_difference(d, replace(d), 0.05, method, n_bootstrap=50, seed=1)
    assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert not iv.low > 0.0  # so a gate with min lift 0 never promotes it


def test_logging_policy_against_its_observed_value_is_exactly_zero(
    simulate: Callable[..., Any],
) -> None:
    d = simulate(n=500, seed=5).data
    assert d.pscore_all is not None
    on_policy = replace(d, action_dist=d.pscore_all)  # weights are all 1
    iv = IPS().estimate_difference(on_policy, None, method="bootstrap", n_bootstrap=50)
    assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)
    # against the observed value the estimate is V(target) - mean(reward)
    iv = SNIPS().estimate_difference(d, None, method="gaussian")
    assert iv.estimate == pytest.approx(SNIPS().estimate_policy_value(d) - d.reward.mean())


@pytest.mark.slow
@pytest.mark.parametrize("est", GATE, ids=lambda e: e.name)
def test_paired_interval_covers_the_known_difference(
    simulate: Callable[..., Any], est: Any
) -> None:
    """Contexts fixed, actions and rewards redrawn: the true difference of the two
    policies' values on these contexts is known exactly."""
    reps, cover = 200, {"gaussian": 0, "bootstrap": 0, "bernstein": 0}
    diffs = []
    for seed in range(reps):
        sim = simulate(n=1500, seed=seed, context_seed=7, estimated_rewards="noisy")
        d = sim.data
        base = replace(d, action_dist=_uniform(d))
        truth = sim.truth - _value(base.action_dist, sim.q_true, d.offsets)
        for method in cover:
            iv = est.estimate_difference(d, base, 0.05, method, n_bootstrap=200, seed=seed)
            cover[method] += iv.covers(truth)
            if method == "gaussian":
                diffs.append(iv.estimate - truth)
    assert truth > 0.05  # the target is clearly better than uniform on these contexts
    # nominal 95 %: 200 repetitions give a binomial SE of about 1.5 points
    assert 0.90 <= cover["gaussian"] / reps <= 0.99, cover
    assert 0.89 <= cover["bootstrap"] / reps <= 0.99, cover
    assert cover["bernstein"] / reps >= 0.95, cover  # finite-sample, conservative
    # and the point estimate of the difference is centred on the truth
    err = np.asarray(diffs)
    assert abs(err.mean()) < 4 * err.std(ddof=1) / np.sqrt(reps)


def test_joint_bootstrap_uses_the_single_policy_resamples(simulate: Callable[..., Any]) -> None:
    d = simulate(n=700, seed=8, estimated_rewards="noisy").data
    base = replace(d, action_dist=_uniform(d))
    for est in GATE:
        ta, tb = est._terms(d), est._terms(base)
        joint = bootstrap_replicates_joint([ta, tb], 128, seed=3)
        np.testing.assert_allclose(joint[:, 0], bootstrap_replicates(ta, 128, seed=3), rtol=1e-12)
        np.testing.assert_allclose(joint[:, 1], bootstrap_replicates(tb, 128, seed=3), rtol=1e-12)


@pytest.mark.parametrize("method", ["gaussian", "bootstrap"])
@pytest.mark.parametrize("est", GATE, ids=lambda e: e.name)
def test_pairing_narrows_the_interval_for_similar_policies(
    simulate: Callable[..., Any], est: Any, method: str
) -> None:
    """Two close policies share most of their noise: the paired interval on the
    difference is much narrower than the one implied by two separate intervals."""
    d = simulate(n=2000, seed=9, estimated_rewards="noisy").data
    close = replace(d, action_dist=0.9 * d.action_dist + 0.1 * _uniform(d))
    paired = est.estimate_difference(d, close, 0.05, method, n_bootstrap=300, seed=2)
    a = est.estimate_interval(d, 0.05, method, n_bootstrap=300, seed=2)
    b = est.estimate_interval(close, 0.05, method, n_bootstrap=300, seed=2)
    assert paired.estimate == pytest.approx(a.estimate - b.estimate)
    separate = np.hypot(a.width, b.width)  # width if the two were independent
    assert paired.width < 0.5 * separate


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"reward": "flip"}, r"not the same logged decisions as data \(reward differ\)"),
        ({"offsets": "other log"}, r"\(offsets differ\)"),
        ({"estimated_rewards": None}, r"estimated_rewards is set on one side only"),
        ({"estimated_rewards": "noise"}, r"\(estimated_rewards differ\)"),
    ],
)
def test_a_baseline_on_other_decisions_is_refused(
    simulate: Callable[..., Any], change: dict[str, Any], match: str
) -> None:
    d = simulate(n=300, seed=10, estimated_rewards="noisy").data
    assert d.estimated_rewards is not None
    key, how = next(iter(change.items()))
    if how == "flip":
        value: Any = 1.0 - d.reward
    elif how == "other log":
        other_log = simulate(n=300, seed=12, estimated_rewards="noisy").data
        with pytest.raises(OPEInputError, match=match):
            DR().estimate_difference(d, other_log, method="gaussian")
        return
    elif how == "noise":
        value = d.estimated_rewards + 0.01
    else:
        value = None
    other = replace(d, **{key: value})
    with pytest.raises(OPEInputError, match=match):
        DR().estimate_difference(d, other, method="gaussian")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, r"alpha: must be in \(0, 1\)"),
        ({"method": "jackknife"}, r"method: expected one of"),
        ({"n_bootstrap": 5}, r"n_bootstrap: need an integer >= 10"),
    ],
)
def test_bad_difference_arguments(
    simulate: Callable[..., Any], kwargs: dict[str, Any], match: str
) -> None:
    d = simulate(n=100, seed=11).data
    with pytest.raises(OPEInputError, match=match):
        SNIPS().estimate_difference(d, replace(d, action_dist=_uniform(d)), **kwargs)
