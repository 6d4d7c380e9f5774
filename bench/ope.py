"""Benchmark of the OPE estimators on a large ragged log.

Builds a seeded synthetic log (default 1M decisions, 16-32 eligible actions
each, about 24M (decision, action) pairs), then times, in the same run:

* IPS, SNIPS and DR point estimates of ``nba.ope`` against two plain
  references computed on the same arrays: a per-decision Python loop and a
  naive padded (n, max_actions) numpy implementation (the layout Open Bandit
  Pipeline uses); the numbers must agree;
* 1,000 bootstrap resamples of each (multinomial, and the Poisson
  approximation) against a naive bootstrap that redraws indices and
  recomputes the estimator per resample (timed on a few resamples; the figure
  is seconds per resample, so the ratio is per resample too).

Run: ``.venv/bin/python bench/ope.py [--n 1000000] [--bootstrap 1000]``.
Targets (docs/DESIGN.md, "Performance budgets"): >= 5M decisions/s for IPS/SNIPS
point estimates; 1,000
bootstrap resamples of SNIPS on 1M decisions in <= 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from record import Figure, publish

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nba.ope import DR, IPS, SNIPS, LoggedData


def make_log(n: int, seed: int, min_actions: int = 16, max_actions: int = 32) -> LoggedData:
    """Seeded ragged log: softmax logging policy, a sharper softmax target, Bernoulli rewards."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_actions, max_actions + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    starts = offsets[:-1]

    def seg_softmax(s: np.ndarray) -> np.ndarray:
        e = np.exp(s - np.repeat(np.maximum.reduceat(s, starts), sizes))
        return e / np.repeat(np.add.reduceat(e, starts), sizes)

    m = int(offsets[-1])
    q = rng.beta(1.0, 8.0, size=m)
    pscore_all = seg_softmax(rng.normal(size=m))
    action_dist = seg_softmax(8.0 * q + rng.normal(size=m))
    # sample the logged action per decision from pscore_all, vectorized
    cum = np.cumsum(pscore_all)
    lo = np.concatenate([[0.0], cum])[starts]
    hi = cum[offsets[1:] - 1]
    flat = np.searchsorted(cum, lo + rng.random(n) * (hi - lo), side="right")
    flat = np.clip(flat, starts, offsets[1:] - 1)
    action = flat - starts
    reward = (rng.random(n) < q[flat]).astype(np.float64)
    q_hat = np.clip(q + rng.normal(0.0, 0.02, size=m), 0.0, 1.0)
    return LoggedData(
        offsets=offsets,
        action_dist=action_dist,
        reward=reward,
        pscore=pscore_all[flat],
        action=action,
        pscore_all=pscore_all,
        estimated_rewards=q_hat,
    )


def loop_reference(d: LoggedData) -> dict[str, float]:
    """Straight per-decision loop over Python floats."""
    off = d.offsets.tolist()
    pi = d.action_dist
    q = d.estimated_rewards
    assert q is not None
    act, rew, ps = d.action.tolist(), d.reward.tolist(), d.pscore.tolist()
    s_wr = s_w = s_dr = 0.0
    for i in range(len(act)):
        lo, hi = off[i], off[i + 1]
        a = lo + act[i]
        w = float(pi[a]) / ps[i]
        s_wr += w * rew[i]
        s_w += w
        s_dr += float(np.dot(pi[lo:hi], q[lo:hi])) + w * (rew[i] - float(q[a]))
    n = len(act)
    return {"ips": s_wr / n, "snips": s_wr / s_w, "dr": s_dr / n}


def padded_reference(d: LoggedData) -> dict[str, float]:
    """Naive padded (n, max_actions) arrays, as Open Bandit Pipeline lays them out."""
    n, k = d.n_decisions, int(d.sizes.max())
    col = np.arange(d.n_flat) - np.repeat(d.offsets[:-1], d.sizes)
    pi = np.zeros((n, k))
    q = np.zeros((n, k))
    pi[d.decision_of_flat, col] = d.action_dist
    assert d.estimated_rewards is not None
    q[d.decision_of_flat, col] = d.estimated_rewards
    rows = np.arange(n)
    w = pi[rows, d.action] / d.pscore
    dm = np.average(q, weights=pi, axis=1)
    return {
        "ips": float(np.mean(w * d.reward)),
        "snips": float(np.sum(w * d.reward) / np.sum(w)),
        "dr": float(np.mean(dm + w * (d.reward - q[rows, d.action]))),
    }


def naive_bootstrap(d: LoggedData, name: str, reps: int, seed: int) -> np.ndarray:
    """Per-resample loop: redraw n indices, recompute from the resampled decisions."""
    rng = np.random.default_rng(seed)
    n = d.n_decisions
    w = d.importance_weights
    r = d.reward
    dm = None
    if name == "dr":
        assert d.estimated_rewards is not None
        q = d.estimated_rewards
        dm = np.add.reduceat(d.action_dist * q, d.offsets[:-1]) + w * (r - q[d.chosen_flat])
    out = np.empty(reps)
    for b in range(reps):
        idx = rng.integers(0, n, size=n)
        if name == "ips":
            out[b] = np.mean(w[idx] * r[idx])
        elif name == "snips":
            out[b] = np.sum(w[idx] * r[idx]) / np.sum(w[idx])
        else:
            assert dm is not None
            out[b] = np.mean(dm[idx])
    return out


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="decisions")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples")
    ap.add_argument("--naive-resamples", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--skip-loop", action="store_true", help="skip the slow per-decision loop")
    args = ap.parse_args()

    print(f"os.cpu_count() = {os.cpu_count()}")
    print("load average at start (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if importlib.util.find_spec("obp") is None:
        print(
            "Open Bandit Pipeline is not installed: the in-run references are a plain "
            "per-decision loop and a naive padded implementation (OBP's layout)."
        )
    else:
        print("Open Bandit Pipeline is installed but not used by this benchmark.")

    t0 = time.perf_counter()
    data = make_log(args.n, args.seed)
    t_make = time.perf_counter() - t0
    print(
        f"log: {data.n_decisions:,} decisions, {data.n_flat:,} (decision, action) pairs, "
        f"{data.sizes.min()}-{data.sizes.max()} actions each; built and validated in "
        f"{t_make:.2f} s"
    )
    t_val, _ = best_of(
        lambda: LoggedData(
            data.offsets,
            data.action_dist,
            data.reward,
            data.pscore,
            data.action,
            pscore_all=data.pscore_all,
            estimated_rewards=data.estimated_rewards,
        ),
        1,
    )
    print(f"LoggedData validation alone: {t_val:.2f} s ({args.n / t_val / 1e6:.1f}M decisions/s)")

    # -------------------------------------------------------------- point estimates
    print("\npoint estimates (best of 5; derived arrays are rebuilt on every call)")
    ests = {"ips": IPS(), "snips": SNIPS(), "dr": DR()}

    results: dict[str, tuple[float, float]] = {}
    for name, est in ests.items():

        def run(est: Any = est) -> float:
            for cached in ("sizes", "chosen_flat", "importance_weights", "decision_of_flat"):
                data.__dict__.pop(cached, None)  # each call pays for the derived arrays
            return float(est.estimate_policy_value(data))

        results[name] = best_of(run, 5)

    t_pad, pad = best_of(lambda: padded_reference(data), 1)
    if args.skip_loop:
        t_loop, loop = float("nan"), None
    else:
        t_loop, loop = best_of(lambda: loop_reference(data), 1)

    header = f"{'estimator':<10}{'value':>12}{'seconds':>10}{'decisions/s':>14}"
    print(header + f"{'x padded':>10}{'x loop':>10}  agree")
    for name, (sec, value) in results.items():
        agree = abs(value - pad[name]) <= 1e-9 * max(1.0, abs(value))
        if loop is not None:
            agree = agree and abs(value - loop[name]) <= 1e-9 * max(1.0, abs(value))
        print(
            f"{name:<10}{value:>12.6f}{sec:>10.4f}{args.n / sec:>14,.0f}"
            f"{t_pad / sec:>10.1f}{t_loop / sec:>10.1f}  {'yes' if agree else 'NO'}"
        )
    print(f"padded reference (all three): {t_pad:.2f} s; loop reference: {t_loop:.2f} s")

    # -------------------------------------------------------------------- bootstrap
    print(f"\n{args.bootstrap} bootstrap resamples (n_jobs = default, 95 % percentile interval)")
    print(
        f"{'estimator':<10}{'resampling':<13}{'seconds':>9}{'s/resample':>12}"
        f"{'naive s/res':>13}{'ratio':>8}  interval"
    )
    boot: dict[tuple[str, str], float] = {}
    for name, est in ests.items():
        t0 = time.perf_counter()
        naive_bootstrap(data, name, args.naive_resamples, 1)
        t_naive = time.perf_counter() - t0
        per_naive = t_naive / args.naive_resamples
        for resampling in ("multinomial", "poisson"):
            t0 = time.perf_counter()
            iv = est.estimate_interval(
                data, n_bootstrap=args.bootstrap, seed=1, resampling=resampling
            )
            sec = time.perf_counter() - t0
            boot[name, resampling] = sec
            per = sec / args.bootstrap
            print(
                f"{name:<10}{resampling:<13}{sec:>9.2f}{per:>12.4f}{per_naive:>13.4f}"
                f"{per_naive / per:>8.1f}  [{iv.low:.6f}, {iv.high:.6f}]"
            )
    print(
        f"(naive bootstrap timed on {args.naive_resamples} resamples; its figure is per resample)"
    )
    print("load average at end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    size = f"{args.n:,} decisions"
    loop_ok = math.isfinite(t_loop)
    publish(
        "bench/ope.py",
        [
            *(
                Figure(f"{name.upper()} point estimate, {size}", args.n / sec, "decisions/s",
                       args.n / t_loop if loop_ok else args.n / t_pad,
                       "plain per-decision loop" if loop_ok else "padded (OBP-layout) reference",
                       ratio_name="× faster", goal="≥ 5M decisions/s",
                       met=args.n / sec >= 5e6)
                for name, (sec, _) in results.items()
            ),
            Figure(f"{args.bootstrap:,} bootstrap resamples of SNIPS, {size}",
                   boot["snips", "multinomial"], "s", goal="≤ 10 s",
                   met=boot["snips", "multinomial"] <= 10.0),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
