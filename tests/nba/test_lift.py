"""Holdout lift: the cluster-robust interval, its coverage on a known truth, and
bad inputs refused with their name."""

from __future__ import annotations

import numpy as np
import pytest

from nba.lift import LiftError, holdout_lift


def test_means_and_cluster_variance_by_hand() -> None:
    y = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    hold = np.array([False, False, False, True, True, True])
    hcp = np.array(["a", "a", "b", "c", "d", "e"])
    est = holdout_lift(y, hold, hcp, alpha=0.05)
    assert est.treated_mean == pytest.approx(2 / 3) and est.holdout_mean == pytest.approx(1 / 3)
    # treated: HCP totals (2, 0), counts (2, 1), m = 2/3 -> 2 * ((2-4/3)^2 + (0-2/3)^2) / 9
    v_t = 2 * ((2 - 4 / 3) ** 2 + (2 / 3) ** 2) / 9
    v_h = 3 / 2 * ((1 / 3) ** 2 + (2 / 3) ** 2 + (1 / 3) ** 2) / 9
    half = 1.959963984540054 * np.sqrt(v_t + v_h)
    assert est.low == pytest.approx(1 / 3 - half) and est.high == pytest.approx(1 / 3 + half)
    assert (est.hcps_treated, est.hcps_holdout) == (2, 3)


def test_interval_covers_a_known_lift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(400):
        n_hcp = 200
        hold_hcp = rng.random(n_hcp) < 0.3
        base = rng.beta(2, 8, n_hcp)  # HCPs differ: decisions of one HCP correlate
        p = np.clip(base + np.where(hold_hcp, 0.0, 0.05), 0, 1)
        per = rng.integers(1, 6, n_hcp)
        hcp = np.repeat(np.arange(n_hcp), per)
        y = (rng.random(hcp.size) < p[hcp]).astype(float)
        covered += holdout_lift(y, hold_hcp[hcp], hcp).covers(0.05)
    assert 0.91 <= covered / 400 <= 0.99


def test_one_hcp_in_an_arm_gives_no_interval() -> None:
    est = holdout_lift([1.0, 0.0, 1.0], np.array([False, True, True]), ["a", "b", "c"])
    assert np.isnan(est.low) and est.as_dict()["low"] is None


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([1.0, 0.0], np.array([True]), ["a", "b"]), "must be 1-d of one length"),
        (([1.0, 0.0], np.array([1, 0]), ["a", "b"]), "holdout must be boolean"),
        (([1.0, np.nan], np.array([True, False]), ["a", "b"]), "y has a non-finite value"),
        (([1.0, 0.0], np.array([True, False]), ["a", "b"], 1.5), r"alpha must be in \(0, 1\)"),
    ],
)
def test_bad_inputs(args: tuple, match: str) -> None:
    with pytest.raises(LiftError, match=match):
        holdout_lift(*args)
