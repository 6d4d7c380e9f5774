"""Diagnostics that go with every off-policy estimate.

How much an estimate can be trusted depends on the importance weights and on
support: the target policy may put probability on actions the logging policy
could not choose (``pscore_all == 0``) or never did choose in this log. Those
shares are reported, with plain-text warnings when they pass a threshold.

>>> import numpy as np
>>> from nba.ope.data import LoggedData
>>> data = LoggedData(offsets=np.array([0, 2, 4]),
...                   action_dist=np.array([0.5, 0.5, 0.5, 0.5]),
...                   reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
...                   action=np.array([0, 1]))
>>> d = diagnose(data)
>>> d.n, d.ess, d.max_weight
(2, 2.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nba.ope.data import LoggedData


@dataclass(frozen=True)
class Diagnostics:
    """Weight and support diagnostics of one (log, target policy) pair.

    Attributes
    ----------
    n : int
        Decisions.
    ess : float
        Effective sample size of the importance weights, ``(sum w)^2 / sum w^2``.
    max_weight, mean_weight : float
        Of ``w_i = pi(a_i|x_i) / pscore_i``; ``mean_weight`` should be near 1.
    unsupported_share : float or None
        Share of the target's probability on actions the logging policy gave
        probability 0 (needs ``pscore_all``).
    unlogged_share : float or None
        Share of the target's probability on action ids that were never the
        logged action anywhere in this log (needs ``action_ids``).
    unlogged_actions : tuple of (action id, share)
        The action ids behind ``unlogged_share``, largest share first (at most 10).
    default_reward_share : float or None
        Share of decisions whose reward is the default (needs ``default_reward``).
    warnings : tuple of str
        Plain-text warnings; empty when nothing looks wrong.
    """

    n: int
    ess: float
    max_weight: float
    mean_weight: float
    unsupported_share: float | None
    unlogged_share: float | None
    default_reward_share: float | None
    unlogged_actions: tuple[tuple[Any, float], ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Flat dict of the numeric fields and the joined warnings."""
        return {
            "n": self.n,
            "ess": self.ess,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "unsupported_share": self.unsupported_share,
            "unlogged_share": self.unlogged_share,
            "default_reward_share": self.default_reward_share,
            "warnings": "; ".join(self.warnings),
        }


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value; anything else (e.g. a str id) as is."""
    return value.item() if isinstance(value, np.generic) else value


def diagnose(
    data: LoggedData,
    *,
    max_unsupported_share: float = 0.01,
    min_ess_share: float = 0.01,
    min_ess: float = 30.0,
) -> Diagnostics:
    """Compute :class:`Diagnostics` for ``data``.

    Parameters
    ----------
    data : LoggedData
    max_unsupported_share : float
        Warn when more than this share of target probability is unsupported or
        on never-logged actions.
    min_ess_share, min_ess : float
        Warn when ESS is below ``min_ess_share * n`` or below ``min_ess``.

    Returns
    -------
    Diagnostics
    """
    n = data.n_decisions
    w = data.importance_weights
    sum_w = float(np.sum(w))
    sum_w2 = float(np.dot(w, w))
    ess = sum_w * sum_w / sum_w2 if sum_w2 > 0 else 0.0
    warnings: list[str] = []
    if ess < min_ess_share * n or ess < min_ess:
        warnings.append(
            f"effective sample size is tiny: {ess:.1f} of {n} decisions; "
            "the target policy rarely agrees with the logged actions"
        )
    mean_w = sum_w / n
    se_w = float(np.std(w) / np.sqrt(n))
    if n >= 100 and abs(mean_w - 1.0) > max(0.05, 4.0 * se_w):
        warnings.append(
            f"mean importance weight is {mean_w:.3f}, far from 1: propensities may be "
            "wrong or the target policy leaves the logging support"
        )

    unsupported = None
    if data.pscore_all is not None:
        unsupported = float(np.sum(data.action_dist[data.pscore_all <= 0.0])) / n
        if unsupported > max_unsupported_share:
            warnings.append(
                f"poor support: {unsupported:.1%} of the target policy's probability is on "
                "actions the logging policy could not choose; IPS/DR are biased there"
            )

    unlogged = None
    unlogged_actions: tuple[tuple[Any, float], ...] = ()
    if data.action_ids is not None:
        uniq, codes = np.unique(data.action_ids, return_inverse=True)
        codes = codes.reshape(-1)
        logged = np.zeros(uniq.shape[0], dtype=bool)
        logged[codes[data.chosen_flat]] = True
        mass = np.bincount(codes, weights=data.action_dist, minlength=uniq.shape[0]) / n
        never = ~logged
        unlogged = float(np.sum(mass[never]))
        order = np.argsort(-mass[never], kind="stable")[:10]
        never_ids = uniq[never]
        unlogged_actions = tuple(
            (_plain(never_ids[j]), float(mass[never][j])) for j in order if mass[never][j] > 0
        )
        if unlogged > max_unsupported_share:
            top = ", ".join(f"{a} ({s:.1%})" for a, s in unlogged_actions[:3])
            warnings.append(
                f"poor support: {unlogged:.1%} of the target policy's probability is on "
                f"actions never chosen in this log (e.g. {top})"
            )

    default_share = None
    if data.default_reward is not None:
        default_share = float(np.mean(data.default_reward))

    return Diagnostics(
        n=n,
        ess=ess,
        max_weight=float(np.max(w)),
        mean_weight=mean_w,
        unsupported_share=unsupported,
        unlogged_share=unlogged,
        default_reward_share=default_share,
        unlogged_actions=unlogged_actions,
        warnings=tuple(warnings),
    )
