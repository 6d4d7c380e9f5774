"""Benchmark of the ``nba`` command's start-up: CPU seconds of ``nba --help`` (and of
each subcommand group's ``--help``) against ``python -c pass``, in one run.

Each command runs ``--repeat`` times in a fresh interpreter; the figure is the
median of the CPU time (user + system) the child used, read from
``resource.getrusage(RUSAGE_CHILDREN)`` around each run. A third reference,
``python -c "import numpy, pyarrow, pandas, duckdb, vowpalwabbit, mlflow"``,
shows what importing the heavy libraries at start-up would cost.

Goal: ``nba --help`` at most 0.5 CPU seconds.

Usage::

    .venv/bin/python bench/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from datetime import UTC, datetime

from record import Figure, publish

GOAL_S = 0.5
HEAVY = "import numpy, pyarrow, pandas, duckdb, vowpalwabbit, mlflow"
GROUPS = ("simulate", "logs", "serve", "train", "evaluate", "experiment", "report", "rules")


def cpu_seconds(argv: list[str], repeat: int) -> float:
    """Median CPU seconds (user + system) of ``argv`` run ``repeat`` times."""
    runs: list[float] = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        )
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    py = sys.executable
    nba = [py, "-m", "nba_cli.main"]
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"median CPU seconds of {args.repeat} runs each")
    ref = cpu_seconds([py, "-c", "pass"], args.repeat)
    heavy = cpu_seconds([py, "-c", HEAVY], args.repeat)
    top = cpu_seconds([*nba, "--help"], args.repeat)
    print(f"{'python -c pass':<28}{ref:8.3f} s")
    print(f"{'python -c ' + repr('import <heavy>'):<28}{heavy:8.3f} s  ({HEAVY[7:]})")
    print(f"{'nba --help':<28}{top:8.3f} s  ({top / ref:.1f}x python -c pass)")
    worst = top
    for g in GROUPS:
        s = cpu_seconds([*nba, g, "--help"], args.repeat)
        worst = max(worst, s)
        print(f"{'nba ' + g + ' --help':<28}{s:8.3f} s")
    met = "met" if top <= GOAL_S else "NOT met"
    print(f"goal: nba --help <= {GOAL_S} CPU s: {met}; slowest group help {worst:.3f} s")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    publish(
        "bench/startup.py",
        [
            Figure("`nba --help`, median CPU of a fresh process", top, "CPU s", ref,
                   "`python -c pass`", ratio_name="× `python -c pass`",
                   goal=f"≤ {GOAL_S} CPU s", met=top <= GOAL_S),
            Figure("the slowest group's `--help`", worst, "CPU s", ref, "`python -c pass`",
                   ratio_name="× `python -c pass`"),
        ],
        argv,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
