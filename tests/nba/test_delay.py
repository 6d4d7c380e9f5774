"""Delay-corrected labels: cell means from closed windows, shrinkage, bad inputs,
and the bias they remove on data whose late rewards are known."""

from __future__ import annotations

import numpy as np
import pytest

from nba.delay import DelayCorrection, DelayCorrectionError


def test_label_is_the_shrunk_cell_mean_and_unseen_cells_keep_the_partial_reward():
    dc = DelayCorrection(["email", "rep_visit"], prior_weight=2.0)
    dc.observe(np.array([0, 0, 0]), np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.6, 0.6]))
    lab = dc.label(np.array([0, 1, 0]), np.array([0.0, 0.0, 0.2]))
    # email cell at 0: (0 + 0.6 + 0.6 + 2 * 0.0) / (3 + 2); rep_visit and email@0.2 unseen
    assert lab.tolist() == pytest.approx([1.2 / 5, 0.0, 0.2])
    assert dc.n_observed_ == 3
    cells = dc.cells()
    assert [(c.channel, c.partial, c.n) for c in cells] == [("email", 0.0, 3)]
    assert cells[0].mean_final == pytest.approx(0.4)


def test_observations_accumulate_across_calls():
    dc = DelayCorrection(["email"], prior_weight=0.0)
    dc.observe(np.array([0]), np.array([0.2]), np.array([0.8]))
    dc.observe(np.array([0, 0]), np.array([0.2, 0.2]), np.array([0.2, 0.2]))
    assert dc.label(np.array([0]), np.array([0.2]))[0] == pytest.approx(1.2 / 3)


def test_labels_remove_the_bias_of_partial_rewards_on_data_with_known_late_rewards():
    rng = np.random.default_rng(5)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ch = rng.integers(0, 2, n)
        early = rng.random(n) < np.where(ch == 0, 0.12, 0.05)  # seen by the labelling age
        late_p = np.where(ch == 0, 0.03, 0.3)  # rep visits respond later, emails earlier
        late = rng.random(n) < np.where(early, 2 * late_p, late_p)
        partial = np.where(early, 0.2, 0.0)
        final = partial + np.where(late, 0.6, 0.0) * np.where(ch == 0, 1.0, 1.6)
        return ch, partial, final

    dc = DelayCorrection(["email", "rep_visit"], prior_weight=20.0)
    dc.observe(*draw(40_000))
    ch, partial, final = draw(40_000)
    labels = dc.label(ch, partial)
    bias_partial = float(np.mean(partial - final))
    bias_label = float(np.mean(labels - final))
    se = float(np.std(final) / np.sqrt(final.size))
    assert bias_partial < -20 * se  # the partial reward is far too low
    assert abs(bias_label) < 4 * se  # the corrected label is right on average
    for c in (0, 1):  # and within each channel
        sel = ch == c
        assert abs(np.mean(labels[sel] - final[sel])) < 4 * np.std(final[sel]) / np.sqrt(sel.sum())


BAD = [
    (dict(channels=[]), None, r"channels must not be empty"),
    (dict(channels=["email"], prior_weight=-1.0), None, r"prior_weight must be a finite number"),
    (dict(channels=["email"], prior_weight=float("nan")), None, r"prior_weight must be"),
    (dict(channels=["email"]), ([0, 0], [0.0]), r"one length, got shapes \(2,\) and \(1,\)"),
    (dict(channels=["email"]), ([1], [0.0]), r"channel indices must be integers in \[0, 1\)"),
    (dict(channels=["email"]), ([0.5], [0.0]), r"channel indices must be integers"),
    (dict(channels=["email"]), ([0], [float("nan")]), r"partial rewards must be finite"),
]


@pytest.mark.parametrize(("kwargs", "call", "match"), BAD)
def test_bad_inputs_are_refused_with_what_was_wrong(kwargs, call, match):
    with pytest.raises(DelayCorrectionError, match=match):
        dc = DelayCorrection(**kwargs)
        assert call is not None
        dc.label(np.array(call[0]), np.array(call[1]))


def test_observe_refuses_final_rewards_of_another_shape_and_keeps_what_it_had():
    dc = DelayCorrection(["email"], prior_weight=0.0)
    dc.observe(np.array([0]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(DelayCorrectionError, match=r"final must be finite and shaped like"):
        dc.observe(np.array([0, 0]), np.array([0.0, 0.0]), np.array([1.0]))
    assert dc.n_observed_ == 1 and dc.label(np.array([0]), np.array([0.0]))[0] == 1.0
