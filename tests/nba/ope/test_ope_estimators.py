"""Estimators: hand-computed values, invariants, ragged correctness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nba.ope import (
    DM,
    DR,
    ESTIMATORS,
    IPS,
    SNDR,
    SNIPS,
    BaseOffPolicyEstimator,
    ClippedDR,
    LoggedData,
    OPEInputError,
    SwitchDR,
    make_estimator,
)


def tiny() -> LoggedData:
    """Three decisions with 2, 3 and 1 eligible actions.

    weights: 0.7/0.5 = 1.4, 0.5/0.5 = 1, 1/1 = 1
    DM terms: 0.7*0.6 + 0.3*0.2 = 0.48; 0.2*0.1 + 0.3*0.4 + 0.5*0.3 = 0.29; 0.5
    residuals r - q(a_i): 1 - 0.6 = 0.4; 0 - 0.3 = -0.3; 0.5 - 0.5 = 0
    """
    return LoggedData(
        offsets=np.array([0, 2, 5, 6]),
        action_dist=np.array([0.7, 0.3, 0.2, 0.3, 0.5, 1.0]),
        reward=np.array([1.0, 0.0, 0.5]),
        pscore=np.array([0.5, 0.5, 1.0]),
        action=np.array([0, 2, 0]),
        pscore_all=np.array([0.5, 0.5, 0.25, 0.25, 0.5, 1.0]),
        estimated_rewards=np.array([0.6, 0.2, 0.1, 0.4, 0.3, 0.5]),
    )


HAND_VALUES = [
    (IPS(), (1.4 * 1.0 + 1.0 * 0.0 + 1.0 * 0.5) / 3),
    (SNIPS(), (1.4 + 0.0 + 0.5) / (1.4 + 1.0 + 1.0)),
    (DM(), (0.48 + 0.29 + 0.5) / 3),
    (DR(), (0.48 + 1.4 * 0.4 + 0.29 - 0.3 + 0.5) / 3),
    (SNDR(), (0.48 + 0.29 + 0.5) / 3 + (1.4 * 0.4 - 0.3) / 3.4),
    (SwitchDR(threshold=1.2), (0.48 + 0.29 - 0.3 + 0.5) / 3),  # w=1.4 switched to DM
    (SwitchDR(threshold=1.4), (0.48 + 1.4 * 0.4 + 0.29 - 0.3 + 0.5) / 3),  # kept at w=tau
    (ClippedDR(clip=1.2), (0.48 + 1.2 * 0.4 + 0.29 - 0.3 + 0.5) / 3),
]


@pytest.mark.parametrize(("estimator", "expected"), HAND_VALUES, ids=lambda x: repr(x))
def test_hand_computed_values(estimator: BaseOffPolicyEstimator, expected: float) -> None:
    assert estimator.estimate_policy_value(tiny()) == pytest.approx(expected, rel=1e-12)


def test_names_params_and_factory() -> None:
    assert set(ESTIMATORS) == {"ips", "snips", "dm", "dr", "sndr", "switch_dr", "clipped_dr"}
    for name, cls in ESTIMATORS.items():
        est = make_estimator(name)
        assert isinstance(est, cls) and est.name == name
        assert type(est)(**est.params).params == est.params  # params read back from __init__
    assert SwitchDR(threshold=3).params == {"threshold": 3.0}
    assert repr(ClippedDR(clip=2)) == "ClippedDR(clip=2.0)"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_estimator("magic"), r"estimator: unknown name 'magic'; known: ips"),
        (lambda: SwitchDR(threshold=-1), r"threshold: must be a number >= 0"),
        (lambda: ClippedDR(clip=0), r"clip: must be a number > 0"),
        (
            lambda: make_estimator("ips", clip=3),
            r"estimator 'ips': unknown parameter\(s\) clip; accepts: none",
        ),
        (
            lambda: make_estimator("switch_dr", clip=3),
            r"unknown parameter\(s\) clip; accepts: threshold",
        ),
    ],
)
def test_bad_estimator_construction(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(OPEInputError, match=message):
        build()


@pytest.mark.parametrize("name", ["dm", "dr", "sndr", "switch_dr", "clipped_dr"])
def test_reward_model_estimators_need_estimated_rewards(name: str) -> None:
    d = tiny()
    bare = LoggedData(d.offsets, d.action_dist, d.reward, d.pscore, d.action)
    with pytest.raises(OPEInputError, match=rf"{name}: needs estimated_rewards"):
        make_estimator(name).estimate_policy_value(bare)


def test_snips_undefined_when_no_logged_action_has_target_probability() -> None:
    data = LoggedData(
        offsets=np.array([0, 2]),
        action_dist=np.array([0.0, 1.0]),
        reward=np.array([1.0]),
        pscore=np.array([0.5]),
        action=np.array([0]),
    )
    assert IPS().estimate_policy_value(data) == 0.0
    with pytest.raises(OPEInputError, match="self-normalised estimate undefined"):
        SNIPS().estimate_policy_value(data)


# --------------------------------------------------------------- reference
def reference_values(data: LoggedData, threshold: float, clip: float) -> dict[str, float]:
    """Plain per-decision loop, written straight from the formulas."""
    n = data.n_decisions
    q = data.estimated_rewards
    assert q is not None
    ips = dm = dr = sw = cl = sw_sum = 0.0
    num = den = 0.0
    for i in range(n):
        lo, hi = int(data.offsets[i]), int(data.offsets[i + 1])
        pi = [float(x) for x in data.action_dist[lo:hi]]
        qi = [float(x) for x in q[lo:hi]]
        a = int(data.action[i])
        w = pi[a] / float(data.pscore[i])
        r = float(data.reward[i])
        dmi = sum(p * v for p, v in zip(pi, qi, strict=True))
        ips += w * r
        num += w * r
        den += w
        dm += dmi
        dr += dmi + w * (r - qi[a])
        sw += dmi + (w * (r - qi[a]) if w <= threshold else 0.0)
        cl += dmi + min(w, clip) * (r - qi[a])
        sw_sum += w * (r - qi[a])
    return {
        "ips": ips / n,
        "snips": num / den,
        "dm": dm / n,
        "dr": dr / n,
        "sndr": dm / n + sw_sum / den,
        "switch_dr": sw / n,
        "clipped_dr": cl / n,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ragged_result_equals_per_decision_reference(
    simulate: Callable[..., Any], seed: int
) -> None:
    log = simulate(n=400, seed=seed, min_actions=1, max_actions=9, estimated_rewards="noisy")
    w = log.data.importance_weights
    threshold = float(np.quantile(w, 0.8))  # some corrections switched off
    clip = float(np.quantile(w, 0.7))
    ref = reference_values(log.data, threshold, clip)
    params = {"switch_dr": {"threshold": threshold}, "clipped_dr": {"clip": clip}}
    for name in ESTIMATORS:
        got = make_estimator(name, **params.get(name, {})).estimate_policy_value(log.data)
        assert got == pytest.approx(ref[name], rel=1e-10, abs=1e-12), name


def test_ragged_result_equals_padded_computation(simulate: Callable[..., Any]) -> None:
    """Pad each decision to the largest set with zero-probability dummy actions."""
    log = simulate(n=300, seed=5, min_actions=1, max_actions=7, estimated_rewards="noisy")
    d = log.data
    q = d.estimated_rewards
    assert q is not None
    k = int(d.sizes.max())
    pi = np.zeros((d.n_decisions, k))
    qq = np.zeros((d.n_decisions, k))
    col = np.arange(d.n_flat) - np.repeat(d.offsets[:-1], d.sizes)
    pi[d.decision_of_flat, col] = d.action_dist
    qq[d.decision_of_flat, col] = q
    rows = np.arange(d.n_decisions)
    w = pi[rows, d.action] / d.pscore
    dm = (pi * qq).sum(axis=1)
    assert DM().estimate_policy_value(d) == pytest.approx(dm.mean(), rel=1e-12)
    dr = (dm + w * (d.reward - qq[rows, d.action])).mean()
    assert DR().estimate_policy_value(d) == pytest.approx(dr, rel=1e-12)


# -------------------------------------------------------------- invariants
def test_ips_of_logging_policy_on_its_own_log_is_the_mean_reward(
    simulate: Callable[..., Any],
) -> None:
    d = simulate(n=500, seed=3).data
    own = LoggedData(d.offsets, d.pscore_all, d.reward, d.pscore, d.action)
    assert np.all(own.importance_weights == 1.0)
    assert IPS().estimate_policy_value(own) == pytest.approx(float(d.reward.mean()), rel=1e-12)
    assert SNIPS().estimate_policy_value(own) == pytest.approx(float(d.reward.mean()), rel=1e-12)


def test_ips_is_unbiased_over_seeds(simulate: Callable[..., Any]) -> None:
    """Same contexts, actions and rewards redrawn: mean of IPS within 4 SE of the truth."""
    reps = [simulate(n=300, seed=s, context_seed=7) for s in range(300)]
    truth = reps[0].truth
    assert all(r.truth == truth for r in reps)
    est = np.array([IPS().estimate_policy_value(r.data) for r in reps])
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - truth) < 4 * se


@pytest.mark.parametrize("seed", range(10))
def test_snips_stays_within_observed_reward_range(simulate: Callable[..., Any], seed: int) -> None:
    log = simulate(n=50, seed=seed, bernoulli=False, reward_offset=-0.3, logging_temperature=0.3)
    v = SNIPS().estimate_policy_value(log.data)
    assert log.data.reward.min() <= v <= log.data.reward.max()


def test_dr_with_perfect_model_and_noiseless_rewards_equals_dm_exactly(
    simulate: Callable[..., Any],
) -> None:
    """Residuals r_i - q(a_i) are all 0, so every correction vanishes whatever the weights."""
    d = simulate(n=300, seed=2, bernoulli=False, estimated_rewards="perfect").data
    dm = DM().estimate_policy_value(d)
    for est in (DR(), SNDR(), SwitchDR(threshold=1.0), ClippedDR(clip=2.0)):
        assert est.estimate_policy_value(d) == pytest.approx(dm, abs=1e-12)


def test_dr_with_perfect_model_equals_dm_in_expectation(simulate: Callable[..., Any]) -> None:
    """With noisy rewards the correction has mean 0 given the contexts (DM is then the truth)."""
    reps = [
        simulate(n=300, seed=s, context_seed=3, estimated_rewards="perfect") for s in range(200)
    ]
    dm = DM().estimate_policy_value(reps[0].data)
    assert dm == pytest.approx(reps[0].truth, rel=1e-12)
    dr = np.array([DR().estimate_policy_value(r.data) for r in reps])
    ips = np.array([IPS().estimate_policy_value(r.data) for r in reps])
    assert abs(dr.mean() - dm) < 4 * dr.std(ddof=1) / np.sqrt(dr.size)
    assert dr.std() < ips.std()  # the model removes variance, not just bias


def test_identical_inputs_identical_outputs_and_inputs_unchanged(
    simulate: Callable[..., Any],
) -> None:
    log = simulate(n=200, seed=9, estimated_rewards="noisy")
    before = {k: np.array(getattr(log.data, k), copy=True) for k in ("action_dist", "reward")}
    twin = simulate(n=200, seed=9, estimated_rewards="noisy")
    for name in ESTIMATORS:
        est = make_estimator(name)
        assert est.estimate_policy_value(log.data) == est.estimate_policy_value(twin.data)
        assert est.estimate_policy_value(log.data) == est.estimate_policy_value(log.data)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(log.data, k), v)


def test_switch_dr_limits_are_dr_and_dm(simulate: Callable[..., Any]) -> None:
    d = simulate(n=200, seed=4, estimated_rewards="noisy").data
    assert SwitchDR(threshold=np.inf).estimate_policy_value(d) == DR().estimate_policy_value(d)
    assert SwitchDR(threshold=0.0).estimate_policy_value(d) == pytest.approx(
        DM().estimate_policy_value(d), abs=1e-12
    )
