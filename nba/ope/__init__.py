"""Off-policy evaluation: estimators, intervals, diagnostics, cross-fitting.

Inputs are ragged (flat arrays plus ``offsets``) and validated once in
:class:`LoggedData`; every estimator (IPS, SNIPS, DM, DR, SNDR, SWITCH-DR,
clipped DR) shares ``estimate_policy_value`` and ``estimate_interval``
(bootstrap, Gaussian, empirical Bernstein); :func:`diagnose` gives ESS, weight
and support diagnostics; :func:`evaluate_policy` returns all three per
estimator; :func:`cross_fit` produces out-of-fold reward predictions for the
DM/DR family.

>>> import numpy as np
>>> data = LoggedData(
...     offsets=np.array([0, 2, 5]),                      # 2 decisions: 2 and 3 actions
...     action_dist=np.array([0.9, 0.1, 0.2, 0.2, 0.6]),  # target policy
...     reward=np.array([1.0, 0.0]),
...     pscore=np.array([0.5, 0.25]),                     # logging prob. of the logged action
...     action=np.array([0, 1]),                          # position within each set
... )
>>> [round(r.interval.estimate, 3) for r in evaluate_policy(data, [IPS(), SNIPS()],
...                                                          method="gaussian")]
[0.9, 0.692]
"""

from __future__ import annotations

from nba.ope.cross_fit import (
    CrossFitResult,
    PerActionMean,
    RidgeRewardModel,
    block_folds,
    cross_fit,
    flat_positions,
    group_folds,
)
from nba.ope.data import LoggedData, OPEInputError, segment_sum
from nba.ope.diagnostics import Diagnostics, diagnose
from nba.ope.estimators import (
    DM,
    DR,
    ESTIMATORS,
    INTERVAL_METHODS,
    IPS,
    SNDR,
    SNIPS,
    BaseOffPolicyEstimator,
    ClippedDR,
    Interval,
    SwitchDR,
    make_estimator,
)
from nba.ope.results import OPEResult, evaluate_policy

__all__ = [
    "DM",
    "DR",
    "ESTIMATORS",
    "INTERVAL_METHODS",
    "IPS",
    "SNDR",
    "SNIPS",
    "BaseOffPolicyEstimator",
    "ClippedDR",
    "CrossFitResult",
    "Diagnostics",
    "Interval",
    "LoggedData",
    "OPEInputError",
    "OPEResult",
    "PerActionMean",
    "RidgeRewardModel",
    "SwitchDR",
    "block_folds",
    "cross_fit",
    "diagnose",
    "evaluate_policy",
    "flat_positions",
    "group_folds",
    "make_estimator",
    "segment_sum",
]
