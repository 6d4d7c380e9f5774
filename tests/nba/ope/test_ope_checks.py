"""The three evaluation warnings, each firing and not firing on constructed data
whose truth is known."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nba.ope import IPS, SNIPS, LoggedData, OPEInputError, PerActionMean, cross_fit, diagnose
from nba.ope.checks import (
    DISAGREE_CODE,
    LOW_ESS_CODE,
    REWARD_MODEL_CODE,
    check_min_ess_share,
    disagreement_checks,
    ess_check,
    reward_model_check,
    warning_tags,
)


# ----------------------------------------------------------------- reward model
def _action_log(n: int, seed: int, effect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four actions, uniform logging; reward ~ Bernoulli(0.1 + effect * action / 3)."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(0, 4 * n + 1, 4, dtype=np.int64)
    action = rng.integers(0, 4, size=n)
    reward = (rng.random(n) < 0.1 + effect * action / 3).astype(np.float64)
    return offsets, action, reward


def _cross_fit_per_action(n: int, seed: int, effect: float) -> Any:
    offsets, action, reward = _action_log(n, seed, effect)
    ids = np.tile(np.arange(4), n)
    folds = np.random.default_rng(seed + 1).integers(0, 3, size=n)

    def fit(train: np.ndarray) -> PerActionMean:
        return PerActionMean(n_actions=4, prior_strength=0.0).fit(action[train], reward[train])

    def predict(model: PerActionMean, test: np.ndarray) -> np.ndarray:
        return model.predict(ids[: 4 * test.size])

    return cross_fit(offsets, folds, fit, predict, action=action, reward=reward)


def test_reward_model_that_learned_the_action_effect_is_not_flagged() -> None:
    res = _cross_fit_per_action(4000, seed=0, effect=0.6)  # rewards 0.1 .. 0.7 by action
    assert res.mean_heldout_mse < res.mean_constant_mse
    assert reward_model_check(res.mean_heldout_mse, res.mean_constant_mse) is None


def test_reward_model_on_pure_noise_is_flagged_and_marks_the_dr_family() -> None:
    res = _cross_fit_per_action(600, seed=0, effect=0.0)  # reward independent of everything
    assert res.mean_heldout_mse >= res.mean_constant_mse  # extra parameters only add noise
    w = reward_model_check(res.mean_heldout_mse, res.mean_constant_mse, ["snips", "dm", "dr"])
    assert w is not None and w.code == REWARD_MODEL_CODE
    assert w.estimators == ("dm", "dr")  # SNIPS does not use the model
    assert "DM, DR unreliable" in w.message
    assert w.values["heldout_mse"] == res.mean_heldout_mse


def test_reward_model_equal_to_the_constant_is_flagged() -> None:
    # ">= the constant": a model that predicts the constant exactly has not learned anything
    assert reward_model_check(0.01, 0.01) is not None


# ------------------------------------------------------------------ disagreement
@pytest.mark.parametrize(
    ("a", "b", "fires", "disjoint", "text"),
    [
        # the README tour: IPS 0.0066 with an interval excluding SNIPS 0.0987
        ((0.0066, 0.0010, 0.0122), (0.0987, 0.0700, 0.1300), True, True, "disjoint"),
        # overlapping intervals, but SNIPS's point is outside IPS's interval
        ((0.080, 0.060, 0.100), (0.105, 0.090, 0.120), True, False, "snips lies outside ips"),
        # both points inside the other's interval
        ((0.100, 0.080, 0.120), (0.105, 0.090, 0.120), False, False, ""),
        # identical
        ((0.100, 0.080, 0.120), (0.100, 0.080, 0.120), False, False, ""),
    ],
)
def test_disagreement_rule(
    a: tuple[float, float, float],
    b: tuple[float, float, float],
    fires: bool,
    disjoint: bool,
    text: str,
) -> None:
    out = disagreement_checks("pol", "gaussian", [("ips", *a), ("snips", *b)])
    assert len(out) == int(fires)
    if fires:
        (w,) = out
        assert w.code == DISAGREE_CODE and w.policy == "pol" and w.estimators == ("ips", "snips")
        assert w.values["disjoint"] == float(disjoint)
        assert text in w.message


def test_ips_and_snips_disagree_on_a_log_with_badly_scaled_weights(
    simulate: Callable[..., Any],
) -> None:
    """Constructed so IPS is wrong: the logged propensities are twice the truth for
    half the decisions; SNIPS renormalises the weights, IPS does not."""
    d = simulate(n=4000, seed=1, bernoulli=False).data
    ok = disagreement_checks(
        None,
        "gaussian",
        [
            (e.name, iv.estimate, iv.low, iv.high)
            for e in (IPS(), SNIPS())
            for iv in [e.estimate_interval(d, method="gaussian")]
        ],
    )
    assert ok == []  # correct propensities: the two agree
    bad = LoggedData(
        offsets=d.offsets,
        action_dist=d.action_dist,
        reward=d.reward,
        pscore=np.minimum(d.pscore * 3.0, 1.0),
        action=d.action,
    )
    res = [
        (e.name, iv.estimate, iv.low, iv.high)
        for e in (IPS(), SNIPS())
        for iv in [e.estimate_interval(bad, method="gaussian")]
    ]
    (w,) = disagreement_checks(None, "gaussian", res)
    assert w.estimators == ("ips", "snips")


# ------------------------------------------------------------------------ ESS
def test_ess_warning_on_weights_of_known_ess(simulate: Callable[..., Any]) -> None:
    """Two actions, logging 1/2 each, target deterministic on action 0: the weights
    are 2 on the half of the decisions that logged action 0 and 0 elsewhere, so
    ESS = (sum w)^2 / sum w^2 = n0 exactly."""
    n = 1000
    rng = np.random.default_rng(0)
    action = rng.integers(0, 2, size=n)
    d = LoggedData(
        offsets=np.arange(0, 2 * n + 1, 2, dtype=np.int64),
        action_dist=np.tile([1.0, 0.0], n),
        reward=rng.random(n),
        pscore=np.full(n, 0.5),
        action=action,
    )
    diag = diagnose(d)
    n0 = int(np.sum(action == 0))
    assert diag.ess == pytest.approx(n0)
    assert ess_check("p", diag.ess, n, 0.1) is None  # about 50 % of n
    w = ess_check("p", diag.ess, n, 0.6)
    assert w is not None and w.code == LOW_ESS_CODE
    assert w.values == {"ess": pytest.approx(n0), "n": float(n), "min_ess_share": 0.6}
    assert "below 60%" in w.message


def test_ess_default_threshold_is_ten_percent() -> None:
    assert ess_check(None, 99.0, 1000) is not None
    assert ess_check(None, 100.0, 1000) is None


@pytest.mark.parametrize(
    ("value", "match"),
    [(-0.1, "got -0.1"), (1.5, "got 1.5"), (float("nan"), "got nan"), ("0.1", "got '0.1'")],
)
def test_bad_min_ess_share(value: object, match: str) -> None:
    with pytest.raises(
        OPEInputError, match=rf"--min-ess-share: must be a number in \[0, 1\], {match}"
    ):
        check_min_ess_share(value)


def test_warning_tags_name_every_warning() -> None:
    w1 = reward_model_check(0.02, 0.01)
    w2 = ess_check("segment", 5.0, 100)
    assert w1 is not None and w2 is not None
    tags = warning_tags([w1, w2.to_dict()])
    assert tags["warnings"] == f'["{REWARD_MODEL_CODE}", "{LOW_ESS_CODE}"]'
    assert tags["warning.1"].startswith(f"{LOW_ESS_CODE}: segment: effective sample size 5.0")
    assert w2.line().startswith("warning: segment: effective sample size")
