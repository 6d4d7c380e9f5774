"""One call that gives every estimate with its interval and diagnostics.

>>> import numpy as np
>>> from nba.ope.data import LoggedData
>>> from nba.ope.estimators import IPS, SNIPS
>>> data = LoggedData(offsets=np.array([0, 2, 4]),
...                   action_dist=np.array([1.0, 0.0, 0.5, 0.5]),
...                   reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
...                   action=np.array([0, 1]))
>>> [r.estimator for r in evaluate_policy(data, [IPS(), SNIPS()], method="gaussian")]
['ips', 'snips']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nba.ope.data import LoggedData
from nba.ope.diagnostics import Diagnostics, diagnose
from nba.ope.estimators import BaseOffPolicyEstimator, Interval, IntervalMethod


@dataclass(frozen=True)
class OPEResult:
    """One estimator's estimate, interval and the log's diagnostics."""

    estimator: str
    params: dict[str, Any]
    interval: Interval
    diagnostics: Diagnostics

    def as_row(self) -> dict[str, Any]:
        """Flat row for a report table (CSV / markdown / MLflow)."""
        row: dict[str, Any] = {
            "estimator": self.estimator,
            "params": ";".join(f"{k}={v}" for k, v in self.params.items()),
            "estimate": self.interval.estimate,
            "low": self.interval.low,
            "high": self.interval.high,
            "interval": self.interval.method,
            "alpha": self.interval.alpha,
            "notes": "; ".join(self.interval.notes),
        }
        row.update(self.diagnostics.as_dict())
        return row


def evaluate_policy(
    data: LoggedData,
    estimators: Sequence[BaseOffPolicyEstimator],
    *,
    method: IntervalMethod = "bootstrap",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: int = 0,
    **interval_kwargs: Any,
) -> list[OPEResult]:
    """Estimate, interval and diagnostics for each estimator on the same log.

    Parameters
    ----------
    data : LoggedData
    estimators : sequence of estimators
    method, alpha, n_bootstrap, seed, **interval_kwargs
        Passed to :meth:`BaseOffPolicyEstimator.estimate_interval`.

    Returns
    -------
    list of OPEResult, in the order of ``estimators``
    """
    diag = diagnose(data)
    return [
        OPEResult(
            est.name,
            dict(est.params),
            est.estimate_interval(data, alpha, method, n_bootstrap, seed, **interval_kwargs),
            diag,
        )
        for est in estimators
    ]
