"""Delay-corrected labels: learn from a decision before its reward window closes.

A decision's reward is final only when its window (14 days by default) has
closed, yet most of what will happen is visible within a day: an email is
opened the day it is sent or not at all, a rep's feedback comes the same
afternoon. Waiting for the window throws away the first two weeks of every
run; using the partial reward as if it were final biases every label low
(a click on day 3 is missing from a label taken on day 1).

The treatment here: at a fixed age ``a`` (whole days after the decision), the
label of a decision is the **expected final reward given what has been
observed by then**,

    label = E[R_final | channel, R_a]

where ``R_a`` is the reward computed from the outcomes stamped before the
decision's age reached ``a`` (the same reward definition, the same window).
The conditional expectation is estimated from decisions whose windows *have*
closed: for every (channel, observed partial reward) cell it keeps the count
and the sum of final rewards, and predicts their mean, shrunk towards ``R_a``
with ``prior_weight`` pseudo-decisions (a cell never seen predicts ``R_a``
itself: nothing more will arrive). Partial rewards take few distinct values
(sums of a handful of outcome weights), so the cells are few and fill fast.

What it corrects and what it does not:

- It is unbiased on average within each (channel, ``R_a``) cell as soon as
  the cells are estimated from enough closed decisions that were made like
  the ones being labelled (same delay pattern).
- It is *not* conditioned on the context: among decisions with nothing
  observed by day 1, engaged HCPs are more likely to click later than
  disengaged ones; the label gives both the cell's mean. The learner then sees
  a compressed signal for late responders, never a wrong-signed one.
- Before any window has closed there is nothing to estimate from, and labels
  are the partial rewards (biased low, as waiting would have given no label
  at all).

The simulator measures the bias of these labels against the final rewards of
the same decisions (docs/push_vs_pull.md, "Learning as outcomes arrive").

>>> import numpy as np
>>> dc = DelayCorrection(["email", "rep_visit"], prior_weight=0.0)
>>> dc.observe(np.array([0, 0, 0, 0]), np.array([0.0, 0.0, 0.0, 0.2]),
...            np.array([0.0, 0.0, 0.6, 0.8]))
>>> dc.label(np.array([0, 0, 1]), np.array([0.0, 0.2, 0.0])).round(3).tolist()
[0.2, 0.8, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import ValidationError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: partial rewards are keyed after rounding to this many decimals
KEY_DECIMALS = 9


class DelayCorrectionError(ValidationError):
    """Inputs to :class:`DelayCorrection` were refused; the message names them."""


@dataclass(frozen=True)
class Cell:
    """One (channel, partial reward) cell of a :class:`DelayCorrection`."""

    channel: str
    partial: float
    n: int
    mean_final: float


class DelayCorrection:
    """E[final reward | channel, partial reward at a fixed age], from closed windows.

    Parameters
    ----------
    channels : sequence of str
        Channel names; arrays passed to :meth:`observe` and :meth:`label` hold
        indices into this sequence.
    prior_weight : float
        Pseudo-decisions at ``R_final = R_a`` added to every cell (shrinkage
        towards the observed partial reward while a cell is small). 0 gives the
        plain cell mean.

    Attributes
    ----------
    n_observed_ : int
        Closed decisions observed so far.
    """

    def __init__(self, channels: Sequence[str], prior_weight: float = 1.0) -> None:
        if not channels:
            raise DelayCorrectionError("delay correction: channels must not be empty")
        if not np.isfinite(prior_weight) or prior_weight < 0:
            raise DelayCorrectionError(
                f"delay correction: prior_weight must be a finite number >= 0, got {prior_weight!r}"
            )
        self.channels = tuple(channels)
        self.prior_weight = float(prior_weight)
        self._n: dict[tuple[int, float], int] = {}
        self._sum: dict[tuple[int, float], float] = {}
        self.n_observed_ = 0

    @property
    def params(self) -> dict[str, Any]:
        return {"delay_prior_weight": self.prior_weight}

    def _check(self, channel: Any, partial: Any, what: str) -> tuple[I64, F64]:
        ch = np.asarray(channel)
        pa = np.asarray(partial, dtype=np.float64)
        if ch.ndim != 1 or pa.shape != ch.shape:
            raise DelayCorrectionError(
                f"delay correction: {what}: channel and partial must be 1-d arrays of one "
                f"length, got shapes {ch.shape} and {pa.shape}"
            )
        if ch.size and (
            ch.dtype.kind not in "iu" or ch.min() < 0 or ch.max() >= len(self.channels)
        ):
            raise DelayCorrectionError(
                f"delay correction: {what}: channel indices must be integers in "
                f"[0, {len(self.channels)}), got {ch.dtype} values {ch.min()}..{ch.max()}"
            )
        if not np.all(np.isfinite(pa)):
            raise DelayCorrectionError(f"delay correction: {what}: partial rewards must be finite")
        return ch.astype(np.int64), pa

    def observe(self, channel: I64, partial: F64, final: F64) -> None:
        """Add decisions whose window has closed.

        Parameters
        ----------
        channel : ndarray of int, shape (n,)
            Index into :attr:`channels` of each decision's chosen action.
        partial : ndarray of float64, shape (n,)
            Reward from the outcomes observed by the labelling age.
        final : ndarray of float64, shape (n,)
            Reward once the window closed.
        """
        ch, pa = self._check(channel, partial, "observe")
        fi = np.asarray(final, dtype=np.float64)
        if fi.shape != pa.shape or not np.all(np.isfinite(fi)):
            raise DelayCorrectionError(
                "delay correction: observe: final must be finite and shaped like partial"
            )
        if not ch.size:
            return
        key = np.round(pa, KEY_DECIMALS)
        cells, inv = np.unique(np.stack([ch.astype(np.float64), key]), axis=1, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv, minlength=cells.shape[1])
        sums = np.bincount(inv, weights=fi, minlength=cells.shape[1])
        for j in range(cells.shape[1]):
            k = (int(cells[0, j]), float(cells[1, j]))
            self._n[k] = self._n.get(k, 0) + int(counts[j])
            self._sum[k] = self._sum.get(k, 0.0) + float(sums[j])
        self.n_observed_ += int(ch.size)

    def label(self, channel: I64, partial: F64) -> F64:
        """Delay-corrected labels.

        Parameters
        ----------
        channel : ndarray of int, shape (n,)
        partial : ndarray of float64, shape (n,)

        Returns
        -------
        ndarray of float64, shape (n,)
            ``(sum_final + prior_weight * R_a) / (n + prior_weight)`` of each
            decision's cell; ``R_a`` itself for a cell never observed.
        """
        ch, pa = self._check(channel, partial, "label")
        out = pa.copy()
        if not ch.size or not self._n:
            return out
        key = np.round(pa, KEY_DECIMALS)
        cells, inv = np.unique(np.stack([ch.astype(np.float64), key]), axis=1, return_inverse=True)
        inv = inv.reshape(-1)
        k0 = self.prior_weight
        for j in range(cells.shape[1]):
            k = (int(cells[0, j]), float(cells[1, j]))
            n = self._n.get(k, 0)
            if n == 0:
                continue
            sel = inv == j
            out[sel] = (self._sum[k] + k0 * pa[sel]) / (n + k0)
        return out

    def cells(self) -> list[Cell]:
        """Every observed cell, by channel then partial reward (for reports)."""
        return [
            Cell(self.channels[c], p, self._n[(c, p)], self._sum[(c, p)] / self._n[(c, p)])
            for c, p in sorted(self._n)
        ]


__all__ = ["Cell", "DelayCorrection", "DelayCorrectionError"]
