"""VWPolicy turns VW's scores into probabilities on a Python list: the vector must
be the one the numpy steps gave, bit for bit, on varied scores."""

from __future__ import annotations

import math

import numpy as np

from nba.policies.vw import _normalized


def _numpy_steps(raw: list[float], n: int) -> np.ndarray:
    """The steps VWPolicy._pmf took with numpy before."""
    p = np.asarray(raw, dtype=np.float64)
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    total = math.fsum(p.tolist())
    if total <= 0:
        return np.full(n, 1.0 / n)
    return p / total


def test_same_vector_as_the_numpy_steps() -> None:
    rng = np.random.default_rng(17)
    odd = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e-300, 5e-324, 1.0, 3.4e38]
    for _ in range(2000):
        n = int(rng.integers(1, 16))
        raw = [float(x) for x in rng.dirichlet(np.ones(n) * float(rng.uniform(0.05, 3)))]
        for _ in range(int(rng.integers(0, 4))):
            raw[int(rng.integers(n))] = odd[int(rng.integers(len(odd)))]
        if rng.random() < 0.3:  # VW's floats are float32
            raw = [float(np.float32(x)) for x in raw]
        got, want = _normalized(raw, n), _numpy_steps(raw, n)
        assert got.dtype == want.dtype and got.shape == want.shape == (n,)
        assert got.tobytes() == want.tobytes()
    # nothing positive and finite: uniform
    assert _normalized([math.nan, 0.0, -2.0], 3).tolist() == [1 / 3] * 3
