"""Seeded synthetic ragged logs with known truth, shared by the OPE tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from nba.ope import LoggedData


@dataclass(frozen=True)
class SimLog:
    """A simulated log plus the ground truth needed to check estimators."""

    data: LoggedData
    q_true: np.ndarray  # (m,) expected reward of every eligible action
    truth: float  # value of the target policy on these contexts


def _segment_softmax(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    seg_max = np.maximum.reduceat(scores, offsets[:-1])
    e = np.exp(scores - np.repeat(seg_max, np.diff(offsets)))
    return e / np.repeat(np.add.reduceat(e, offsets[:-1]), np.diff(offsets))


def _sample(p: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Position within each decision drawn from the flat distribution ``p``."""
    n = offsets.shape[0] - 1
    cum = np.cumsum(p)
    start = np.concatenate([[0.0], cum])[offsets[:-1]]
    end = cum[offsets[1:] - 1]
    target = start + rng.random(n) * (end - start)
    flat = np.searchsorted(cum, target, side="right")
    flat = np.clip(flat, offsets[:-1], offsets[1:] - 1)
    # never land on a zero-probability action because of rounding
    while np.any(p[flat] <= 0):
        bad = p[flat] <= 0
        flat[bad] = np.where(flat[bad] > offsets[:-1][bad], flat[bad] - 1, flat[bad] + 1)
    return flat - offsets[:-1]


def simulate_log(
    n: int = 1000,
    seed: int = 0,
    *,
    min_actions: int = 2,
    max_actions: int = 6,
    logging_temperature: float = 1.0,
    target_sharpness: float = 4.0,
    target_epsilon: float = 0.1,
    reward_offset: float = 0.0,
    bernoulli: bool = True,
    context_seed: int | None = None,
    estimated_rewards: str | None = None,
    **extra: Any,
) -> SimLog:
    """Ragged log: logging = softmax of noise scores, target = softmax of true rewards.

    ``context_seed`` fixes the contexts (action sets, true rewards, both policies)
    while ``seed`` redraws actions and rewards; by default both come from ``seed``.
    ``estimated_rewards``: None, "perfect" (q_true) or "noisy".
    """
    crng = np.random.default_rng(seed if context_seed is None else context_seed + 10_000)
    sizes = crng.integers(min_actions, max_actions + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    m = int(offsets[-1])
    q_true = crng.beta(1.0, 4.0, size=m)
    pscore_all = _segment_softmax(crng.normal(size=m) / logging_temperature, offsets)
    greedy = _segment_softmax(target_sharpness * q_true / q_true.std(), offsets)
    uniform = np.repeat(1.0 / sizes, sizes)
    action_dist = (1 - target_epsilon) * greedy + target_epsilon * uniform
    rng = np.random.default_rng(seed)
    action = _sample(pscore_all, offsets, rng)
    chosen = offsets[:-1] + action
    if bernoulli:
        reward = (rng.random(n) < q_true[chosen]).astype(np.float64)
    else:
        reward = q_true[chosen].copy()
    reward += reward_offset
    est = None
    if estimated_rewards == "perfect":
        est = q_true + reward_offset
    elif estimated_rewards == "noisy":
        est = q_true + reward_offset + crng.normal(0.0, 0.05, size=m)
    truth = float(np.add.reduceat(action_dist * q_true, offsets[:-1]).mean()) + reward_offset
    data = LoggedData(
        offsets=offsets,
        action_dist=action_dist,
        reward=reward,
        pscore=pscore_all[chosen],
        action=action,
        pscore_all=pscore_all,
        estimated_rewards=est,
        **extra,
    )
    return SimLog(data, q_true, truth)


@pytest.fixture
def simulate() -> Callable[..., SimLog]:
    return simulate_log
