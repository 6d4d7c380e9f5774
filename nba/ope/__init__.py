"""Off-policy evaluation: estimators, intervals, diagnostics, cross-fitting.

Inputs are ragged (flat arrays plus ``offsets``) and validated once in
:class:`LoggedData`; every estimator shares ``estimate_policy_value`` and
``estimate_interval``.
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
