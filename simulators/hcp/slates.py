"""Lists of several suggestions in the simulated world (docs/simulator.md, "Slates").

A decision may show ``k`` suggestions. Slot 1 is the logging policy's chosen
action; slots ``2..k`` are drawn without replacement from the same probability
vector (:func:`sample_slates`, the rule :func:`nba.policies.base.sample_slate`
applies per decision in serving). The HCP looks at slot ``j`` with probability
``attention ** (j - 1)`` (position-discounted attention) and, when it does,
responds to that slot's action exactly as it would to the same action served
alone; otherwise nothing happens for that slot. So, with ``ER(a)`` the expected
reward of action ``a`` (the ground truth of the log), slot ``j`` holding ``a``
is worth ``attention ** (j - 1) * ER(a) + (1 - attention ** (j - 1)) * default``
(:func:`slot_truth`), and a list is worth the sum of its slots.

>>> import numpy as np
>>> slot_truth(np.array([0.4, 0.2]), attention=0.5, slot=2, default=0.0).tolist()
[0.2, 0.1]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nba.domain import SLATE_MASS_FLOOR

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def slot_attention(attention: float, slot: int) -> float:
    """Probability that the HCP looks at slot ``slot`` (1-based): ``attention ** (slot - 1)``."""
    return float(attention) ** (slot - 1)


def slot_truth(expected: F64, attention: float, slot: int, default: float) -> F64:
    """Expected reward of each action when shown in slot ``slot``.

    Parameters
    ----------
    expected : ndarray of float64, shape (m,)
        Expected reward of each action served alone (slot 1).
    attention : float
        Attention decay per slot, in (0, 1].
    slot : int
        1-based slot.
    default : float
        The reward definition's default (what a slot nobody looked at earns).

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    a = slot_attention(attention, slot)
    return a * np.asarray(expected, dtype=np.float64) + (1.0 - a) * float(default)


def sample_slates(
    p: F64, offsets: I64, chosen: I64, k: int, rng: np.random.Generator
) -> tuple[I64, F64]:
    """Slots ``2..k`` of ``n`` decisions, drawn without replacement, vectorized.

    Parameters
    ----------
    p : ndarray of float64, shape (m,)
        Probabilities of every decision's actions, concatenated.
    offsets : ndarray of int64, shape (n + 1,)
        Decision ``i`` owns entries ``offsets[i]:offsets[i + 1]`` (at least one).
    chosen : ndarray of int64, shape (n,)
        Slot 1 of each decision (position within the decision).
    k : int
        Slots wanted (at least 1).
    rng : numpy.random.Generator

    Returns
    -------
    positions : ndarray of int64, shape (n, k)
        Position (within its decision) of each slot's action; -1 where the
        decision has fewer than ``k`` actions.
    conditional : ndarray of float64, shape (n, k)
        Each slot's probability given the slots before (slot 1: ``p`` of the
        chosen entry); NaN where the position is -1. When no probability mass
        is left, the slot is uniform over the actions left.
    """
    n = chosen.shape[0]
    starts = offsets[:-1]
    sizes = np.diff(offsets)
    m = p.shape[0]
    seg = np.repeat(np.arange(n), sizes)
    positions = np.full((n, k), -1, dtype=np.int64)
    conditional = np.full((n, k), np.nan)
    positions[:, 0] = chosen
    conditional[:, 0] = p[starts + chosen]
    taken = np.zeros(m, dtype=bool)
    taken[starts + chosen] = True
    for j in range(1, k):
        active = sizes > j
        free = ~taken
        w = np.where(free, p, 0.0)
        mass = np.add.reduceat(w, starts)
        empty = mass <= SLATE_MASS_FLOOR
        if empty.any():
            uniform = empty[seg] & free
            w = np.where(uniform, 1.0, w)
            mass = np.where(empty, (sizes - j).astype(np.float64), mass)
        cs = np.cumsum(w)
        before = cs[starts] - w[starts]
        target = before + rng.random(n) * mass
        idx = np.searchsorted(cs, target, side="right")
        idx = np.clip(idx, starts, offsets[1:] - 1)
        bad = np.flatnonzero(active & (w[idx] <= 0.0))
        for i in bad:  # rounding at a segment's end: the last entry that can be drawn
            seg_w = w[starts[i] : offsets[i + 1]]
            idx[i] = starts[i] + int(np.flatnonzero(seg_w > 0.0)[-1])
        rows = np.flatnonzero(active)
        positions[rows, j] = idx[rows] - starts[rows]
        conditional[rows, j] = w[idx[rows]] / mass[rows]
        taken[idx[rows]] = True
    return positions, conditional
