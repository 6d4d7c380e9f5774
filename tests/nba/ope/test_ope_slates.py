"""Slate OPE: exact marginals, exact unbiasedness, sampling that matches, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from nba.domain import slot_probability
from nba.ope.data import OPEInputError
from nba.ope.slates import (
    SlateLog,
    evaluate_slates,
    list_distribution,
    pairwise_marginals,
    position_marginals,
    slate_terms,
)
from nba.policies.base import sample_slate
from simulators.hcp.slates import sample_slates

LOGGING = np.array([0.4, 0.3, 0.2, 0.1])
TARGET = np.array([0.05, 0.15, 0.3, 0.5])
# slot x action reward table: additive over (slot, action)
PHI = np.array([[1.0, 0.2, 0.5, 0.0], [0.6, 0.9, 0.1, 0.3], [0.2, 0.0, 0.7, 0.4]])


def test_list_distribution_is_sequential_sampling() -> None:
    lists, prob = list_distribution(LOGGING, 3)
    assert lists.shape == (24, 3) and prob.sum() == pytest.approx(1.0)
    row = next(i for i, s in enumerate(lists.tolist()) if s == [2, 0, 3])
    assert prob[row] == pytest.approx(0.2 * 0.4 / 0.8 * 0.1 / 0.4)
    m = position_marginals(LOGGING, 3)
    assert m.shape == (3, 4)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0], LOGGING)
    gamma = pairwise_marginals(LOGGING, 3)
    # the diagonal blocks are the marginals; an action never fills two slots at once
    np.testing.assert_allclose(np.diag(gamma), m.reshape(-1))
    assert gamma[0 * 4 + 1, 1 * 4 + 1] == 0.0


def test_no_mass_left_fills_uniformly() -> None:
    p = np.array([1.0, 0.0, 0.0])
    m = position_marginals(p, 3)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]])
    assert slot_probability(p.tolist(), [0], 2) == 0.5


def _expected(term_per_list: np.ndarray, prob: np.ndarray) -> float:
    return float((term_per_list * prob).sum())


def test_per_slot_ips_and_pseudo_inverse_are_exactly_unbiased() -> None:
    """Averaged over every list the logging policy can show, weighted by its
    probability, each estimate equals the target's true value."""
    lists, prob = list_distribution(LOGGING, 3)
    log = SlateLog(
        [LOGGING] * len(lists),
        [s for s in lists],
        [PHI[np.arange(3), s] for s in lists],
    )
    w, r, pi_terms = slate_terms(log, [TARGET] * len(lists))
    truth_per_slot = (position_marginals(TARGET, 3) * PHI).sum(axis=1)
    for j in range(3):
        assert _expected(w[:, j] * r[:, j], prob) == pytest.approx(truth_per_slot[j], abs=1e-12)
    assert _expected(pi_terms, prob) == pytest.approx(truth_per_slot.sum(), abs=1e-9)
    # the estimate is not the truth on every single list (it is an estimate)
    assert np.ptp(pi_terms) > 0.1 and np.ptp(w[:, 1] * r[:, 1]) > 0.1


def test_pseudo_inverse_reduces_to_ips_with_one_slot() -> None:
    log = SlateLog([LOGGING, LOGGING], [np.array([1]), np.array([3])], [np.ones(1), np.ones(1)])
    w, _, pi_terms = slate_terms(log, [TARGET, TARGET])
    np.testing.assert_allclose(pi_terms, w[:, 0])
    np.testing.assert_allclose(w[:, 0], [0.15 / 0.3, 0.5 / 0.1])


def test_evaluate_slates_names_and_intervals() -> None:
    rng = np.random.default_rng(0)
    lists, prob = list_distribution(LOGGING, 3)
    draw = rng.choice(len(lists), size=4000, p=prob)
    rewards = [(rng.random(3) < PHI[np.arange(3), lists[d]]).astype(float) for d in draw]
    log = SlateLog([LOGGING] * draw.size, [lists[d] for d in draw], rewards)
    out = {e.name: e for e in evaluate_slates(log, [TARGET] * draw.size, alpha=0.01)}
    assert list(out) == [
        "slot1:ips",
        "slot1:snips",
        "slot2:ips",
        "slot2:snips",
        "slot3:ips",
        "slot3:snips",
        "list:ips",
        "list:pi",
    ]
    truth = (position_marginals(TARGET, 3) * PHI).sum(axis=1)
    for j in range(3):
        for est in ("ips", "snips"):
            e = out[f"slot{j + 1}:{est}"]
            assert e.low <= truth[j] <= e.high, (e, truth[j])
            assert e.high - e.low < 0.2
    for est in ("ips", "pi"):
        e = out[f"list:{est}"]
        assert e.low <= truth.sum() <= e.high and e.high - e.low < 0.5


def test_vectorized_and_per_decision_sampling_follow_the_distribution() -> None:
    lists, prob = list_distribution(LOGGING, 3)
    index = {tuple(s): i for i, s in enumerate(lists.tolist())}
    n = 20_000
    rng = np.random.default_rng(5)
    chosen = rng.choice(4, size=n, p=LOGGING)
    offsets = np.arange(n + 1, dtype=np.int64) * 4
    pos, cond = sample_slates(np.tile(LOGGING, n), offsets, chosen, 3, rng)
    counts = np.bincount([index[tuple(s)] for s in pos.tolist()], minlength=len(lists))
    np.testing.assert_allclose(counts / n, prob, atol=0.012)
    for s, c in zip(pos[:50].tolist(), cond[:50].tolist(), strict=True):
        expect = [slot_probability(LOGGING.tolist(), s[:j], s[j]) for j in range(3)]
        np.testing.assert_allclose(c, expect)
    seen = np.zeros(len(lists))
    for e in range(3000):
        c0 = int(np.searchsorted(np.cumsum(LOGGING), (e + 0.5) / 3000))
        idx, q = sample_slate(LOGGING, c0, 3, seed=2, event_id=f"ev{e}")
        seen[index[tuple(idx)]] += 1
        assert q == pytest.approx(
            [slot_probability(LOGGING.tolist(), idx[:j], idx[j]) for j in range(3)]
        )
    np.testing.assert_allclose(seen / 3000, prob, atol=0.03)
    # same seed and event: same list
    assert sample_slate(LOGGING, 0, 3, 2, "x") == sample_slate(LOGGING, 0, 3, 2, "x")


def test_sampling_with_no_mass_left_and_short_decisions() -> None:
    p = np.array([1.0, 0.0, 0.0, 0.7, 0.3])  # decision 0: 3 actions, decision 1: 2
    offsets = np.array([0, 3, 5])
    pos, cond = sample_slates(p, offsets, np.array([0, 0]), 3, np.random.default_rng(1))
    assert sorted(pos[0].tolist()) == [0, 1, 2]
    np.testing.assert_allclose(cond[0], [1.0, 0.5, 1.0])
    assert pos[1].tolist() == [0, 1, -1]
    assert cond[1, :2].tolist() == [0.7, 1.0] and np.isnan(cond[1, 2])


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SlateLog([], [], []), "no decisions"),
        (
            lambda: SlateLog([LOGGING], [np.array([0, 0])], [np.zeros(2)]),
            "slots repeat or leave its actions",
        ),
        (
            lambda: SlateLog([LOGGING], [np.array([0, 7])], [np.zeros(2)]),
            "slots repeat or leave its actions",
        ),
        (lambda: SlateLog([LOGGING], [np.array([0, 1])], [np.zeros(3)]), "2 slots, 3 rewards"),
        (lambda: SlateLog([LOGGING], [np.array([0])], []), "differ in length"),
        (
            lambda: slate_terms(SlateLog([LOGGING], [np.array([0])], [np.ones(1)]), []),
            "0 probability vectors for 1 decisions",
        ),
        (
            lambda: slate_terms(
                SlateLog([LOGGING], [np.array([0])], [np.ones(1)]), [np.array([0.5, 0.5])]
            ),
            "decision 0 has 4 actions, its vector 2 entries",
        ),
        (
            lambda: slate_terms(
                SlateLog([LOGGING], [np.array([0])], [np.ones(1)]), [np.array([0.9, 0.9, 0, 0])]
            ),
            "not a probability vector",
        ),
        (
            lambda: slate_terms(
                SlateLog([np.array([1.0, 0.0, 0.0])], [np.array([1])], [np.ones(1)]),
                [np.array([1.0, 0.0, 0.0])],
            ),
            "probability 0 under its logging policy",
        ),
        (lambda: position_marginals(np.full(40, 1 / 40), 5), "ordered lists"),
        (
            lambda: evaluate_slates(
                SlateLog([LOGGING], [np.array([0])], [np.ones(1)]), [LOGGING], alpha=1.5
            ),
            "alpha must be in",
        ),
    ],
)
def test_bad_inputs(build: object, match: str) -> None:
    with pytest.raises(OPEInputError, match=match):
        build()  # type: ignore[operator]


def test_slate_terms_run_with_one_blas_thread_and_restore_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pseudo-inverses are small eigen-decompositions: they run with one BLAS
    thread whatever the process's setting, which is given back afterwards (also
    when the computation fails)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import nba.ope.slates as slates

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen: list[list[int]] = []
    real = slates._gamma_pinv.__wrapped__  # the function behind its cache

    def recording(p_bytes: bytes, k: int) -> np.ndarray:
        seen.append(blas_threads())
        return real(p_bytes, k)

    monkeypatch.setattr(slates, "_gamma_pinv", recording)
    log = SlateLog([LOGGING, LOGGING], [np.array([0, 1]), np.array([2, 0])], [np.ones(2)] * 2)
    with threadpool_limits(limits=2, user_api="blas"):
        outside = blas_threads()
        assert outside and all(n == 2 for n in outside)
        w, _, pi_terms = slate_terms(log, [TARGET, TARGET])
        assert blas_threads() == outside
        with pytest.raises(OPEInputError, match="not a probability vector"):
            slate_terms(log, [TARGET, np.full(LOGGING.shape, 0.5)])
        assert blas_threads() == outside
    assert seen and all(n == 1 for threads in seen for n in threads)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(pi_terms))
