"""The promotion gate's error rates, measured on the study's pools.

The gate (``nba promote``) promotes a challenger when the lower bound of the
paired interval on ``V(challenger) - V(champion)``, computed on the same
logged decisions, exceeds ``min_lift``. On every pool the champion is the
segment rules (epsilon 0.1) and three challengers are built whose true value
on the pool is known exactly:

* ``identical``: the champion itself (true difference 0; the paired
  difference is then exactly 0 and must never promote);
* ``equal_value``: a different policy with the same true value, the mixture
  ``lam * oracle + (1 - lam) * uniform`` with ``lam`` solved so that its value
  on the pool equals the champion's (true difference 0, different actions:
  the honest null);
* ``lift``: the same mixture solved for ``(1 + lift) * V(champion)`` (a true
  relative lift, 5 % by default).

Each repetition draws a fresh log from the pool (as the rest of the study
does) and applies the gate for every estimator and interval kind. The
false-promotion rate is the share of ``equal_value`` (and ``identical``)
repetitions promoted; the power is the share of ``lift`` repetitions promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nba.ope import LoggedData
from nba.ope.estimators import BaseOffPolicyEstimator

F64 = npt.NDArray[np.float64]

SCENARIOS: tuple[str, ...] = ("identical", "equal_value", "lift")
CHAMPION = "segment"


@dataclass(frozen=True)
class GatePolicies:
    """The champion and the challengers of one pool, with their true differences."""

    champion: F64
    challengers: dict[str, F64]
    true_difference: dict[str, float]
    champion_value: float
    mixture_weight: dict[str, float]


def _value(dist: F64, truth: F64, offsets: npt.NDArray[np.int64]) -> float:
    return float(np.mean(np.add.reduceat(dist * truth, offsets[:-1])))


def gate_policies(pool: Any, lift: float) -> GatePolicies:
    """Champion (segment rules) and challengers of known true value on ``pool``.

    ``pool.targets`` must hold ``segment``, ``oracle`` and ``uniform``.

    Raises
    ------
    ValueError
        When ``(1 + lift) * V(segment)`` lies outside ``[V(uniform), V(oracle)]``
        (no mixture of the two reaches it).
    """
    off, truth = pool.offsets, pool.truth
    champ = pool.targets[CHAMPION]
    oracle, uniform = pool.targets["oracle"], pool.targets["uniform"]
    v_c, v_o, v_u = (_value(x, truth, off) for x in (champ, oracle, uniform))
    challengers = {"identical": champ}
    true_diff = {"identical": 0.0}
    weights = {"identical": float("nan")}
    for scenario, goal in (("equal_value", v_c), ("lift", (1.0 + lift) * v_c)):
        lam = (goal - v_u) / (v_o - v_u)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(
                f"pool seed {pool.seed} ({pool.overlap}): value {goal:.5f} is outside "
                f"[uniform {v_u:.5f}, oracle {v_o:.5f}]; no oracle/uniform mixture reaches it"
            )
        dist = lam * oracle + (1.0 - lam) * uniform
        challengers[scenario] = dist
        true_diff[scenario] = _value(dist, truth, off) - v_c
        weights[scenario] = float(lam)
    return GatePolicies(champ, challengers, true_diff, v_c, weights)


def evaluate_gate(
    policies: GatePolicies,
    base: LoggedData,
    flat: npt.NDArray[np.int64],
    estimators: list[BaseOffPolicyEstimator],
    intervals: tuple[str, ...],
    alpha: float,
    min_lift: float,
    n_bootstrap: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Apply the paired gate to every scenario on one drawn log.

    Parameters
    ----------
    policies : GatePolicies
    base : LoggedData
        The drawn log (any target in ``action_dist``; it is replaced).
    flat : ndarray of int64, shape (m,)
        Pool entry of each of the draw's entries.
    estimators, intervals, alpha, min_lift, n_bootstrap, seed
        The gate's settings.

    Returns
    -------
    list of dict
        One row per (scenario, estimator, interval).
    """
    from dataclasses import replace

    champ = replace(base, action_dist=policies.champion[flat])
    rows = []
    for scenario in SCENARIOS:
        chal = replace(base, action_dist=policies.challengers[scenario][flat])
        for est in estimators:
            for method in intervals:
                kw: dict[str, Any] = {}
                if method == "bootstrap":
                    kw = {"n_bootstrap": n_bootstrap, "seed": seed, "resampling": "poisson"}
                iv = est.estimate_difference(chal, champ, alpha, method, **kw)  # type: ignore[arg-type]
                rows.append(
                    {
                        "scenario": scenario,
                        "estimator": est.name,
                        "interval": method,
                        "difference": iv.estimate,
                        "low": iv.low,
                        "high": iv.high,
                        "true_difference": policies.true_difference[scenario],
                        "champion_value": policies.champion_value,
                        "promoted": bool(iv.low > min_lift),
                    }
                )
    return rows


def summarize_gate(gate: pd.DataFrame) -> pd.DataFrame:
    """Promotion rate (with its binomial SE), coverage of the true difference and
    mean interval width per (overlap, size, scenario, estimator, interval)."""
    df = gate.copy()
    df["covered"] = (df["low"] <= df["true_difference"]) & (df["true_difference"] <= df["high"])
    df["width"] = df["high"] - df["low"]
    keys = ["overlap", "size", "scenario", "estimator", "interval"]
    out = (
        df.groupby(keys, sort=False)
        .agg(
            reps=("promoted", "size"),
            true_difference=("true_difference", "mean"),
            promotion_rate=("promoted", "mean"),
            coverage=("covered", "mean"),
            mean_width=("width", "mean"),
        )
        .reset_index()
    )
    p = out["promotion_rate"]
    out["promotion_se"] = np.sqrt(p * (1 - p) / out["reps"])
    return out


def gate_findings(summary: pd.DataFrame, alpha: float, lift: float) -> tuple[bool, list[str]]:
    """Whether every false-promotion rate is <= ``alpha``, and one plain line per
    (overlap, size, estimator, interval) with the false-promotion rates and the power.

    Parameters
    ----------
    summary : DataFrame
        Output of :func:`summarize_gate`.
    alpha : float
    lift : float
        The relative lift of the ``lift`` scenario (for the text).
    """
    keys = ["overlap", "size", "estimator", "interval"]
    lines = []
    ok = True
    for key, grp in summary.groupby(keys, sort=False):
        rec = {str(r["scenario"]): r for r in grp.to_dict("records")}
        fp = float(rec["equal_value"]["promotion_rate"])
        same = float(rec["identical"]["promotion_rate"])
        power = float(rec["lift"]["promotion_rate"])
        reps = int(rec["equal_value"]["reps"])
        ok = ok and fp <= alpha and same <= alpha
        overlap, size, est, interval = (str(k) for k in key)
        lines.append(
            f"{overlap} overlap, n={int(size):,}, {est}/{interval}: false promotion "
            f"{fp:.1%} (+-{float(rec['equal_value']['promotion_se']):.1%}) for an "
            f"equal-value challenger, {same:.1%} for an identical one; power {power:.1%} "
            f"(+-{float(rec['lift']['promotion_se']):.1%}) for a true {lift:.0%} lift; "
            f"{reps} repetitions"
        )
    return ok, lines


def gate_headline(summary: pd.DataFrame) -> str:
    """The largest false-promotion rate and the range of the power, in one line."""
    null = summary[summary["scenario"] != "lift"].to_dict("records")
    worst = max(null, key=lambda r: float(r["promotion_rate"]))
    power = summary[summary["scenario"] == "lift"]["promotion_rate"]
    return (
        f"largest false-promotion rate {float(worst['promotion_rate']):.1%} "
        f"({worst['scenario']}, {worst['estimator']}/{worst['interval']}, {worst['overlap']} "
        f"overlap, n={int(worst['size']):,}); power for the lift {float(power.min()):.1%} to "
        f"{float(power.max()):.1%}"
    )
