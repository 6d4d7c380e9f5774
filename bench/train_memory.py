"""Peak memory of ``nba train`` on a log of about ``--decisions`` decisions, against
the 2 GB goal.

1. Simulate a campaign log of about ``--decisions`` decisions (HCPs x 90 days;
   the campaign policy makes about 0.155 decisions per HCP-day), or reuse
   ``--logs DIR``.
2. Run ``nba train --logs DIR --no-mlflow --model-out ...`` as a child process.
   Two figures:

   - the largest maximum resident set size of any one process of the run
     (``ru_maxrss`` of the resource usage ``os.wait4`` returns for the child:
     ``nba train`` or its VW child, whichever was larger), and
   - the largest sum of the resident sets of ``nba train`` and all its
     descendants, sampled from ``/proc`` every 50 ms (what the machine had to
     hold at once).

The reference measured in the same run is ``python -c "import numpy, pyarrow,
duckdb, vowpalwabbit"``'s maximum RSS: what the libraries alone take.

Usage::

    .venv/bin/python bench/train_memory.py [--decisions 1000000] [--logs DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from record import Figure, publish

GOAL_BYTES = 2 * 1024**3
DECISIONS_PER_HCP_DAY = 0.155
DAYS = 90


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 once it is gone)."""
    total = 0
    todo = [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_measured(argv: list[str]) -> tuple[int, int, float]:
    """Run ``argv``; returns (largest max RSS of any one process of it, largest
    sampled RSS of its process tree, wall seconds); bytes."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 gives this child's own resource usage; its ru_maxrss (KiB on Linux) is
    # the largest of the child and the descendants it waited for (VW's process)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
    return usage.ru_maxrss * 1024, peak, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--logs", type=Path, default=None, help="reuse this log directory")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-train-memory-"))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    ref_single, _, _ = run_measured(
        [py, "-c", "import numpy, pyarrow, pyarrow.parquet, duckdb, vowpalwabbit"]
    )
    logs = args.logs
    if logs is None:
        logs = tmp / "logs"
        hcps = max(1, round(args.decisions / (DECISIONS_PER_HCP_DAY * DAYS)))
        t0 = time.perf_counter()
        subprocess.run(
            [
                *(py, "-m", "nba_cli.main", "simulate", "--hcps", str(hcps)),
                *("--days", str(DAYS), "--seed", str(args.seed), "--out", str(logs), "--quiet"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"simulated {hcps} HCPs x {DAYS} days in {time.perf_counter() - t0:.0f} s")
    import pyarrow.parquet as pq

    n = sum(pq.ParquetFile(p).metadata.num_rows for p in (logs / "decisions").rglob("*.parquet"))
    print(f"log: {n:,} decisions in {logs}")

    single, tree, seconds = run_measured(
        [
            *(py, "-m", "nba_cli.main", "train", "--logs", str(logs), "--no-mlflow"),
            *("--model-out", str(tmp / "model")),
        ]
    )
    gib = 1024**3
    print()
    print(
        "reference: importing numpy, pyarrow, duckdb, vowpalwabbit: "
        f"max RSS {ref_single / gib:.2f} GiB"
    )
    print(f"nba train ({seconds:.0f} s): largest single process max RSS {single / gib:.2f} GiB")
    print(f"nba train: largest sampled RSS of its whole process tree {tree / gib:.2f} GiB")
    met = "met" if max(single, tree) <= GOAL_BYTES else "NOT met"
    print(
        f"goal: <= {GOAL_BYTES / gib:.0f} GiB: {met} ({max(single, tree) / GOAL_BYTES:.2f} of it)"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}; data in {tmp}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    peak = max(single, tree)
    publish(
        "bench/train_memory.py",
        [
            Figure(f"`nba train` peak memory, {n:,} decisions", peak / gib, "GiB",
                   ref_single / gib, "importing numpy, pyarrow, duckdb, VW",
                   ratio_name="× the imports", goal=f"≤ {GOAL_BYTES / gib:.0f} GiB",
                   met=peak <= GOAL_BYTES),
        ],
        argv,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
