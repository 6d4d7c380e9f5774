"""Training throughput: ``nba train``'s path from Parquet logs (join + featurize +
write + learn) against VW's native parser learning the very same prepared
example file, same machine, same run (docs/DESIGN.md, "Performance budgets": ratio >= 0.8).

1. Simulate ~200k decisions with the simulator (campaign policy with uniform
   exploration) into a temporary log directory, or reuse ``--logs DIR``.
2. Run :func:`training.train.train` (no holdout) once with a work directory,
   which keeps the example file (timed, printed as "keeping the file").
3. Time :func:`training.train.train` as ``nba train`` runs it, without a work
   directory (reward join in DuckDB, bulk featurization, labelling, and VW
   learning the example stream with its own parser; no example file), and
   VW's native parser alone (:func:`nba.policies.vw.train_from_file`) on the
   file of step 2 with the same command line.

Both figures are decisions per second of wall-clock time. CPU seconds (this
process plus its children, since ``nba train`` streams examples to VW running in
a child process) are printed too: the machine may be shared, and the streaming
path uses a second core for VW while the first joins and featurizes.

The two sides run ``--repeat`` times as pairs, one run of each side per pair,
alternating (the first pair runs ``nba train`` first, the next VW's parser
first, and so on), so that a change of load from other jobs hits both alike.
Printed: each pair's figures and ratio; the best wall time of each side and
the ratio of those (the "ratio" line, as before); and the median of the
pairs' ratios with their least and greatest (the reference's own spread
between runs is as large as most changes, so one ratio says little). Every
run's model is checked to be the same bytes. The load average
(``os.getloadavg``) is printed before and after.
Figures only, no assertions. Usage::

    python bench/train.py [--hcps 14000] [--days 90] [--logs DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nba.logs import io as logio
from nba.policies.vw import FileTrainResult, VWConfig, train_from_file
from nba.reward import RewardDefinition
from training.train import TrainResult, train

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also when imported
from record import Figure, publish

TARGET = 0.8
T = TypeVar("T")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (VW runs in one)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall seconds, CPU seconds (this process and its children) and the result of
    one call of ``fn``."""
    w0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - w0, _cpu() - c0, out


@dataclass(frozen=True)
class Pair:
    """One run of each side, back to back.

    Attributes
    ----------
    nba_wall, nba_cpu : float
        ``nba train``'s wall and CPU seconds.
    vw_wall, vw_cpu : float
        VW's native parser's wall and CPU seconds on the same examples.
    """

    nba_wall: float
    nba_cpu: float
    vw_wall: float
    vw_cpu: float

    @property
    def ratio(self) -> float:
        """``nba train``'s decisions per second over VW's (same decisions)."""
        return self.vw_wall / self.nba_wall

    @property
    def cpu_ratio(self) -> float:
        """VW's CPU seconds over ``nba train``'s."""
        return self.vw_cpu / self.nba_cpu


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, least and greatest of ``values`` (non-empty).

    Examples
    --------
    >>> spread([0.6, 0.5, 0.7, 0.55])
    (0.575, 0.5, 0.7)
    """
    if not values:
        raise ValueError("spread of no values")
    return statistics.median(values), min(values), max(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hcps", type=int, default=14_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logs", type=Path, default=None, help="reuse an existing log directory")
    ap.add_argument("--vw-args", default="--epsilon 0.05")
    ap.add_argument("--repeat", type=int, default=3, help="pairs of runs (one of each side)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1 (pairs of runs), got {args.repeat}")

    with tempfile.TemporaryDirectory() as tmp:
        logs = args.logs
        if logs is None:
            from simulators.hcp.world import simulate

            logs = Path(tmp) / "logs"
            t0 = time.perf_counter()
            simulate(hcps=args.hcps, days=args.days, policy="campaign", seed=args.seed, out=logs)
            print(
                f"simulated {args.hcps} HCPs x {args.days} days in {time.perf_counter() - t0:.1f} s"
            )
        n = logio.read(logs, "decisions", columns=["event_id"]).num_rows
        rd = RewardDefinition.default()
        cfg = VWConfig.from_vw_args(args.vw_args)
        work = Path(tmp) / "work"
        print(f"{n} logged decisions; VW args {args.vw_args!r}; cores {os.cpu_count()}")

        print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        # the first run keeps the example file VW's parser then reads; after that
        # the two sides alternate, so load from other jobs hits both alike
        w_keep, c_keep, kept = _timed(lambda: train(logs, rd, cfg, seed=args.seed, work_dir=work))
        data_file = work / "train.vw.txt"
        size_mb = data_file.stat().st_size / 1e6

        def nba() -> TrainResult:
            return train(logs, rd, cfg, seed=args.seed)

        def native() -> FileTrainResult:
            return train_from_file(
                data_file, cfg, kept.policy.featurizer_config, kept.policy.catalog, args.seed
            )

        want = kept.policy.model_bytes()
        same = True
        pairs: list[Pair] = []
        result: TrainResult | None = None
        best_nba = best_vw = (float("inf"), 0.0)
        for i in range(args.repeat):
            if i % 2 == 0:
                w_n, c_n, r = _timed(nba)
                w_v, c_v, f = _timed(native)
            else:
                w_v, c_v, f = _timed(native)
                w_n, c_n, r = _timed(nba)
            same = same and r.policy.model_bytes() == want == f.policy.model_bytes()
            pair = Pair(w_n, c_n, w_v, c_v)
            pairs.append(pair)
            print(
                f"pair {i + 1} ({'nba train' if i % 2 == 0 else 'VW native'} first): "
                f"nba train {w_n:.2f} s ({c_n:.2f} s CPU), VW native {w_v:.2f} s "
                f"({c_v:.2f} s CPU); ratio {pair.ratio:.3f}, CPU ratio {pair.cpu_ratio:.3f}; "
                "load " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
                flush=True,
            )
            if w_n < best_nba[0]:
                best_nba, result = (w_n, c_n), r
            best_vw = min(best_vw, (w_v, c_v))
        assert result is not None
        (w_nba, c_nba), (w_vw, c_vw) = best_nba, best_vw
        n_train = result.n_train
        rate_nba, rate_vw = n_train / w_nba, n_train / w_vw
        print(f"example file: {size_mb:.1f} MB, {n_train} examples")
        print("nba train path  : " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
        print(
            f"nba train       : {w_nba:7.2f} s wall ({c_nba:7.2f} s CPU)  "
            f"{rate_nba:10,.0f} decisions/s (best of {len(pairs)})"
        )
        print(
            f"  keeping file  : {w_keep:7.2f} s wall ({c_keep:7.2f} s CPU)  "
            f"{n_train / w_keep:10,.0f} decisions/s (one run, with a work directory)"
        )
        print(
            f"VW native parser: {w_vw:7.2f} s wall ({c_vw:7.2f} s CPU)  "
            f"{rate_vw:10,.0f} decisions/s (best of {len(pairs)})"
        )
        print(
            f"ratio (nba / VW native): {rate_nba / rate_vw:.3f}  (target >= {TARGET}); "
            f"CPU ratio {c_vw / c_nba:.3f}; identical models: {same}"
        )
        med, lo, hi = spread([p.ratio for p in pairs])
        cmed, clo, chi = spread([p.cpu_ratio for p in pairs])
        print(
            f"ratio per pair (median of {len(pairs)}, alternating): {med:.3f} "
            f"(least {lo:.3f}, greatest {hi:.3f}; target >= {TARGET}); "
            f"CPU ratio {cmed:.3f} (least {clo:.3f}, greatest {chi:.3f})"
        )
        print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    publish(
        "bench/train.py",
        [
            Figure(f"`nba train`, {n_train:,} decisions (median of {len(pairs)} alternating pairs)",
                   statistics.median(p.nba_wall for p in pairs), "s",
                   statistics.median(p.vw_wall for p in pairs),
                   "VW's native parser on the same example file", ratio=med,
                   ratio_name=" (VW's time / ours, median pair)", goal=f"≥ {TARGET}",
                   met=med >= TARGET),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
