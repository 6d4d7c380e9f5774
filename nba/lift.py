"""Holdout lift: treated minus holdout mean outcome per decision, with an interval.

Holdout membership is drawn per HCP (``nba.contact.ContactPolicy.is_holdout``), so
decisions of one HCP are not independent draws: the interval treats HCPs as the
sampling unit. For each arm, with ``y_h`` the summed outcome and ``n_h`` the
number of decisions of HCP ``h`` (``H`` HCPs), the mean per decision is
``m = sum(y_h) / sum(n_h)`` and its cluster-robust (delta-method) variance is::

    v = H / (H - 1) * sum((y_h - m * n_h) ** 2) / sum(n_h) ** 2

The lift is ``m_treated - m_holdout`` with the normal interval
``lift +- z(1 - alpha/2) * sqrt(v_treated + v_holdout)``. It estimates the
effect per decision of serving the policy instead of the holdout's treatment,
everything downstream included (fatigue, stage changes), because arms are
randomized by HCP.

>>> import numpy as np
>>> y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
>>> hold = np.array([False, False, False, False, True, True, True, True])
>>> hcp = np.array(["a", "a", "b", "c", "d", "d", "e", "f"])
>>> est = holdout_lift(y, hold, hcp)
>>> (est.treated_mean, est.holdout_mean, est.difference)
(0.75, 0.25, 0.5)
>>> est.low < 0.5 < est.high
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import ValidationError

F64 = npt.NDArray[np.float64]


class LiftError(ValidationError):
    """Inputs of a lift estimate are malformed; the message names them."""


@dataclass(frozen=True)
class LiftEstimate:
    """Treated vs holdout mean per decision and the ``1 - alpha`` interval of their
    difference (``nan`` bounds when an arm has fewer than 2 HCPs)."""

    treated_mean: float
    holdout_mean: float
    difference: float
    low: float
    high: float
    alpha: float
    decisions_treated: int
    decisions_holdout: int
    hcps_treated: int
    hcps_holdout: int
    method: str = "cluster-robust normal (HCP clusters)"

    def covers(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def _arm(y: F64, cluster: npt.NDArray[Any]) -> tuple[float, float, int, int]:
    """Mean per decision, its cluster-robust variance, decisions, clusters."""
    if y.size == 0:
        return float("nan"), float("nan"), 0, 0
    _, inv = np.unique(cluster, return_inverse=True)
    y_h = np.bincount(inv, weights=y)
    n_h = np.bincount(inv).astype(np.float64)
    h = y_h.size
    m = float(y_h.sum() / n_h.sum())
    if h < 2:
        return m, float("nan"), int(y.size), h
    v = h / (h - 1) * float(np.sum((y_h - m * n_h) ** 2)) / float(n_h.sum()) ** 2
    return m, v, int(y.size), h


def holdout_lift(
    y: npt.ArrayLike,
    holdout: npt.ArrayLike,
    cluster: npt.ArrayLike,
    alpha: float = 0.05,
) -> LiftEstimate:
    """Treated minus holdout mean of ``y`` per decision, HCP-clustered interval.

    Parameters
    ----------
    y : array of float, shape (n,)
        Outcome of each decision (an engagement indicator, a value, ...).
    holdout : array of bool, shape (n,)
        True for decisions of holdout HCPs.
    cluster : array, shape (n,)
        HCP of each decision.
    alpha : float
        In (0, 1).

    Returns
    -------
    LiftEstimate
    """
    y_arr = np.asarray(y, dtype=np.float64)
    hold = np.asarray(holdout)
    cl = np.asarray(cluster)
    if y_arr.ndim != 1 or hold.shape != y_arr.shape or cl.shape != y_arr.shape:
        raise LiftError(
            f"y, holdout and cluster must be 1-d of one length, got shapes "
            f"{y_arr.shape}, {hold.shape}, {cl.shape}"
        )
    if hold.dtype != np.bool_:
        raise LiftError(f"holdout must be boolean, got dtype {hold.dtype}")
    if not np.all(np.isfinite(y_arr)):
        raise LiftError("y has a non-finite value")
    if not (isinstance(alpha, float | int) and 0.0 < float(alpha) < 1.0):
        raise LiftError(f"alpha must be in (0, 1), got {alpha!r}")
    m_t, v_t, n_t, h_t = _arm(y_arr[~hold], cl[~hold])
    m_h, v_h, n_h, h_h = _arm(y_arr[hold], cl[hold])
    diff = m_t - m_h
    from scipy import stats  # here: importing scipy.stats costs the service's start 1.5 s of CPU

    half = float(stats.norm.ppf(1.0 - float(alpha) / 2.0)) * math.sqrt(v_t + v_h)
    return LiftEstimate(
        treated_mean=m_t,
        holdout_mean=m_h,
        difference=diff,
        low=diff - half,
        high=diff + half,
        alpha=float(alpha),
        decisions_treated=n_t,
        decisions_holdout=n_h,
        hcps_treated=h_t,
        hcps_holdout=h_h,
    )
