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
path uses a second core for VW while the first joins and featurizes. Each side
runs ``--repeat`` times, alternating, best wall time kept. The load average
(``os.getloadavg``) is printed before and after.
Figures only, no assertions. Usage::

    python bench/train.py [--hcps 14000] [--days 90] [--logs DIR] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nba.logs import io as logio
from nba.policies.vw import FileTrainResult, VWConfig, train_from_file
from nba.reward import RewardDefinition
from training.train import TrainResult, train

TARGET = 0.8
T = TypeVar("T")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (VW runs in one)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _best(fn: Callable[[], T], repeat: int) -> tuple[float, float, T]:
    best: tuple[float, float, T] | None = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), _cpu()
        out = fn()
        w, c = time.perf_counter() - w0, _cpu() - c0
        if best is None or w < best[0]:
            best = (w, c, out)
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hcps", type=int, default=14_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logs", type=Path, default=None, help="reuse an existing log directory")
    ap.add_argument("--vw-args", default="--epsilon 0.05")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

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
        w_keep, c_keep, kept = _best(lambda: train(logs, rd, cfg, seed=args.seed, work_dir=work), 1)
        data_file = work / "train.vw.txt"
        size_mb = data_file.stat().st_size / 1e6

        def nba() -> TrainResult:
            return train(logs, rd, cfg, seed=args.seed)

        def native() -> FileTrainResult:
            return train_from_file(
                data_file, cfg, kept.policy.featurizer_config, kept.policy.catalog, args.seed
            )

        w_nba, c_nba, result = _best(nba, 1)
        w_vw, c_vw, fit = _best(native, 1)
        for _ in range(args.repeat - 1):
            w, c, r = _best(nba, 1)
            if w < w_nba:
                w_nba, c_nba, result = w, c, r
            w, c, f = _best(native, 1)
            if w < w_vw:
                w_vw, c_vw, fit = w, c, f
        same = fit.policy.model_bytes() == result.policy.model_bytes() == kept.policy.model_bytes()
        n_train = result.n_train
        rate_nba, rate_vw = n_train / w_nba, n_train / w_vw
        print(f"example file: {size_mb:.1f} MB, {n_train} examples")
        print("nba train path  : " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
        print(
            f"nba train       : {w_nba:7.2f} s wall ({c_nba:7.2f} s CPU)  "
            f"{rate_nba:10,.0f} decisions/s"
        )
        print(
            f"  keeping file  : {w_keep:7.2f} s wall ({c_keep:7.2f} s CPU)  "
            f"{n_train / w_keep:10,.0f} decisions/s (one run, with a work directory)"
        )
        print(
            f"VW native parser: {w_vw:7.2f} s wall ({c_vw:7.2f} s CPU)  "
            f"{rate_vw:10,.0f} decisions/s"
        )
        print(
            f"ratio (nba / VW native): {rate_nba / rate_vw:.3f}  (target >= {TARGET}); "
            f"CPU ratio {c_vw / c_nba:.3f}; identical models: {same}"
        )
        print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
