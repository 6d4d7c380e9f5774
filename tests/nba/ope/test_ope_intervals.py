"""Intervals: bootstrap, Gaussian and empirical Bernstein."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
from scipy import stats

from nba.ope import DM, DR, IPS, SNDR, SNIPS, LoggedData, OPEInputError, make_estimator
from nba.ope.estimators import IntervalMethod

#: Relative tolerance for results that go through BLAS reductions: the same
#: math summed in another order (another chunk shape, thread or CPU) differs in
#: the last few bits. 1e-12 is ~4,500 ulps of a double: far above any rounding
#: effect at these sizes, far below any real change in an interval.
BLAS_RTOL = 1e-12


def tiny(**over: Any) -> LoggedData:
    kw: dict[str, Any] = dict(
        offsets=np.array([0, 2, 5, 6]),
        action_dist=np.array([0.7, 0.3, 0.2, 0.3, 0.5, 1.0]),
        reward=np.array([1.0, 0.0, 0.5]),
        pscore=np.array([0.5, 0.5, 1.0]),
        action=np.array([0, 2, 0]),
        estimated_rewards=np.array([0.6, 0.2, 0.1, 0.4, 0.3, 0.5]),
    )
    kw.update(over)
    return LoggedData(**kw)


def test_gaussian_ips_matches_hand_formula() -> None:
    terms = np.array([1.4, 0.0, 0.5])
    half = stats.norm.ppf(0.975) * terms.std(ddof=1) / math.sqrt(3)
    iv = IPS().estimate_interval(tiny(), method="gaussian")
    assert (iv.estimate, iv.low, iv.high) == pytest.approx(
        (terms.mean(), terms.mean() - half, terms.mean() + half)
    )
    assert (iv.method, iv.alpha) == ("gaussian", 0.05)


def test_gaussian_snips_uses_delta_method() -> None:
    w, r = np.array([1.4, 1.0, 1.0]), np.array([1.0, 0.0, 0.5])
    v = (w * r).sum() / w.sum()
    psi = w * (r - v) / w.mean()
    half = stats.norm.ppf(0.95) * psi.std(ddof=1) / math.sqrt(3)
    iv = SNIPS().estimate_interval(tiny(), alpha=0.1, method="gaussian")
    assert (iv.low, iv.high) == pytest.approx((v - half, v + half))


def test_bernstein_ips_matches_maurer_pontil_formula() -> None:
    data = tiny(reward_range=(0.0, 1.0))
    x = np.array([1.4, 0.0, 0.5])
    wmax, alpha = 2.0, 0.05
    log_term = math.log(4 / alpha)
    half = math.sqrt(2 * x.var(ddof=1) * log_term / 3) + 7 * wmax * log_term / (3 * 2)
    iv = IPS().estimate_interval(data, alpha=alpha, method="bernstein", weight_bound=wmax)
    assert iv.low == pytest.approx(max(x.mean() - half, 0.0))  # clipped to the a priori range
    assert iv.high == pytest.approx(min(x.mean() + half, wmax * 1.0))
    assert iv.notes == ()


def test_bernstein_says_when_bounds_come_from_the_data() -> None:
    iv = IPS().estimate_interval(tiny(), method="bernstein")
    assert any("weight bound taken from the observed weights" in n for n in iv.notes)
    assert any("reward range taken from the observed rewards" in n for n in iv.notes)


def test_bernstein_uses_pscore_all_for_the_weight_bound(simulate: Callable[..., Any]) -> None:
    log = simulate(n=2000, seed=1, estimated_rewards="noisy", reward_range=(0.0, 1.0))
    for name in ("ips", "snips", "dm", "dr", "sndr", "switch_dr", "clipped_dr"):
        iv = make_estimator(name).estimate_interval(log.data, method="bernstein")
        assert iv.notes == ()
        assert iv.low <= iv.estimate <= iv.high, name
        g = make_estimator(name).estimate_interval(log.data, method="gaussian")
        assert iv.width > g.width, name  # a finite-sample bound is the conservative one


def test_same_seed_same_bootstrap_interval_whatever_the_threads(
    simulate: Callable[..., Any],
) -> None:
    d = simulate(n=3000, seed=2, estimated_rewards="noisy").data
    for est in (IPS(), SNIPS(), DR(), SNDR()):
        a = est.estimate_interval(d, n_bootstrap=200, seed=11, n_jobs=1)
        b = est.estimate_interval(d, n_bootstrap=200, seed=11, n_jobs=3)
        c = est.estimate_interval(d, n_bootstrap=200, seed=12, n_jobs=1)
        # same counts in the same order; BLAS may still round differently per thread
        assert (a.estimate, a.low, a.high) == pytest.approx(
            (b.estimate, b.low, b.high), rel=BLAS_RTOL, abs=1e-15
        )
        assert (a.method, a.alpha, a.notes) == (b.method, b.alpha, b.notes)
        assert (a.low, a.high) != pytest.approx((c.low, c.high), rel=1e-6)


def test_bootstrap_is_chunked_without_changing_results(
    simulate: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nba.ope.estimators as mod

    d = simulate(n=1000, seed=3).data
    whole = SNIPS().estimate_interval(d, n_bootstrap=64, seed=5)
    monkeypatch.setattr(mod, "_CHUNK_CELLS", 1000 * 3)  # 3 resamples per chunk
    chunked = SNIPS().estimate_interval(d, n_bootstrap=64, seed=5)
    # Rows come from the block's stream in order, so the resamples are the same;
    # the (rows, n) @ (n, k) product may sum in another order for another chunk
    # shape (BLAS kernels differ by shape and CPU): equal up to rounding.
    assert (chunked.estimate, chunked.low, chunked.high) == pytest.approx(
        (whole.estimate, whole.low, whole.high), rel=BLAS_RTOL, abs=1e-15
    )
    assert (chunked.method, chunked.alpha, chunked.notes) == (
        whole.method,
        whole.alpha,
        whole.notes,
    )
    # and the comparison is not vacuous: another seed moves the interval far more
    other = SNIPS().estimate_interval(d, n_bootstrap=64, seed=6)
    assert (other.low, other.high) != pytest.approx((whole.low, whole.high), rel=1e-6)


def test_bootstrap_recomputes_the_snips_denominator() -> None:
    """Constant rewards: SNIPS is that constant on every resample only if the
    denominator is resampled together with the numerator."""
    rng = np.random.default_rng(0)
    n = 500
    offsets = np.arange(0, 2 * n + 1, 2)
    p_log = rng.uniform(0.05, 0.95, size=n)
    pscore_all = np.column_stack([p_log, 1 - p_log]).ravel()
    action = (rng.random(n) > p_log).astype(np.int64)
    data = LoggedData(
        offsets=offsets,
        action_dist=np.tile([0.9, 0.1], n),
        reward=np.full(n, 0.7),
        pscore=pscore_all[offsets[:-1] + action],
        action=action,
    )
    sn = SNIPS().estimate_interval(data, n_bootstrap=300)
    assert (sn.low, sn.high) == pytest.approx((0.7, 0.7), abs=1e-12)
    ips = IPS().estimate_interval(data, n_bootstrap=300)
    assert ips.width > 0.05


def test_multinomial_counts_and_exact_bootstrap_moments() -> None:
    """Counts rows sum to n; over many resamples the bootstrap mean and variance of
    IPS match their exact values (the sample mean and sigma^2 / n with ddof 0)."""
    from nba.ope.estimators import _counts, _Terms, bootstrap_replicates

    cnt = _counts(np.random.default_rng(0), 5, 7, "multinomial")
    assert cnt.shape == (5, 7) and np.all(cnt.sum(axis=1) == 7) and np.all(cnt == np.round(cnt))
    pois = _counts(np.random.default_rng(0), 50, 2001, "poisson")
    assert pois.shape == (50, 2001)
    assert pois.mean() == pytest.approx(1.0, abs=0.01) and pois.var() == pytest.approx(1, abs=0.02)

    x = np.array([0.0, 1.0, 3.0, 0.5, 2.0])
    reps = bootstrap_replicates(_Terms(plain=x), 40_000, seed=3)
    assert reps.mean() == pytest.approx(x.mean(), abs=0.01)
    assert reps.var() == pytest.approx(x.var() / 5, rel=0.03)


def test_poisson_resampling_agrees_with_multinomial(simulate: Callable[..., Any]) -> None:
    d = simulate(n=5000, seed=4).data
    for est in (IPS(), SNIPS()):
        mult = est.estimate_interval(d, n_bootstrap=1000, seed=1)
        pois = est.estimate_interval(d, n_bootstrap=1000, seed=1, resampling="poisson")
        assert pois.width == pytest.approx(mult.width, rel=0.15)
        assert pois.low == pytest.approx(mult.low, abs=0.25 * mult.width)


BAD_CALLS = [
    ({"alpha": 0.0}, r"alpha: must be in \(0, 1\), got 0\.0"),
    ({"alpha": 1.5}, r"alpha: must be in \(0, 1\)"),
    ({"alpha": "0.05"}, r"alpha: must be in \(0, 1\)"),
    ({"method": "magic"}, r"method: expected one of \('bootstrap', 'gaussian', 'bernstein'\)"),
    ({"n_bootstrap": 5}, r"n_bootstrap: need an integer >= 10, got 5"),
    ({"resampling": "jackknife"}, r"resampling: expected 'multinomial' or 'poisson'"),
    ({"n_jobs": 0}, r"n_jobs: need an integer >= 1, got 0"),
    ({"method": "bernstein", "weight_bound": -1.0}, r"weight_bound: must be positive"),
    ({"method": "bernstein", "weight_bound": 1.2}, r"weight_bound: 1\.2 is below the largest"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CALLS)
def test_bad_interval_calls(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OPEInputError, match=message):
        IPS().estimate_interval(tiny(), **kwargs)


def test_snips_interval_is_narrower_when_snips_is_more_accurate(
    simulate: Callable[..., Any],
) -> None:
    """Rewards far from 0 with uneven weights: IPS carries the weight noise times the
    reward level; SNIPS cancels it. Its interval must reflect that."""
    err_ips, err_sn, wid_ips, wid_sn = [], [], [], []
    for seed in range(12):
        log = simulate(n=1000, seed=seed, reward_offset=5.0, logging_temperature=0.7)
        ips = IPS().estimate_interval(log.data, n_bootstrap=300, seed=seed)
        sn = SNIPS().estimate_interval(log.data, n_bootstrap=300, seed=seed)
        err_ips.append(abs(ips.estimate - log.truth))
        err_sn.append(abs(sn.estimate - log.truth))
        wid_ips.append(ips.width)
        wid_sn.append(sn.width)
        assert sn.width <= ips.width
    assert np.mean(err_sn) < np.mean(err_ips) / 3
    assert np.mean(wid_sn) < np.mean(wid_ips) / 3


@pytest.mark.slow
def test_every_interval_kind_covers_the_truth_at_about_its_nominal_rate(
    simulate: Callable[..., Any],
) -> None:
    """200 logs of 1500 decisions with fresh contexts; truth = population value.

    (At 400 decisions the IPS/SNIPS intervals cover about 90 %: heavy weights make
    the estimate skewed in small samples; by 3000 they are at about 95 %.)
    """
    truth = simulate(n=400_000, seed=999).truth  # population value, SE ~ 2e-4
    reps = 200
    estimators = {"ips": IPS(), "snips": SNIPS(), "dr": DR(), "dm": DM()}
    hits: dict[tuple[str, str], int] = {}
    for seed in range(reps):
        log = simulate(n=1500, seed=seed, estimated_rewards="noisy", reward_range=(0.0, 1.0))
        for name, est in estimators.items():
            for method in ("bootstrap", "gaussian", "bernstein"):
                if name == "dm" and method != "gaussian":
                    continue
                iv = est.estimate_interval(
                    log.data, method=cast(IntervalMethod, method), n_bootstrap=300, seed=seed
                )
                hits[(name, method)] = hits.get((name, method), 0) + iv.covers(truth)
    cover = {k: v / reps for k, v in hits.items()}
    for name in ("ips", "snips", "dr"):
        assert 0.90 <= cover[(name, "bootstrap")] <= 0.99, (name, cover)
        assert 0.90 <= cover[(name, "gaussian")] <= 0.99, (name, cover)
        assert cover[(name, "bernstein")] >= 0.95, (name, cover)
    # DM's interval ignores the model's bias: with a noisy model it need not cover;
    # it is computed here only to show that the interval machinery runs for it.
    assert 0.0 <= cover[("dm", "gaussian")] <= 1.0
