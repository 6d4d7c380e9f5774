"""Warnings a data scientist needs before trusting an off-policy estimate.

Three checks, each returning structured :class:`OPEWarning` records (a code,
a plain-text message, the policy and estimators concerned, and the numbers
behind it) that reports print, serialise and log:

* ``reward_model_no_better_than_constant``: the cross-fitted reward model's
  held-out MSE is not below that of the constant mean predictor on the same
  folds; then DM, DR, SNDR, SWITCH-DR and clipped DR rest on a model that
  learned nothing and are marked unreliable.
* ``estimators_disagree``: two estimators of the same policy, with the same
  interval kind, disagree when either one's point estimate lies outside the
  other's interval (``disjoint`` when the intervals do not even overlap).
* ``low_ess``: the importance weights' effective sample size
  ``(sum w)^2 / sum w^2`` is below ``min_ess_share * n`` (default 10 %).

>>> w = disagreement_checks("p", "gaussian", [("ips", 0.0066, 0.001, 0.012),
...                                           ("snips", 0.0987, 0.05, 0.15)])
>>> w[0].code, w[0].values["disjoint"]
('estimators_disagree', 1.0)
>>> ess_check("p", ess=40.0, n=1000) is not None
True
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nba.ope.data import OPEInputError

#: default: warn when ESS < 10 % of the decisions
DEFAULT_MIN_ESS_SHARE = 0.1
#: estimators that rest on the reward model
REWARD_MODEL_ESTIMATORS: tuple[str, ...] = ("dm", "dr", "sndr", "switch_dr", "clipped_dr")

REWARD_MODEL_CODE = "reward_model_no_better_than_constant"
DISAGREE_CODE = "estimators_disagree"
LOW_ESS_CODE = "low_ess"


@dataclass(frozen=True)
class OPEWarning:
    """One warning about an evaluation.

    Attributes
    ----------
    code : str
        ``reward_model_no_better_than_constant``, ``estimators_disagree`` or ``low_ess``.
    message : str
        One plain-text sentence.
    policy : str or None
        The target policy concerned (None: the whole evaluation).
    estimators : tuple of str
        The estimators concerned.
    interval : str or None
        The interval kind compared (disagreement only).
    values : dict of str to float
        The numbers behind the warning.
    """

    code: str
    message: str
    policy: str | None = None
    estimators: tuple[str, ...] = ()
    interval: str | None = None
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "code": self.code,
            "message": self.message,
            "policy": self.policy,
            "estimators": list(self.estimators),
            "interval": self.interval,
            "values": dict(self.values),
        }

    def line(self) -> str:
        """The warning as one printed line."""
        who = f"{self.policy}: " if self.policy else ""
        return f"warning: {who}{self.message}"


def check_min_ess_share(value: object) -> float:
    """``value`` as a share in [0, 1], or a one-line error naming it.

    >>> check_min_ess_share(0.05)
    0.05
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise OPEInputError(f"--min-ess-share: must be a number in [0, 1], got {value!r}")
    return float(value)


def reward_model_check(
    heldout_mse: float, constant_mse: float, estimators: Iterable[str] = REWARD_MODEL_ESTIMATORS
) -> OPEWarning | None:
    """Warn when the reward model is no better than the constant mean predictor.

    Parameters
    ----------
    heldout_mse, constant_mse : float
        Cross-fitted held-out MSE of the model's prediction for the logged
        action, and of the training folds' mean reward, on the same folds.
    estimators : iterable of str
        Estimators of the evaluation that use the reward model (marked unreliable).

    Returns
    -------
    OPEWarning or None
        None when ``heldout_mse < constant_mse``.

    >>> reward_model_check(0.010, 0.012) is None
    True
    >>> reward_model_check(0.013, 0.012).code
    'reward_model_no_better_than_constant'
    """
    if heldout_mse < constant_mse:
        return None
    names = tuple(e for e in estimators if e in REWARD_MODEL_ESTIMATORS)
    which = ", ".join(n.upper() for n in names) or "DM/DR-family estimates"
    return OPEWarning(
        REWARD_MODEL_CODE,
        f"reward model held-out MSE {heldout_mse:.6f} is not below the constant mean "
        f"predictor's {constant_mse:.6f} on the same folds: {which} unreliable",
        estimators=names,
        values={"heldout_mse": float(heldout_mse), "constant_mse": float(constant_mse)},
    )


def disagreement_checks(
    policy: str | None,
    interval: str | None,
    results: Sequence[tuple[str, float, float, float]],
) -> list[OPEWarning]:
    """Pairs of estimators of one policy whose estimates disagree beyond their intervals.

    A pair disagrees when either point estimate lies outside the other's
    interval; it is *disjoint* when the intervals do not overlap at all.

    Parameters
    ----------
    policy : str or None
    interval : str or None
        The interval kind all ``results`` share.
    results : sequence of (estimator, estimate, low, high)

    Returns
    -------
    list of OPEWarning
        One per disagreeing pair, in the order of ``results``.

    >>> disagreement_checks("p", "gaussian", [("ips", 0.10, 0.08, 0.12),
    ...                                       ("snips", 0.11, 0.09, 0.13)])
    []
    """
    out = []
    for (ea, va, la, ha), (eb, vb, lb, hb) in itertools.combinations(results, 2):
        a_out, b_out = not (lb <= va <= hb), not (la <= vb <= ha)
        if not (a_out or b_out):
            continue
        disjoint = ha < lb or hb < la
        how = (
            "their intervals are disjoint"
            if disjoint
            else (f"{ea} lies outside {eb}'s interval" if a_out else "")
            + (" and " if a_out and b_out else "")
            + (f"{eb} lies outside {ea}'s interval" if b_out else "")
        )
        out.append(
            OPEWarning(
                DISAGREE_CODE,
                f"{ea.upper()} {va:.5f} [{la:.5f}, {ha:.5f}] and {eb.upper()} {vb:.5f} "
                f"[{lb:.5f}, {hb:.5f}] ({interval}) disagree: {how}; trust neither without "
                "checking weights and the reward model",
                policy=policy,
                estimators=(ea, eb),
                interval=interval,
                values={
                    f"{ea}_estimate": float(va),
                    f"{eb}_estimate": float(vb),
                    "disjoint": float(disjoint),
                },
            )
        )
    return out


def ess_check(
    policy: str | None, ess: float, n: int, min_ess_share: float = DEFAULT_MIN_ESS_SHARE
) -> OPEWarning | None:
    """Warn when the effective sample size is below ``min_ess_share * n``.

    >>> ess_check("p", ess=500.0, n=1000) is None
    True
    """
    if n <= 0 or ess >= min_ess_share * n:
        return None
    return OPEWarning(
        LOW_ESS_CODE,
        f"effective sample size {ess:.1f} is {ess / n:.1%} of {n} decisions, below "
        f"{min_ess_share:.0%}: the estimate rests on few decisions",
        policy=policy,
        values={"ess": float(ess), "n": float(n), "min_ess_share": float(min_ess_share)},
    )


def warning_tags(warnings: Sequence[OPEWarning | dict[str, Any]]) -> dict[str, str]:
    """MLflow tags for warnings: ``warnings`` (the codes, JSON) and ``warning.<k>`` (each line).

    >>> warning_tags([])
    {'warnings': '[]'}
    """
    dicts = [w.to_dict() if isinstance(w, OPEWarning) else w for w in warnings]
    tags = {"warnings": json.dumps([d["code"] for d in dicts])}
    for k, d in enumerate(dicts):
        who = f"{d['policy']}: " if d.get("policy") else ""
        tags[f"warning.{k}"] = f"{d['code']}: {who}{d['message']}"[:5000]
    return tags
