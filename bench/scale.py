"""Scale-out benchmark: both halves in one command.

- ``pipeline`` (:mod:`bench.scale_pipeline`): a synthetic log of ``--decisions``
  decisions (default 10,000,000) joined and labelled by the pipeline's one SQL
  source on DuckDB and on Spark (``--spark-master``, default ``local[2]``);
  prints both times, their ratio and whether the results are identical.
- ``featurize`` (:mod:`bench.scale_featurize`): ``nba train``'s VW examples of a
  simulated log (``--feat-hcps``, ``--feat-days``) made by the featurizer
  registered as an Arrow function in DuckDB and in Spark, and in this process;
  prints the times, their ratios and whether the bytes are identical.
- ``store`` (:mod:`bench.scale_store`): decisions/s of two ``nba serve``
  replicas sharing one PostgreSQL database against one replica on its SQLite
  file, measured in the same run; prints both, their ratio and the number of
  acknowledged decisions missing from each store (must be 0).

Usage::

    .venv/bin/python bench/scale.py [--part all|pipeline|featurize|store] [--decisions N]
        [--feat-hcps H] [--feat-days D]
        [--spark-master URL] [--seconds S] [--rounds R] [--hcps H] [--workers W]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (the bench folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "pipeline", "featurize", "store"), default="all")
    ap.add_argument("--decisions", type=int, default=10_000_000, help="pipeline: log size")
    ap.add_argument("--spark-master", default="local[2]", help="pipeline: Spark master")
    ap.add_argument("--feat-hcps", type=int, default=1000, help="featurize: simulated HCPs")
    ap.add_argument("--feat-days", type=int, default=30, help="featurize: simulated days")
    ap.add_argument("--seconds", type=float, default=6.0, help="store: per round")
    ap.add_argument("--rounds", type=int, default=2, help="store: alternating rounds")
    ap.add_argument("--hcps", type=int, default=2000, help="store: HCPs imported")
    ap.add_argument("--workers", type=int, default=1, help="store: uvicorn workers per replica")
    args = ap.parse_args(argv)
    code = 0
    if args.part in ("all", "pipeline"):
        print("== log pipeline: DuckDB vs Spark", flush=True)
        code |= _load("scale_pipeline").main(
            ["--decisions", str(args.decisions), "--spark-master", args.spark_master]
        )
    if args.part in ("all", "featurize"):
        print("== featurization: the featurizer as an engine function, DuckDB vs Spark", flush=True)
        code |= _load("scale_featurize").main(
            [
                "--hcps", str(args.feat_hcps),
                "--days", str(args.feat_days),
                "--spark-master", args.spark_master,
            ]
        )  # fmt: skip
    if args.part in ("all", "store"):
        print("== event store: 2 replicas on PostgreSQL vs 1 on SQLite", flush=True)
        code |= _load("scale_store").main(
            [
                "--seconds", str(args.seconds),
                "--rounds", str(args.rounds),
                "--hcps", str(args.hcps),
                "--workers", str(args.workers),
            ]
        )  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
