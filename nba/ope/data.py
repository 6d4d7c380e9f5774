"""Logged bandit feedback in ragged form, validated once.

Action sets differ per decision (the contact policy removes actions), so a log
is held as flat arrays plus ``offsets``: the eligible actions of decision ``i``
are the flat positions ``offsets[i]:offsets[i + 1]``. Every estimator reads a
:class:`LoggedData`; nothing downstream re-validates.

>>> import numpy as np
>>> data = LoggedData(
...     offsets=np.array([0, 2, 5]),
...     action_dist=np.array([0.5, 0.5, 0.2, 0.3, 0.5]),
...     reward=np.array([1.0, 0.0]),
...     pscore=np.array([0.5, 0.25]),
...     action=np.array([1, 0]),
... )
>>> data.n_decisions, data.n_flat
(2, 5)
>>> data.importance_weights.tolist()
[1.0, 0.8]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import ValidationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: tolerance on "probabilities sum to 1 per decision"
SUM_TOL = 1e-6


class OPEInputError(ValidationError):
    """Logged data or an estimator call was malformed; the message says where."""


def segment_sum(values: npt.NDArray[Any], offsets: IntArray) -> FloatArray:
    """Sum a flat array per decision.

    Parameters
    ----------
    values : ndarray, shape (m,)
        Flat per-(decision, action) values.
    offsets : ndarray of int64, shape (n + 1,)
        Segment boundaries; every segment must be non-empty.

    Returns
    -------
    ndarray of float64, shape (n,)

    >>> segment_sum(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 3])).tolist()
    [1.0, 5.0]
    """
    return np.add.reduceat(np.asarray(values, dtype=np.float64), offsets[:-1])


def _frozen(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = arr.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged decisions plus a target policy's probabilities, in ragged form.

    ``n`` decisions, ``m = offsets[-1]`` (decision, eligible action) pairs.

    Parameters
    ----------
    offsets : array of int, shape (n + 1,)
        ``offsets[0] == 0``, strictly increasing (every decision has at least
        one eligible action).
    action_dist : array of float, shape (m,)
        Target policy probability of each eligible action; sums to 1 per decision.
    reward : array of float, shape (n,)
        Observed reward of each decision.
    pscore : array of float, shape (n,)
        Logging propensity of the logged action, in (0, 1].
    action : array of int, shape (n,)
        Position of the logged action within its decision's eligible set.
    pscore_all : array of float, shape (m,), optional
        Logging probability of every eligible action (support diagnostics, a
        priori weight bounds). Must sum to 1 per decision and agree with ``pscore``.
    estimated_rewards : array of float, shape (m,), optional
        Reward-model prediction for every eligible action (DM / DR family).
        Should be cross-fitted (see :func:`nba.ope.cross_fit`).
    action_ids : array of str or int, shape (m,), optional
        Identity of each eligible action, for "never chosen in the log" support.
    default_reward : array of bool, shape (n,), optional
        True where the reward is the reward definition's default (no outcome).
    event_ids : array of str, shape (n,), optional
        Used only to name decisions in error messages and reports.
    reward_range : (float, float), optional
        A priori bounds of the reward (from the reward definition); used by the
        empirical-Bernstein interval. Observed rewards must lie inside.
    """

    offsets: IntArray
    action_dist: FloatArray
    reward: FloatArray
    pscore: FloatArray
    action: IntArray
    pscore_all: FloatArray | None = None
    estimated_rewards: FloatArray | None = None
    action_ids: npt.NDArray[Any] | None = None
    default_reward: BoolArray | None = None
    event_ids: npt.NDArray[Any] | None = None
    reward_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        offsets = self._int_array("offsets", self.offsets)
        if offsets.ndim != 1 or offsets.shape[0] < 2:
            raise OPEInputError(
                f"offsets: expected shape (n + 1,) with n >= 1, got {offsets.shape}"
            )
        if offsets[0] != 0:
            raise OPEInputError(f"offsets: must start at 0, starts at {offsets[0]}")
        sizes = np.diff(offsets)
        bad = np.flatnonzero(sizes < 1)
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(
                f"offsets: not strictly increasing at decision {i} "
                f"(offsets[{i}]={offsets[i]}, offsets[{i + 1}]={offsets[i + 1]}); "
                "every decision needs at least one eligible action"
            )
        n, m = offsets.shape[0] - 1, int(offsets[-1])
        object.__setattr__(self, "offsets", _frozen(offsets))
        if self.event_ids is not None:
            ev = np.asarray(self.event_ids)
            if ev.shape != (n,):
                raise OPEInputError(f"event_ids: expected shape ({n},), got {ev.shape}")
            object.__setattr__(self, "event_ids", _frozen(ev))

        action_dist = self._float_array("action_dist", self.action_dist, (m,), "flat")
        reward = self._float_array("reward", self.reward, (n,), "decision")
        pscore = self._float_array("pscore", self.pscore, (n,), "decision")
        action = self._int_array("action", self.action)
        if action.shape != (n,):
            raise OPEInputError(f"action: expected shape ({n},), got {action.shape}")

        bad = np.flatnonzero(~((pscore > 0.0) & (pscore <= 1.0)))
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(
                f"pscore: {bad.size} value(s) outside (0, 1]; first at {self.where(i)}: "
                f"{float(pscore[i]):.8g}"
            )
        bad = np.flatnonzero((action < 0) | (action >= sizes))
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(
                f"action: position out of range at {self.where(i)}: {action[i]} "
                f"for {sizes[i]} eligible actions"
            )
        self._check_distribution("action_dist", action_dist, offsets)

        object.__setattr__(self, "action_dist", _frozen(action_dist))
        object.__setattr__(self, "reward", _frozen(reward))
        object.__setattr__(self, "pscore", _frozen(pscore))
        object.__setattr__(self, "action", _frozen(action))

        chosen = offsets[:-1] + action
        if self.pscore_all is not None:
            pscore_all = self._float_array("pscore_all", self.pscore_all, (m,), "flat")
            self._check_distribution("pscore_all", pscore_all, offsets)
            mismatch = np.flatnonzero(np.abs(pscore_all[chosen] - pscore) > SUM_TOL)
            if mismatch.size:
                i = int(mismatch[0])
                raise OPEInputError(
                    f"pscore: disagrees with pscore_all for the logged action at "
                    f"{self.where(i)}: {float(pscore[i]):.8g} vs {float(pscore_all[chosen[i]]):.8g}"
                )
            object.__setattr__(self, "pscore_all", _frozen(pscore_all))
        if self.estimated_rewards is not None:
            est = self._float_array("estimated_rewards", self.estimated_rewards, (m,), "flat")
            object.__setattr__(self, "estimated_rewards", _frozen(est))
        if self.action_ids is not None:
            ids = np.asarray(self.action_ids)
            if ids.shape != (m,):
                raise OPEInputError(f"action_ids: expected shape ({m},), got {ids.shape}")
            object.__setattr__(self, "action_ids", _frozen(ids))
        if self.default_reward is not None:
            dflt = np.asarray(self.default_reward)
            if dflt.dtype != np.bool_:
                raise OPEInputError(f"default_reward: expected booleans, got dtype {dflt.dtype}")
            if dflt.shape != (n,):
                raise OPEInputError(f"default_reward: expected shape ({n},), got {dflt.shape}")
            object.__setattr__(self, "default_reward", _frozen(dflt))
        if self.reward_range is not None:
            lo, hi = (float(v) for v in self.reward_range)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise OPEInputError(
                    f"reward_range: need finite low < high, got {self.reward_range!r}"
                )
            outside = np.flatnonzero((reward < lo) | (reward > hi))
            if outside.size:
                i = int(outside[0])
                raise OPEInputError(
                    f"reward: {float(reward[i]):.8g} at {self.where(i)} is outside "
                    f"reward_range [{lo}, {hi}]"
                )
            object.__setattr__(self, "reward_range", (lo, hi))

    # ------------------------------------------------------------------ checks
    def where(self, i: int) -> str:
        """Name decision ``i`` for a message (with its event id when known)."""
        if self.event_ids is not None and 0 <= i < len(self.event_ids):
            return f"decision {i} (event_id {self.event_ids[i]!s})"
        return f"decision {i}"

    def _decision_of(self, flat_pos: int, offsets: IntArray) -> int:
        return int(np.searchsorted(offsets, flat_pos, side="right") - 1)

    @staticmethod
    def _int_array(name: str, value: Any) -> IntArray:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise OPEInputError(f"{name}: expected integers, got dtype {arr.dtype}")
        return arr.astype(np.int64, copy=False)

    def _float_array(self, name: str, value: Any, shape: tuple[int], kind: str) -> FloatArray:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise OPEInputError(f"{name}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
        if arr.shape != shape:
            raise OPEInputError(f"{name}: expected shape {shape}, got {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            j = int(bad[0])
            if kind == "flat":
                i = self._decision_of(j, np.asarray(self.offsets))
                place = f"flat position {j} ({self.where(i)})"
            else:
                place = self.where(j)
            raise OPEInputError(f"{name}: NaN or infinite value at {place}")
        return arr

    def _check_distribution(self, name: str, p: FloatArray, offsets: IntArray) -> None:
        bad = np.flatnonzero((p < 0.0) | (p > 1.0))
        if bad.size:
            j = int(bad[0])
            i = self._decision_of(j, offsets)
            raise OPEInputError(
                f"{name}: probability {float(p[j]):.8g} outside [0, 1] at {self.where(i)}"
            )
        sums = segment_sum(p, offsets)
        bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(
                f"{name}: probabilities do not sum to 1 per decision ({bad.size} "
                f"decision(s)); first at {self.where(i)}: sum {float(sums[i]):.8g}"
            )

    # ---------------------------------------------------------------- derived
    @property
    def n_decisions(self) -> int:
        """Number of decisions ``n``."""
        return int(self.offsets.shape[0] - 1)

    @property
    def n_flat(self) -> int:
        """Number of (decision, eligible action) pairs ``m``."""
        return int(self.offsets[-1])

    @cached_property
    def sizes(self) -> IntArray:
        """Eligible actions per decision, shape (n,)."""
        return _frozen(np.diff(self.offsets))

    @cached_property
    def chosen_flat(self) -> IntArray:
        """Flat position of each logged action, shape (n,)."""
        return _frozen(self.offsets[:-1] + self.action)

    @cached_property
    def importance_weights(self) -> FloatArray:
        """``w_i = pi(a_i | x_i) / pscore_i``, shape (n,)."""
        return _frozen(self.action_dist[self.chosen_flat] / self.pscore)

    @cached_property
    def decision_of_flat(self) -> IntArray:
        """Decision index of each flat position, shape (m,)."""
        return _frozen(np.repeat(np.arange(self.n_decisions, dtype=np.int64), self.sizes))

    def with_target(
        self, action_dist: npt.ArrayLike, estimated_rewards: npt.ArrayLike | None = None
    ) -> LoggedData:
        """The same log with another target policy (and optionally reward predictions).

        Parameters
        ----------
        action_dist : array of float, shape (m,)
        estimated_rewards : array of float, shape (m,), optional
            Kept from this log when not given.
        """
        est = self.estimated_rewards
        if estimated_rewards is not None:
            est = np.asarray(estimated_rewards)
        return replace(self, action_dist=np.asarray(action_dist), estimated_rewards=est)

    def require_estimated_rewards(self, who: str) -> FloatArray:
        """Return ``estimated_rewards`` or fail naming the estimator that needs it."""
        if self.estimated_rewards is None:
            raise OPEInputError(
                f"{who}: needs estimated_rewards (a reward-model prediction for every "
                "eligible action); build them with nba.ope.cross_fit"
            )
        return self.estimated_rewards
