"""Benchmark: the join with the engine reading the log itself (the default on Spark),
against pyarrow reading it on the driver (the default on DuckDB).

1. Simulate a log (``nba simulate``, ``--hcps`` HCPs over ``--days`` days; seeded).
2. Time :func:`nba.logs.join.load_joined` with ``read_on_engine=True`` (the
   engine reads the Parquet files; selection and join are SQL) and with
   ``read_on_engine=False`` (pyarrow reads the log on the driver, Python selects, the engine joins
   Arrow tables), best of ``--repeat`` runs each, on DuckDB, and with
   ``--spark`` on Spark ``local[2]`` too (the JVM's start is timed apart; a
   cold run of each path first, printed, then the best of ``--spark-repeat``).
3. Check each pair gives the same joined table and counts, and print the times
   and their ratio.

Usage::

    .venv/bin/python bench/join_read.py [--hcps 2000] [--days 30] [--spark]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hcps", type=int, default=2000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spark", action="store_true", help="also time Spark local[2]")
    ap.add_argument(
        "--spark-repeat", type=int, default=2, help="Spark runs after the cold one (best of)"
    )
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temp one)")
    ap.add_argument("--logs", type=Path, default=None, help="an existing log (no simulation)")
    args = ap.parse_args(argv)

    from click.testing import CliRunner

    from nba.logs.engine import get_engine
    from nba.logs.join import load_joined
    from nba.reward import RewardDefinition
    from nba_cli.main import main as nba

    work = args.out or Path(tempfile.mkdtemp(prefix="nba-bench-join-read-"))
    logs = work / "logs"
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    if args.logs is not None:
        logs = args.logs
    else:
        t0 = time.perf_counter()
        res = CliRunner().invoke(
            nba,
            [
                *("simulate", "--hcps", str(args.hcps), "--days", str(args.days)),
                *("--seed", str(args.seed), "--out", str(logs)),
            ],
        )
        if res.exit_code != 0:
            print(res.output)
            return 1
        print(f"simulated log in {time.perf_counter() - t0:.1f} s")
    rd = RewardDefinition.default()
    engines = ["duckdb"]
    if args.spark:
        spark = get_engine("spark")
        t0 = time.perf_counter()
        spark.session  # type: ignore[attr-defined]  # noqa: B018  (the JVM's start)
        print(f"Spark session started in {time.perf_counter() - t0:.1f} s")
        engines.append("spark")
    same_all = True
    for name in engines:
        engine = get_engine(name)
        on_engine = functools.partial(load_joined, logs, rd, engine=engine, read_on_engine=True)
        on_driver = functools.partial(load_joined, logs, rd, engine=engine, read_on_engine=False)
        if name == "spark":
            # The session's first queries pay the JVM's warm-up (JIT compilation of
            # Spark's own code, code generation): each path runs once in turn, cold,
            # then --spark-repeat times more, and the best of those is compared.
            c_sql, _ = _best(on_engine, 1)
            c_arrow, _ = _best(on_driver, 1)
            print(
                f"spark, first runs (cold, engine path first): engine reads the log "
                f"{c_sql:.2f} s, pyarrow reads it {c_arrow:.2f} s"
            )
            t_sql, a = _best(on_engine, args.spark_repeat)
            t_arrow, b = _best(on_driver, args.spark_repeat)
        else:
            t_sql, a = _best(on_engine, args.repeat)
            t_arrow, b = _best(on_driver, args.repeat)
        same = a.table.equals(b.table) and a.counts == b.counts
        same_all &= same
        n = a.table.num_rows
        print(
            f"{name}: {n:,} decisions joined ({a.counts.outcomes:,} outcomes read); "
            f"engine reads the log {t_sql:.2f} s ({n / t_sql:,.0f} decisions/s), "
            f"pyarrow reads it {t_arrow:.2f} s ({n / t_arrow:,.0f} decisions/s); "
            f"ratio {t_sql / t_arrow:.2f}; identical: {same}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}; files in {work}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0 if same_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
