"""Calibration regression: the default world stays inside the calibration ranges of
docs/simulator.md (docs/simulator.md gives the figures of a larger run)."""

from __future__ import annotations

import pytest

from simulators.hcp.calibrate import email_rates
from simulators.hcp.world import simulate


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib") / "logs"
    summary = simulate(hcps=2000, days=30, policy="campaign", seed=3, out=out)
    return summary, email_rates(out)


def test_email_open_click_and_unsubscribe_rates(calib):
    summary, rates = calib
    assert rates["emails"] > 4000
    assert 0.10 <= rates["open_rate"] <= 0.16
    assert rates["click_rate"] < 0.25 * rates["open_rate"]
    assert 0 < rates["unsubscribe_rate"] < 0.006
    by_spec = rates["open_rate_by_specialty"]
    assert min(by_spec.values()) < 0.05 and max(by_spec.values()) > 0.10
    assert abs(summary.by_channel["email"]["open_rate"] - rates["open_rate"]) < 1e-12


def test_no_see_share_and_late_outcomes(calib):
    summary, _ = calib
    assert 0.40 <= summary.no_see_share <= 0.50
    assert 0 < summary.late_outcomes < 0.02 * summary.outcomes
