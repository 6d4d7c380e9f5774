"""Cross-fitting of reward models for DM / DR, and two small numpy reward models.

A reward model that has seen a decision's reward predicts that reward too well,
and DR then under-corrects. :func:`cross_fit` splits decisions into folds
(by HCP or by time block), fits on all other folds and predicts the held-out
one, so no decision is scored by a model trained on it. It knows nothing about
the model: ``fit(train_idx)`` and ``predict(model, test_idx)`` are callables,
so the VW regression model of the featurizer plugs in the same way as the
numpy models here.

>>> import numpy as np
>>> offsets = np.array([0, 2, 4, 6, 8])
>>> ids = np.array([0, 1, 0, 1, 0, 1, 0, 1])
>>> action = np.array([0, 1, 0, 1]); reward = np.array([1.0, 0.0, 3.0, 0.0])
>>> folds = np.array([0, 0, 1, 1])
>>> def fit(train):
...     return PerActionMean(n_actions=2).fit(ids[offsets[train] + action[train]], reward[train])
>>> def predict(model, test):
...     return model.predict(ids[flat_positions(offsets, test)])
>>> res = cross_fit(offsets, folds, fit, predict, action=action, reward=reward)
>>> res.estimated_rewards.tolist()
[3.0, 0.0, 3.0, 0.0, 1.0, 0.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.ope.data import FloatArray, IntArray, OPEInputError


def flat_positions(offsets: IntArray, decisions: IntArray) -> IntArray:
    """Flat positions of the eligible actions of ``decisions``, in their order.

    Parameters
    ----------
    offsets : ndarray of int64, shape (n + 1,)
    decisions : ndarray of int, shape (k,)

    Returns
    -------
    ndarray of int64, shape (sum of the k decisions' sizes,)

    >>> flat_positions(np.array([0, 2, 5]), np.array([1, 0])).tolist()
    [2, 3, 4, 0, 1]
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    decisions = np.asarray(decisions, dtype=np.int64)
    starts = offsets[decisions]
    sizes = offsets[decisions + 1] - starts
    total = int(sizes.sum())
    seg_start = np.cumsum(sizes) - sizes
    return np.repeat(starts - seg_start, sizes) + np.arange(total, dtype=np.int64)


def group_folds(groups: npt.ArrayLike, n_folds: int, seed: int = 0) -> IntArray:
    """Fold id per decision such that each group (e.g. HCP) lies in one fold.

    Groups are shuffled with a seeded generator and dealt round-robin.

    Parameters
    ----------
    groups : array, shape (n,)
        Group key of each decision (HCP id, week number, ...).
    n_folds : int
        At least 2 and at most the number of distinct groups.
    seed : int

    Returns
    -------
    ndarray of int64, shape (n,)

    >>> f = group_folds(np.array(["a", "b", "a", "c"]), 3, seed=0)
    >>> bool(f[0] == f[2]), sorted(set(f.tolist()))
    (True, [0, 1, 2])
    """
    g = np.asarray(groups)
    if g.ndim != 1:
        raise OPEInputError(f"groups: expected a 1-d array, got shape {g.shape}")
    uniq, inverse = np.unique(g, return_inverse=True)
    if not (isinstance(n_folds, int) and 2 <= n_folds <= uniq.shape[0]):
        raise OPEInputError(
            f"n_folds: need an integer in [2, {uniq.shape[0]}] (distinct groups), got {n_folds!r}"
        )
    perm = np.random.default_rng(seed).permutation(uniq.shape[0])
    fold_of_group = np.empty(uniq.shape[0], dtype=np.int64)
    fold_of_group[perm] = np.arange(uniq.shape[0]) % n_folds
    return fold_of_group[inverse.reshape(-1)]


def block_folds(n: int, n_folds: int) -> IntArray:
    """Contiguous time blocks: for decisions sorted by time, fold ``k`` is the k-th block.

    >>> block_folds(5, 2).tolist()
    [0, 0, 0, 1, 1]
    """
    if not (isinstance(n_folds, int) and 2 <= n_folds <= n):
        raise OPEInputError(f"n_folds: need an integer in [2, {n}], got {n_folds!r}")
    return (np.arange(n, dtype=np.int64) * n_folds) // n


@dataclass(frozen=True)
class CrossFitResult:
    """Out-of-fold reward predictions.

    Attributes
    ----------
    estimated_rewards : ndarray of float64, shape (m,)
        Prediction for every eligible action, each from a model that did not
        see that decision.
    folds : ndarray of int64, shape (n,)
    heldout_mse : tuple of float, or None
        Per fold, mean squared error of the prediction for the logged action
        against the observed reward (when ``action`` and ``reward`` were given).
    constant_mse : tuple of float, or None
        Per fold, the same error for the constant predictor: the mean reward
        of the training folds.
    """

    estimated_rewards: FloatArray
    folds: IntArray
    heldout_mse: tuple[float, ...] | None
    constant_mse: tuple[float, ...] | None = None

    def _pooled(self, values: tuple[float, ...] | None) -> float | None:
        if values is None:
            return None
        sizes = np.bincount(self.folds)
        return float(np.average(values, weights=sizes[sizes > 0]))

    @property
    def mean_heldout_mse(self) -> float | None:
        """Held-out MSE pooled over folds (weighted by fold size)."""
        return self._pooled(self.heldout_mse)

    @property
    def mean_constant_mse(self) -> float | None:
        """Held-out MSE of the constant predictor (each fold's training mean
        reward), pooled the same way; compare with :attr:`mean_heldout_mse`."""
        return self._pooled(self.constant_mse)


def cross_fit(
    offsets: npt.ArrayLike,
    folds: npt.ArrayLike,
    fit: Callable[[IntArray], Any],
    predict: Callable[[Any, IntArray], npt.ArrayLike],
    *,
    action: npt.ArrayLike | None = None,
    reward: npt.ArrayLike | None = None,
) -> CrossFitResult:
    """Out-of-fold predictions for every eligible action.

    Parameters
    ----------
    offsets : array of int, shape (n + 1,)
    folds : array of int, shape (n,)
        Fold id per decision (:func:`group_folds`, :func:`block_folds`);
        at least two distinct folds.
    fit : callable ``fit(train_idx) -> model``
        ``train_idx``: sorted decision indices outside the fold, shape (k,).
    predict : callable ``predict(model, test_idx) -> predictions``
        Predictions for the eligible actions of ``test_idx`` in flat order,
        shape (``flat_positions(offsets, test_idx).size``,).
    action : array of int, shape (n,), optional
    reward : array of float, shape (n,), optional
        Both given: the held-out MSE per fold is reported.

    Returns
    -------
    CrossFitResult
    """
    off = np.asarray(offsets, dtype=np.int64)
    f = np.asarray(folds)
    n = off.shape[0] - 1
    if f.shape != (n,) or f.dtype.kind not in "iu":
        raise OPEInputError(f"folds: expected {n} integer fold ids, got {f.shape} {f.dtype}")
    fold_ids = np.unique(f)
    if fold_ids.shape[0] < 2:
        raise OPEInputError("folds: need at least two distinct folds to cross-fit")
    out = np.full(int(off[-1]), np.nan)
    mse: list[float] = []
    const: list[float] = []
    for k in fold_ids:
        test = np.flatnonzero(f == k)
        train = np.flatnonzero(f != k)
        model = fit(train)
        pos = flat_positions(off, test)
        pred = np.asarray(predict(model, test), dtype=np.float64)
        if pred.shape != pos.shape:
            raise OPEInputError(
                f"predict: returned shape {pred.shape} for fold {k}, expected {pos.shape} "
                "(one prediction per eligible action of the test decisions)"
            )
        if not np.all(np.isfinite(pred)):
            raise OPEInputError(f"predict: NaN or infinite prediction in fold {k}")
        out[pos] = pred
        if action is not None and reward is not None:
            a = np.asarray(action, dtype=np.int64)[test]
            r = np.asarray(reward, dtype=np.float64)[test]
            mse.append(float(np.mean((out[off[test] + a] - r) ** 2)))
            rbar = float(np.mean(np.asarray(reward, dtype=np.float64)[train]))
            const.append(float(np.mean((rbar - r) ** 2)))
    return CrossFitResult(
        out, f.astype(np.int64), tuple(mse) if mse else None, tuple(const) if const else None
    )


class PerActionMean:
    """Mean logged reward per action code, shrunk toward the global mean.

    ``q(a) = (sum_{i: a_i = a} r_i + k * rbar) / (n_a + k)`` with ``k = prior_strength``.

    Parameters
    ----------
    n_actions : int
        Codes are 0 .. n_actions - 1.
    prior_strength : float
        Pseudo-count ``k`` of the global mean.
    """

    def __init__(self, n_actions: int, prior_strength: float = 0.0) -> None:
        if n_actions < 1:
            raise OPEInputError(f"n_actions: must be >= 1, got {n_actions}")
        if prior_strength < 0:
            raise OPEInputError(f"prior_strength: must be >= 0, got {prior_strength}")
        self.n_actions = n_actions
        self.prior_strength = prior_strength

    def fit(self, codes: npt.ArrayLike, reward: npt.ArrayLike) -> PerActionMean:
        """Fit on logged action codes, shape (k,), and rewards, shape (k,)."""
        c = np.asarray(codes, dtype=np.int64)
        r = np.asarray(reward, dtype=np.float64)
        if c.shape != r.shape or c.size == 0:
            raise OPEInputError(f"fit: codes {c.shape} and reward {r.shape} must match, non-empty")
        if c.min() < 0 or c.max() >= self.n_actions:
            raise OPEInputError(f"fit: action codes must be in [0, {self.n_actions})")
        rbar = float(r.mean())
        sums = np.bincount(c, weights=r, minlength=self.n_actions)
        counts = np.bincount(c, minlength=self.n_actions).astype(np.float64)
        k = self.prior_strength
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (sums + k * rbar) / (counts + k)
        self.means_ = np.where(counts + k > 0, means, rbar)
        return self

    def predict(self, codes: npt.ArrayLike) -> FloatArray:
        """Predictions for codes, shape (m,)."""
        return np.asarray(self.means_[np.asarray(codes, dtype=np.int64)], dtype=np.float64)


class RidgeRewardModel:
    """Ridge regression of reward on given features: ``beta = (X'X + l I)^-1 X'r``.

    Parameters
    ----------
    l2 : float
        Ridge penalty ``l`` (> 0; the intercept column, if any, is penalised too).
    """

    def __init__(self, l2: float = 1.0) -> None:
        if l2 <= 0:
            raise OPEInputError(f"l2: must be > 0, got {l2}")
        self.l2 = l2

    def fit(self, features: npt.ArrayLike, reward: npt.ArrayLike) -> RidgeRewardModel:
        """Fit on features of the logged actions, shape (k, d), and rewards, shape (k,)."""
        x = np.asarray(features, dtype=np.float64)
        r = np.asarray(reward, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != r.shape[0]:
            raise OPEInputError(f"fit: features {x.shape} and reward {r.shape} do not match")
        gram = x.T @ x + self.l2 * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(gram, x.T @ r)
        return self

    def predict(self, features: npt.ArrayLike) -> FloatArray:
        """Predictions for features, shape (m, d) -> (m,)."""
        return np.asarray(np.asarray(features, dtype=np.float64) @ self.coef_)
