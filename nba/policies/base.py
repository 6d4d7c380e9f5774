"""The one policy interface every policy (VW, baselines, oracle) implements.

A policy maps (context, eligible actions) to a probability for every action and
samples one. Sampling is seeded from ``(seed, event_id)``, so a logged decision
can be replayed exactly, and the returned propensity is the sampled entry of
the very vector that was returned.

>>> import numpy as np
>>> p = np.array([0.25, 0.25, 0.5])
>>> sample_index(p, seed=3, event_id="01J0000000000000000000000A") == sample_index(
...     p, seed=3, event_id="01J0000000000000000000000A")
True
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nba.context import DecisionContext
from nba.domain import SLATE_MASS_FLOOR, Action, ValidationError, slot_probability

Probabilities = npt.NDArray[np.float64]


class PolicyError(ValidationError):
    """A policy was configured or called incorrectly."""


def event_uniform(seed: int, event_id: str) -> float:
    """A uniform number in [0, 1) determined by ``(seed, event_id)`` alone."""
    digest = hashlib.blake2b(f"{seed}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def sample_index(probabilities: Probabilities, seed: int, event_id: str) -> int:
    """Index drawn from ``probabilities`` with randomness fixed by ``(seed, event_id)``.

    Parameters
    ----------
    probabilities : ndarray of float64, shape (n_actions,)
        Must be non-negative and sum to 1.
    """
    u = event_uniform(seed, event_id)
    cdf = np.cumsum(probabilities)
    idx = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    idx = min(idx, len(probabilities) - 1)
    # never land on a zero-probability action because of rounding at the edge
    while probabilities[idx] <= 0.0 and idx > 0:
        idx -= 1
    return idx


def _sample_listed(probabilities: list[float], seed: int, event_id: str) -> int:
    """:func:`sample_index` for non-negative finite probabilities given as a list of
    floats (the same index, bit for bit), without numpy's per-call overhead on a
    vector of a dozen entries.

    The running sum is the same sequence of float64 additions as ``np.cumsum``,
    and on a non-decreasing sum ``bisect_right`` finds what ``np.searchsorted(...,
    side="right")`` finds.
    """
    u = event_uniform(seed, event_id)
    cdf = list(itertools.accumulate(probabilities))
    idx = min(bisect.bisect_right(cdf, u * cdf[-1]), len(probabilities) - 1)
    while probabilities[idx] <= 0.0 and idx > 0:
        idx -= 1
    return idx


def sample_slate(
    probabilities: Probabilities, chosen_index: int, k: int, seed: int, event_id: str
) -> tuple[list[int], list[float]]:
    """A list of up to ``k`` distinct actions: the chosen one, then draws without replacement.

    Slot 1 is ``chosen_index`` (drawn by :meth:`Policy.decide`); slot ``j`` is drawn
    from ``probabilities`` restricted to the actions not yet placed, with a uniform
    fixed by ``(seed, event_id + "/slot<j>")``; when no probability mass is left,
    uniformly among the actions left (:func:`nba.domain.slot_probability`).

    Parameters
    ----------
    probabilities : ndarray of float64, shape (n_actions,)
    chosen_index : int
    k : int
        Slots wanted (at least 1); the list has ``min(k, n_actions)``.
    seed : int
    event_id : str

    Returns
    -------
    indices : list of int, length min(k, n_actions)
    conditional : list of float, same length
        Slot ``j``'s probability given slots ``1..j-1`` (slot 1: the propensity).

    >>> p = np.array([0.5, 0.3, 0.2])
    >>> idx, cond = sample_slate(p, 0, 3, seed=1, event_id="e1")
    >>> idx[0], sorted(idx), round(cond[0], 3)
    (0, [0, 1, 2], 0.5)
    """
    if k < 1:
        raise PolicyError(f"slate size k must be at least 1, got {k}")
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1 and p.shape[0] and all(0.0 <= x < math.inf for x in p.tolist()):
        return _slate_listed(p.tolist(), int(chosen_index), k, seed, event_id)
    return _slate_numpy(p, int(chosen_index), k, seed, event_id)


def _slate_numpy(
    p: npt.NDArray[np.float64], chosen_index: int, k: int, seed: int, event_id: str
) -> tuple[list[int], list[float]]:
    """:func:`sample_slate` on an array (any values: the path for vectors the list
    path does not take, and the reference the list path is tested against)."""
    n = p.shape[0]
    indices = [int(chosen_index)]
    conditional = [float(p[chosen_index])]
    left = np.ones(n, dtype=bool)
    left[chosen_index] = False
    for j in range(2, min(k, n) + 1):
        cand = np.flatnonzero(left)
        w = p[cand]
        mass = math.fsum(w.tolist())
        if mass <= SLATE_MASS_FLOOR:
            w = np.ones(cand.shape[0])
            mass = float(cand.shape[0])
        pos = sample_index(w / mass, seed, f"{event_id}/slot{j}")
        i = int(cand[pos])
        indices.append(i)
        conditional.append(slot_probability(p.tolist(), indices[:-1], i))
        left[i] = False
    return indices, conditional


def _slate_listed(
    p: list[float], chosen_index: int, k: int, seed: int, event_id: str
) -> tuple[list[int], list[float]]:
    """:func:`sample_slate` on non-negative finite probabilities given as a list (the
    same slots and conditional probabilities, bit for bit: each slot's weights are
    divided by the mass left one by one, as numpy divides a vector).

    A slot's conditional probability is :func:`~nba.domain.slot_probability`'s
    arithmetic on the mass already summed for its draw: the actions left before
    the slot are the candidates, and ``math.fsum`` is exactly rounded, so their
    mass is the same float whichever way it is summed."""
    n = len(p)
    indices = [chosen_index]
    conditional = [p[chosen_index]]
    taken = {chosen_index}
    for j in range(2, min(k, n) + 1):
        cand = [i for i in range(n) if i not in taken]
        w = [p[i] for i in cand]
        mass = math.fsum(w)
        # slot_probability(p, indices, i) is p[i] over this very mass (the fsum of the
        # same entries), or uniform over the actions left when no mass is left
        some_mass = mass > SLATE_MASS_FLOOR
        if not some_mass:
            w = [1.0] * len(cand)
            mass = float(len(cand))
        pos = _sample_listed([x / mass for x in w], seed, f"{event_id}/slot{j}")
        i = cand[pos]
        indices.append(i)
        conditional.append(p[i] / mass if some_mass else 1.0 / len(cand))
        taken.add(i)
    return indices, conditional


def check_probabilities(p: Probabilities, n_actions: int, who: str) -> Probabilities:
    """Validate a probability vector a policy produced; returns it as float64."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (n_actions,):
        raise PolicyError(f"{who}: returned {arr.shape} probabilities for {n_actions} actions")
    values = arr.tolist()
    if not all(0.0 <= x < math.inf for x in values):  # also refuses NaN
        raise PolicyError(f"{who}: returned a negative or non-finite probability")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-6:
        raise PolicyError(f"{who}: probabilities sum to {total}, not 1")
    return arr


@dataclass(frozen=True)
class PolicyDecision:
    """What a policy returns: the full vector, the choice, its propensity.

    Attributes
    ----------
    probabilities : ndarray of float64, shape (n_actions,)
    chosen_index : int
    propensity : float
        Always ``probabilities[chosen_index]``.
    """

    probabilities: Probabilities
    chosen_index: int
    propensity: float
    scores: npt.NDArray[np.float64] | None = None


class Policy(ABC):
    """Base class. Subclasses implement :meth:`probabilities` (and may learn).

    Parameters are public attributes of the same name as in ``__init__``;
    :attr:`params` collects them for MLflow.
    """

    #: short name logged in ``decisions.policy``
    name: ClassVar[str] = "policy"
    #: whether :meth:`learn` changes anything
    learns: ClassVar[bool] = False

    seed: int = 0

    @property
    def model_version(self) -> str:
        """What decisions log as ``model_version``."""
        return self.name

    @abstractmethod
    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        """Probability of each action.

        Returns
        -------
        ndarray of float64, shape (len(actions),), summing to 1
        """

    def scores(
        self, context: DecisionContext, actions: Sequence[Action]
    ) -> npt.NDArray[np.float64] | None:
        """Optional per-action scores (higher is better) used to rank the rest."""
        return None

    def decide(
        self, context: DecisionContext, actions: Sequence[Action], event_id: str
    ) -> PolicyDecision:
        """Probabilities plus an action sampled with randomness fixed by ``event_id``."""
        if not actions:
            raise PolicyError(f"{self.name}: no eligible actions to choose from")
        p = check_probabilities(self.probabilities(context, actions), len(actions), self.name)
        # checked: finite and non-negative, so the list path draws what sample_index draws
        i = _sample_listed(p.tolist(), self.seed, event_id)
        return PolicyDecision(p, i, float(p[i]), self.scores(context, actions))

    def learn(
        self,
        context: DecisionContext,
        actions: Sequence[Action],
        chosen_index: int,
        reward: float,
        propensity: float,
    ) -> None:
        """Update from one logged decision. Baselines ignore it."""
        return None

    def save(self, path: str | Path) -> None:
        raise PolicyError(f"{self.name}: save is not supported")

    @property
    def params(self) -> dict[str, Any]:
        """Constructor parameters, for ``mlflow.log_params``."""
        return {"policy": self.name, "seed": self.seed}
