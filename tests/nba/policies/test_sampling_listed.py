"""The list path of sampling draws exactly what the numpy path draws: same index,
same slate, same conditional probabilities, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nba.policies.base import (
    _sample_listed,
    _slate_numpy,
    check_probabilities,
    sample_index,
    sample_slate,
)


def _numpy_slate(
    probabilities: np.ndarray, chosen_index: int, k: int, seed: int, event_id: str
) -> tuple[list[int], list[float]]:
    """The vectorized reference (what sample_slate computed before its list path)."""
    return _slate_numpy(
        np.asarray(probabilities, dtype=np.float64), chosen_index, k, seed, event_id
    )


def _vectors(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        n = int(rng.integers(1, 60))
        p = rng.dirichlet(np.full(n, float(rng.choice([0.05, 0.5, 5.0]))))
        if t % 4 == 1:  # zeros, some of them where the draw would land
            p[rng.random(n) < 0.4] = 0.0
        if t % 4 == 2:  # one action takes (almost) everything: no mass left for later slots
            p = np.zeros(n)
            p[int(rng.integers(n))] = 1.0
        if t % 4 == 3 and n > 1:  # mass left below the floor
            p = np.full(n, 1e-14)
            p[0] = 1.0 - (n - 1) * 1e-14
        if p.sum() <= 0:
            p[0] = 1.0
        out.append(p / math.fsum(p.tolist()))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_listed_draws_equal_the_numpy_draws(seed: int) -> None:
    drawn = set()
    for t, p in enumerate(_vectors(seed, 400)):
        eid = f"E{seed}-{t}"
        i = sample_index(p, 7, eid)
        assert _sample_listed(p.tolist(), 7, eid) == i
        assert np.array_equal(np.cumsum(p), np.array(list(np.cumsum(p.tolist())), dtype=float))
        for k in (1, 3, 10):
            got = sample_slate(p, i, k, 7, eid)
            ref = _numpy_slate(p, i, k, 7, eid)
            assert got[0] == ref[0]
            assert [x.hex() for x in got[1]] == [float(x).hex() for x in ref[1]]
            drawn.add(tuple(got[0]))
    assert len(drawn) > 300  # the draws vary: the comparison is not of constants


def test_refused_vectors_still_go_the_numpy_way() -> None:
    # a negative entry is no probability vector; the function keeps its old behaviour
    p = np.array([0.7, -0.1, 0.4])
    assert sample_slate(p, 0, 3, 1, "e") == _numpy_slate(p, 0, 3, 1, "e")


@pytest.mark.parametrize("bad", [[0.5, float("nan"), 0.5], [1.5, -0.5], [float("inf"), 0.0]])
def test_check_probabilities_refuses_non_finite_and_negative(bad: list[float]) -> None:
    from nba.policies.base import PolicyError

    with pytest.raises(PolicyError, match="negative or non-finite"):
        check_probabilities(np.array(bad), len(bad), "pol")
