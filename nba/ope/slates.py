"""Off-policy evaluation of lists: per slot and for the whole list.

A decision with a slate shows ``k`` slots; slot 1 is the sampled action and
slots ``2..k`` are drawn without replacement from the same probability vector
``p`` (:func:`nba.policies.base.sample_slate`; with no mass left, uniformly
among the actions left). A target policy shows its list the same way from its
own vector ``q``. Rewards are observed per slot (``slot_rewards`` of the join)
and the list's reward is their sum (additive over slots).

Per slot ``j`` (:func:`position_marginals`): the chance ``mu_j(a)`` that the
logging policy puts action ``a`` in slot ``j``, summed over every prefix, and
``pi_j(a)`` for the target. Since slot ``j``'s reward depends on its action and
its position only, ``V_j = E[ pi_j(a_j) / mu_j(a_j) * r_j ]`` (IPS with the
marginal position weight; SNIPS divides by the mean weight). The list value is
the sum over slots (``list_ips``), with an interval from the per-decision
sums.

The pseudo-inverse estimator (Swaminathan et al. 2017, "Off-policy evaluation
for slate recommendation"), ``list_pi``, needs only the list's total reward:
``V = E[ q_pi^T Gamma_mu^+ 1_s * r ]``, with ``1_s`` the (slot, action)
indicator of the logged list (length ``k * n``), ``q_pi`` the target's
position marginals flattened the same way and ``Gamma_mu = E_mu[1_s 1_s^T]``
(:func:`pairwise_marginals`), unbiased when the reward is additive over
(slot, action) pairs. Both are computed exactly by enumerating the
``n! / (n - k)!`` ordered lists of each decision, refused above
:data:`MAX_LISTS`.

A slot a decision does not have (fewer actions than ``k``, or a decision
logged with one slot) contributes 0 to that slot's value.

>>> import numpy as np
>>> position_marginals(np.array([0.5, 0.5, 0.0]), 2).round(3).tolist()
[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import stats
from threadpoolctl import threadpool_limits

from nba.domain import SLATE_MASS_FLOOR
from nba.ope.data import OPEInputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Most ordered lists one decision may have for exact enumeration.
MAX_LISTS = 200_000


@lru_cache(maxsize=64)
def _ordered_lists(n: int, k: int) -> I64:
    """Every ordered list of ``k`` distinct actions out of ``n``, shape (n!/(n-k)!, k)."""
    count = math.perm(n, k)
    if count > MAX_LISTS:
        raise OPEInputError(
            f"{n} actions in {k} slots make {count} ordered lists; exact slate evaluation "
            f"enumerates at most {MAX_LISTS} (use fewer slots or actions)"
        )
    return np.array(list(itertools.permutations(range(n), k)), dtype=np.int64).reshape(-1, k)


def list_distribution(p: F64, k: int) -> tuple[I64, F64]:
    """Every ordered list of ``min(k, n)`` slots and its probability under ``p``.

    Parameters
    ----------
    p : ndarray of float64, shape (n,)
        Probability of each action (sums to 1).
    k : int
        Slots.

    Returns
    -------
    lists : ndarray of int64, shape (L, min(k, n))
    prob : ndarray of float64, shape (L,)
        Sums to 1.
    """
    p = np.asarray(p, dtype=np.float64)
    n = p.shape[0]
    k = min(k, n)
    lists = _ordered_lists(n, k)
    prob = np.ones(lists.shape[0])
    used = np.zeros(lists.shape[0])
    total = math.fsum(p.tolist())
    for j in range(k):
        a = lists[:, j]
        mass = np.clip(total - used, 0.0, None)
        empty = mass <= SLATE_MASS_FLOOR
        factor = np.where(empty, 1.0 / (n - j), p[a] / np.where(empty, 1.0, mass))
        prob *= factor
        used += p[a]
    return lists, prob


def position_marginals(p: F64, k: int) -> F64:
    """``out[j, a]``: probability that slot ``j + 1`` holds action ``a``, shape (min(k, n), n)."""
    p = np.asarray(p, dtype=np.float64)
    n = p.shape[0]
    lists, prob = list_distribution(p, k)
    return np.stack(
        [np.bincount(lists[:, j], weights=prob, minlength=n) for j in range(lists.shape[1])]
    )


def pairwise_marginals(p: F64, k: int) -> F64:
    """``Gamma = E[1_s 1_s^T]`` over lists ``s``, shape (min(k, n) * n, min(k, n) * n).

    Entry ``(j * n + a, l * n + b)`` is the probability that slot ``j + 1``
    holds ``a`` and slot ``l + 1`` holds ``b``.
    """
    p = np.asarray(p, dtype=np.float64)
    n = p.shape[0]
    lists, prob = list_distribution(p, k)
    kk = lists.shape[1]
    flat = lists + np.arange(kk)[None, :] * n  # (L, kk) cell index of each slot
    gamma = np.zeros((kk * n, kk * n))
    for j in range(kk):
        for m in range(kk):
            cells = flat[:, j] * (kk * n) + flat[:, m]
            gamma += np.bincount(cells, weights=prob, minlength=(kk * n) ** 2).reshape(
                kk * n, kk * n
            )
    return gamma


@lru_cache(maxsize=1024)
def _marginals(p_bytes: bytes, k: int) -> F64:
    """:func:`position_marginals` of a logging vector, cached: many decisions share one."""
    return position_marginals(np.frombuffer(p_bytes, dtype=np.float64), k)


@lru_cache(maxsize=256)
def _gamma_pinv(p_bytes: bytes, k: int) -> F64:
    """Moore-Penrose pseudo-inverse of :func:`pairwise_marginals` (symmetric PSD, so
    from its eigen-decomposition), cached per logging vector."""
    gamma = pairwise_marginals(np.frombuffer(p_bytes, dtype=np.float64), k)
    vals, vecs = np.linalg.eigh(gamma)
    tol = max(gamma.shape) * np.finfo(np.float64).eps * max(float(vals.max()), 1.0)
    keep = vals > tol
    return (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T


@dataclass(frozen=True)
class SlateLog:
    """Logged lists, one per decision.

    Attributes
    ----------
    logging : list of ndarray of float64, each shape (n_i,)
        The logging policy's probabilities of decision ``i``.
    slots : list of ndarray of int64, each shape (k_i,)
        Positions (into the decision's actions) of its logged slots, slot 1 first.
    slot_rewards : list of ndarray of float64, each shape (k_i,)
        Reward of each logged slot.
    """

    logging: list[F64]
    slots: list[I64]
    slot_rewards: list[F64]

    def __post_init__(self) -> None:
        if not (len(self.logging) == len(self.slots) == len(self.slot_rewards)):
            raise OPEInputError("SlateLog: logging, slots and slot_rewards differ in length")
        if not self.logging:
            raise OPEInputError("SlateLog: no decisions")
        for i, (p, s, r) in enumerate(
            zip(self.logging, self.slots, self.slot_rewards, strict=True)
        ):
            if s.shape != r.shape or s.shape[0] < 1:
                raise OPEInputError(
                    f"SlateLog: decision {i}: {s.shape[0]} slots, {r.shape[0]} rewards"
                )
            if len(set(s.tolist())) != s.shape[0] or s.min() < 0 or s.max() >= p.shape[0]:
                raise OPEInputError(f"SlateLog: decision {i}: slots repeat or leave its actions")

    @property
    def n(self) -> int:
        return len(self.logging)

    @property
    def k(self) -> int:
        """The most slots any decision has."""
        return max(s.shape[0] for s in self.slots)

    @classmethod
    def from_joined(cls, joined: pa.Table) -> SlateLog:
        """From a joined table (:data:`nba.logs.schema.JOINED`): decisions without a
        slate have one slot, the chosen action with its ``reward``."""
        rows = joined.select(
            ["action_ids", "probabilities", "chosen_index", "reward", "slate", "slot_rewards"]
        ).to_pylist()
        logging, slots, rewards = [], [], []
        for r in rows:
            logging.append(np.asarray(r["probabilities"], dtype=np.float64))
            if r["slate"]:
                pos = {a: i for i, a in enumerate(r["action_ids"])}
                slots.append(np.array([pos[s["action_id"]] for s in r["slate"]], dtype=np.int64))
                rewards.append(np.asarray(r["slot_rewards"], dtype=np.float64))
            else:
                slots.append(np.array([r["chosen_index"]], dtype=np.int64))
                rewards.append(np.array([r["reward"]], dtype=np.float64))
        return cls(logging, slots, rewards)


def has_slates(table: pa.Table) -> bool:
    """Whether any row of a decisions or joined table carries a slate."""
    return "slate" in table.column_names and table.column("slate").null_count < table.num_rows


def attention_truth(
    log: SlateLog,
    target: Sequence[F64],
    expected_rewards: Sequence[F64],
    attention: float,
    default: float,
) -> F64:
    """True per-slot values of a target on the logged contexts, shape (k,), for a
    world whose HCP looks at slot ``j`` with probability ``attention ** (j - 1)``
    and then responds as to the action alone (docs/simulator.md, "Slates"):
    ``mean_i sum_a pi_ij(a) (att_j ER_i(a) + (1 - att_j) default)``; a slot a
    decision does not have counts 0.

    Parameters
    ----------
    log : SlateLog
    target, expected_rewards : sequence of ndarray of float64, each shape (n_i,)
        Target probabilities and each action's expected reward served alone.
    attention : float
    default : float
        The reward definition's default.
    """
    out = np.zeros(log.k)
    for i, s in enumerate(log.slots):
        ki = s.shape[0]
        marg = position_marginals(np.asarray(target[i], dtype=np.float64), ki)
        er = np.asarray(expected_rewards[i], dtype=np.float64)
        for j in range(ki):
            att = float(attention) ** j
            out[j] += float(marg[j] @ (att * er + (1.0 - att) * float(default)))
    return out / log.n


@dataclass(frozen=True)
class SlateEstimate:
    """One estimate with its Gaussian interval.

    Attributes
    ----------
    name : str
        ``slot<j>:ips``, ``slot<j>:snips``, ``list:ips`` or ``list:pi``.
    value, low, high : float
    n : int
        Decisions.
    """

    name: str
    value: float
    low: float
    high: float
    n: int


def _gaussian(name: str, terms: F64, alpha: float) -> SlateEstimate:
    n = terms.shape[0]
    v = float(terms.mean())
    half = float(stats.norm.ppf(1 - alpha / 2)) * float(terms.std(ddof=1)) / math.sqrt(n)
    return SlateEstimate(name, v, v - half, v + half, n)


def slate_terms(
    log: SlateLog, target: Sequence[F64], pseudo_inverse: bool = True
) -> tuple[F64, F64, F64]:
    """Per-decision ingredients of :func:`evaluate_slates`.

    Returns
    -------
    weights : ndarray of float64, shape (n, k)
        ``pi_j(a_j) / mu_j(a_j)`` of each decision's logged slot ``j`` (0 where
        the decision has no slot ``j``).
    rewards : ndarray of float64, shape (n, k)
        Slot rewards (0 where there is no slot).
    pi_terms : ndarray of float64, shape (n,)
        ``q_pi^T Gamma_mu^+ 1_s * (sum of slot rewards)`` (zeros unless
        ``pseudo_inverse``).
    """
    if len(target) != log.n:
        raise OPEInputError(f"target: {len(target)} probability vectors for {log.n} decisions")
    # The matrices are small (k n x k n): a multi-threaded BLAS spends 10-30x the
    # CPU of one thread on them (its threads spin waiting for each other), so
    # the loop runs with one BLAS thread; the setting is restored afterwards.
    with threadpool_limits(limits=1, user_api="blas"):
        return _slate_terms(log, target, pseudo_inverse)


def _slate_terms(
    log: SlateLog, target: Sequence[F64], pseudo_inverse: bool
) -> tuple[F64, F64, F64]:
    k = log.k
    w = np.zeros((log.n, k))
    r = np.zeros((log.n, k))
    pi_terms = np.zeros(log.n)
    for i, (p, s, rew) in enumerate(zip(log.logging, log.slots, log.slot_rewards, strict=True)):
        q = np.asarray(target[i], dtype=np.float64)
        if q.shape != p.shape:
            raise OPEInputError(
                f"target: decision {i} has {p.shape[0]} actions, its vector {q.shape[0]} entries"
            )
        if not np.all(np.isfinite(q)) or np.any(q < 0) or abs(q.sum() - 1.0) > 1e-6:
            raise OPEInputError(f"target: decision {i}: not a probability vector")
        ki = s.shape[0]
        mu = _marginals(p.tobytes(), ki)
        pi = position_marginals(q, ki)
        cols = np.arange(ki)
        if np.any(mu[cols, s] <= 0):
            raise OPEInputError(
                f"SlateLog: decision {i}: a logged slot has probability 0 under its logging policy"
            )
        w[i, :ki] = pi[cols, s] / mu[cols, s]
        r[i, :ki] = rew
        if pseudo_inverse:
            n_a = p.shape[0]
            weights = _gamma_pinv(p.tobytes(), ki) @ pi.reshape(-1)  # Gamma^+ q (symmetric)
            pi_terms[i] = float(weights[cols * n_a + s].sum()) * float(rew.sum())
    return w, r, pi_terms


def evaluate_slates(
    log: SlateLog, target: Sequence[F64], *, alpha: float = 0.05, pseudo_inverse: bool = True
) -> list[SlateEstimate]:
    """Per-slot IPS and SNIPS, the list's value as their sum, and the pseudo-inverse.

    Parameters
    ----------
    log : SlateLog
    target : sequence of ndarray of float64, each shape (n_i,)
        The target policy's probabilities for each decision's actions; it shows
        as many slots as the decision logged.
    alpha : float
        Intervals are ``1 - alpha`` (Gaussian).
    pseudo_inverse : bool
        Also compute ``list:pi`` (one pseudo-inverse of a ``k n x k n`` matrix
        per decision).

    Returns
    -------
    list of SlateEstimate
        ``slot1:ips``, ``slot1:snips``, ..., ``list:ips`` and (optionally) ``list:pi``.
    """
    if not 0.0 < alpha < 1.0:
        raise OPEInputError(f"alpha must be in (0, 1), got {alpha}")
    w, r, pi_terms = slate_terms(log, target, pseudo_inverse)
    k = log.k
    out: list[SlateEstimate] = []
    for j in range(k):
        out.append(_gaussian(f"slot{j + 1}:ips", w[:, j] * r[:, j], alpha))
        mean_w = float(w[:, j].mean())
        if mean_w > 0:
            v = float((w[:, j] * r[:, j]).sum() / w[:, j].sum())
            # delta method: influence terms w (r - v) / mean(w), centred on v
            est = _gaussian("", w[:, j] * (r[:, j] - v) / mean_w, alpha)
            out.append(SlateEstimate(f"slot{j + 1}:snips", v, v + est.low, v + est.high, log.n))
        else:  # the target never puts a logged action in this slot
            out.append(SlateEstimate(f"slot{j + 1}:snips", 0.0, 0.0, 0.0, log.n))
    out.append(_gaussian("list:ips", (w * r).sum(axis=1), alpha))
    if pseudo_inverse:
        out.append(_gaussian("list:pi", pi_terms, alpha))
    return out
