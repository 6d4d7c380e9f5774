"""Policies inside the simulated world: the :class:`BatchPolicy` protocol, the
vectorized baselines (same logic as :mod:`nba.policies.baselines`) and the oracle.

The world hands a policy one :class:`DecisionBatch` per requester per day and
expects back the full probability vector of every decision and the position
of the chosen action. A policy that learns may also implement
``learn_batch(LearnBatch)``; the world calls it once a day with every decision
whose reward window has closed that day (see ``docs/simulator.md``).

>>> import numpy as np
>>> p = np.array([0.5, 0.5, 1.0, 0.2, 0.8])
>>> sample_positions(np.array([0, 2, 3, 5]), p, np.array([0.7, 0.1, 0.1]))
array([1, 0, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from nba.catalog import Catalog
from nba.policies.base import PolicyError
from nba.policies.baselines import (
    CampaignPolicy,
    SegmentPolicy,
    campaign_keys,
    check_offsets,
    first_min_mask,
    greedy_probabilities,
    max_mask,
    segment_score_table,
    uniform_probabilities,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions of one requester on one day, in a ragged layout.

    Attributes
    ----------
    day : date
    day_index : int
        Days since the simulation start.
    requester : str
    event_ids : ndarray of str, shape (n,)
    contexts : sequence of str, length n
        Each ``DecisionContext.to_json()`` as logged (what a learning policy sees).
    offsets : ndarray of int64, shape (n + 1,)
        Decision ``i`` owns entries ``offsets[i]:offsets[i + 1]``.
    action_index : ndarray of int64, shape (m,)
        Index of each eligible action in ``catalog.actions`` (catalog order).
    catalog : Catalog
    specialties : tuple of str
        Names behind ``specialty``.
    specialty : ndarray of int, shape (n,)
    decile : ndarray of int, shape (n,)
    expected_rewards : ndarray of float64, shape (m,) or None
        Hidden ground truth; filled only for policies whose
        ``uses_ground_truth`` is True (the oracle).
    """

    day: date
    day_index: int
    requester: str
    event_ids: npt.NDArray[np.str_]
    contexts: npt.NDArray[np.object_]
    offsets: I64
    action_index: I64
    catalog: Catalog
    specialties: tuple[str, ...]
    specialty: npt.NDArray[np.integer]
    decile: npt.NDArray[np.integer]
    expected_rewards: F64 | None = None

    @property
    def n(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def m(self) -> int:
        return int(self.action_index.shape[0])


@dataclass(frozen=True)
class LearnBatch:
    """Decisions whose reward window has closed, with their rewards.

    Attributes
    ----------
    event_ids : ndarray of str, shape (n,)
    contexts : ndarray of object (str), shape (n,)
    offsets : ndarray of int64, shape (n + 1,)
    action_index : ndarray of int64, shape (m,)
    probabilities : ndarray of float64, shape (m,)
        The vectors that were served.
    chosen : ndarray of int64, shape (n,)
        Position of the chosen action within each decision.
    propensity : ndarray of float64, shape (n,)
    reward : ndarray of float64, shape (n,)
        Under the world's reward definition, from in-window outcomes only.
        In a batch released early (:attr:`partial_reward` set, see
        ``release_after_days`` of :class:`BatchPolicy`) this is still the final
        reward, which the world hands over only once the window has closed.
    channel : ndarray of int64, shape (n,), optional
        Index into the world's channels of each chosen action.
    partial_reward : ndarray of float64, shape (n,), optional
        Reward from the outcomes stamped before the decision's early release
        (midnight ``release_after_days`` days after its day); set only for
        learners that ask for early release.
    """

    event_ids: npt.NDArray[np.str_]
    contexts: npt.NDArray[np.object_]
    offsets: I64
    action_index: I64
    probabilities: F64
    chosen: I64
    propensity: F64
    reward: F64
    channel: I64 | None = None
    partial_reward: F64 | None = None

    @property
    def n(self) -> int:
        return int(self.offsets.shape[0] - 1)


@runtime_checkable
class BatchPolicy(Protocol):
    """What the world needs from a policy.

    ``name`` is logged in ``decisions.policy``, ``model_version`` in
    ``decisions.model_version``. ``learn_batch`` is optional (detected with
    ``hasattr``); ``uses_ground_truth`` is only for the oracle.
    """

    name: str
    uses_ground_truth: bool

    @property
    def model_version(self) -> str: ...

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        """Return (probabilities shape (m,), chosen position per decision shape (n,))."""
        ...


def sample_positions(offsets: I64, probabilities: F64, u: F64) -> I64:
    """Sample one position per decision by inverse CDF, as
    :func:`nba.policies.base.sample_index` does for one decision.

    Parameters
    ----------
    offsets : ndarray of int64, shape (n + 1,)
    probabilities : ndarray of float64, shape (m,)
    u : ndarray of float64, shape (n,)
        Uniforms in [0, 1).

    Returns
    -------
    ndarray of int64, shape (n,)
        Positions within each decision; never one with probability 0.
    """
    off = check_offsets(offsets, probabilities.shape[0])
    n = off.shape[0] - 1
    sizes = np.diff(off)
    width = int(sizes.max())
    seg = np.repeat(np.arange(n), sizes)
    col = np.arange(probabilities.shape[0]) - off[:-1][seg]
    padded = np.zeros((n, width))
    padded[seg, col] = probabilities
    cdf = np.cumsum(padded, axis=1)
    total = cdf[np.arange(n), sizes - 1]
    target = u * total
    valid = np.arange(width)[None, :] < sizes[:, None]
    idx = np.sum((cdf <= target[:, None]) & valid, axis=1)
    idx = np.minimum(idx, sizes - 1)
    # never land on a zero-probability action because of rounding at the edge
    zero = padded[np.arange(n), idx] <= 0.0
    for i in np.flatnonzero(zero):
        j = int(idx[i])
        while padded[i, j] <= 0.0 and j > 0:
            j -= 1
        idx[i] = j
    return idx.astype(np.int64)


class _Sampled:
    """Shared sampling with the policy's own generator."""

    name: str = "policy"
    uses_ground_truth: bool = False

    def __init__(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)

    @property
    def model_version(self) -> str:
        return self.name

    def _choose(self, batch: DecisionBatch, p: F64) -> tuple[F64, I64]:
        return p, sample_positions(batch.offsets, p, self.rng.random(batch.n))


class UniformBatch(_Sampled):
    """Uniform random over each decision's eligible actions."""

    name = "uniform"

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        return self._choose(batch, uniform_probabilities(batch.offsets))


class CampaignBatch(_Sampled):
    """The push campaign of :class:`nba.policies.baselines.CampaignPolicy`, vectorized."""

    name = "campaign"

    def __init__(self, policy: CampaignPolicy, seed: int | np.random.SeedSequence) -> None:
        super().__init__(seed)
        self.policy = policy
        self._topic_pos = policy.topic_positions()

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        if batch.catalog.version != self.policy.catalog.version:
            raise PolicyError("campaign: the batch uses another catalog than the policy")
        pol = self.policy
        week = np.full(batch.m, pol.week(batch.day), dtype=np.int64)
        keys = campaign_keys(
            self._topic_pos[batch.action_index],
            batch.action_index,
            week,
            len(pol.topic_sequence),
        )
        p = greedy_probabilities(batch.offsets, first_min_mask(batch.offsets, keys), pol.epsilon)
        return self._choose(batch, p)


class SegmentBatch(_Sampled):
    """The segment rules of :class:`nba.policies.baselines.SegmentPolicy`, vectorized."""

    name = "segment"

    def __init__(self, policy: SegmentPolicy, seed: int | np.random.SeedSequence) -> None:
        super().__init__(seed)
        self.policy = policy
        self._tables: dict[tuple[str, ...], npt.NDArray[np.int16]] = {}

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        pol = self.policy
        if batch.catalog.version != pol.catalog.version:
            raise PolicyError("segment: the batch uses another catalog than the policy")
        table = self._tables.get(batch.specialties)
        if table is None:
            table = segment_score_table(pol.rules, batch.specialties, pol.catalog)
            self._tables[batch.specialties] = table
        sizes = np.diff(batch.offsets)
        spec = np.repeat(np.asarray(batch.specialty, dtype=np.int64), sizes)
        dec = np.repeat(np.asarray(batch.decile, dtype=np.int64), sizes)
        score = table[spec, dec, batch.action_index]
        p = greedy_probabilities(batch.offsets, max_mask(batch.offsets, score), pol.epsilon)
        return self._choose(batch, p)


class OracleBatch(_Sampled):
    """Best expected reward given the hidden state (ties: first in catalog order),
    with ``epsilon`` of uniform exploration. Simulator only."""

    name = "oracle"
    uses_ground_truth = True

    def __init__(self, seed: int | np.random.SeedSequence, epsilon: float = 0.0) -> None:
        super().__init__(seed)
        if not 0.0 <= epsilon <= 1.0:
            raise PolicyError(f"oracle: epsilon must be in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        if batch.expected_rewards is None:
            raise PolicyError("oracle: the world did not pass the ground truth")
        best = first_min_mask(batch.offsets, -batch.expected_rewards)
        return self._choose(batch, greedy_probabilities(batch.offsets, best, self.epsilon))


#: policy names the world can build itself
WORLD_POLICIES = ("uniform", "campaign", "segment", "oracle")

#: epsilon each named policy uses when none is given
DEFAULT_EPSILON = {"uniform": 1.0, "campaign": 0.1, "segment": 0.1, "oracle": 0.0}


def make_policy(
    name: str,
    catalog: Catalog,
    seed: int | np.random.SeedSequence,
    epsilon: float | None = None,
    campaign_anchor: date | None = None,
) -> BatchPolicy:
    """Build one of :data:`WORLD_POLICIES` for a world using ``catalog``."""
    eps = DEFAULT_EPSILON.get(name, 0.0) if epsilon is None else float(epsilon)
    if name == "uniform":
        return UniformBatch(seed)
    if name == "campaign":
        kw: dict[str, Any] = {} if campaign_anchor is None else {"anchor": campaign_anchor}
        return CampaignBatch(CampaignPolicy(epsilon=eps, catalog=catalog, **kw), seed)
    if name == "segment":
        return SegmentBatch(SegmentPolicy(epsilon=eps, catalog=catalog), seed)
    if name == "oracle":
        return OracleBatch(seed, eps)
    raise PolicyError(
        f"unknown simulator policy {name!r}; expected one of {', '.join(WORLD_POLICIES)}"
    )
