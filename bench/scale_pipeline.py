"""Benchmark of the log pipeline at scale: the same SQL on DuckDB and on Spark (local).

1. Write a synthetic log of ``--decisions`` decisions (default 10,000,000) and
   about 0.45 outcomes per decision as Parquet (``ts`` TIMESTAMP(MICROS, UTC),
   as :mod:`nba.logs.io` writes it): outcome types of the default reward
   definition, delays up to past the 14-day window, 4 % duplicate copies and
   2 % outcomes of unknown events. Seeded: the same ``--seed`` gives the same log.
2. Run the pipeline's one SQL source (:data:`nba.logs.join.JOIN_SQL` over views
   turning the Parquet columns into the join's inputs, then the OPE / VW label
   columns: 1-based action, cost, probability) on DuckDB and on Spark
   ``local[2]`` (``--spark-master``), each engine reading the Parquet files
   itself and writing its result as Parquet.
3. Check both results are equal (every column, by decision), print both times
   and their ratio (Spark / DuckDB).

The featurizer (:mod:`nba.features`, Python) is not part of the engines' SQL and
is not timed here. Usage::

    .venv/bin/python bench/scale_pipeline.py [--decisions 10000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also when imported
from record import Figure, publish

_US_PER_DAY = 86_400 * 1_000_000
_START_US = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) * 1_000_000
_ACTIONS = [
    f"VEL-{t}-0{k}@{ch}"
    for t in ("EFF", "SAF", "DOS")
    for k in (1, 2)
    for ch in ("email", "rep_visit")
]

#: views turning the Parquet tables into the join's inputs (DuckDB SQL, one source)
VIEWS = (
    (
        "decisions",
        "SELECT row_id, event_id, epoch_us(ts) AS ts_us, chosen_action_id, "
        "CAST(0.0 AS DOUBLE) AS cost FROM raw_decisions",
    ),
    (
        "outcomes",
        "SELECT event_id, type, source_id, epoch_us(ts) AS ts_us, value, action_id "
        "FROM raw_outcomes",
    ),
    ("weights", "SELECT type, weight, by_value FROM raw_weights"),
)


def pipeline_sql() -> str:
    """The join (:data:`nba.logs.join.JOIN_SQL`) and the OPE / VW label columns."""
    from nba.logs.join import JOIN_SQL, _reward_expr
    from nba.reward import RewardDefinition

    join = JOIN_SQL.format(reward=_reward_expr(RewardDefinition.default()))
    return (
        "SELECT j.row_id, j.reward, j.n_outcomes, j.n_late_outcomes, j.reward_is_default, "
        "r.chosen_index + 1 AS label_action, -j.reward AS label_cost, "
        f"r.propensity AS label_probability FROM ({join}) AS j "
        "JOIN raw_decisions AS r ON r.row_id = j.row_id"
    )


def write_log(out: Path, n: int, seed: int) -> dict[str, list[Path]]:
    """A synthetic log of ``n`` decisions under ``out`` (Parquet), by table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from nba.reward import RewardDefinition

    rng = np.random.default_rng(seed)
    days = max(1, min(60, n // 50_000))
    files: dict[str, list[Path]] = {"raw_decisions": [], "raw_outcomes": [], "raw_weights": []}
    out.mkdir(parents=True, exist_ok=True)
    ts_type = pa.timestamp("us", tz="UTC")
    chunk = 2_000_000
    types = np.array(["opened", "clicked", "registered", "visited", "call_held", "unsubscribed"])
    for part, lo in enumerate(range(0, n, chunk)):
        m = min(chunk, n - lo)
        row_id = np.arange(lo, lo + m, dtype=np.int64)
        ts = np.sort(rng.integers(0, days * _US_PER_DAY, size=m)) + _START_US
        eid = pc.binary_join_element_wise("e", pc.cast(pa.array(row_id), pa.string()), "")
        chosen = rng.integers(0, len(_ACTIONS), size=m)
        k = rng.integers(3, 7, size=m)
        ci = np.minimum(rng.integers(0, 6, size=m), k - 1).astype(np.int32)
        d = pa.table(
            {
                "row_id": row_id,
                "event_id": eid,
                "ts": pa.array(ts, pa.int64()).cast(ts_type),
                "chosen_action_id": pa.array(np.array(_ACTIONS)[chosen]),
                "chosen_index": ci,
                "propensity": rng.uniform(0.05, 0.9, size=m),
            }
        )
        path = out / f"decisions-{part:03d}.parquet"
        pq.write_table(d, path, compression="zstd")
        files["raw_decisions"].append(path)
        # outcomes: ~0.4 per decision, delays of hours to weeks (some past the window)
        per = rng.poisson(0.4, size=m)
        idx = np.repeat(np.arange(m), per)
        delay = (rng.exponential(3.0, size=idx.size) * _US_PER_DAY).astype(np.int64)
        o_ts = ts[idx] + delay - rng.integers(0, 2, size=idx.size) * (2 * _US_PER_DAY // 24)
        src = rng.integers(0, 3, size=idx.size)
        dup = rng.uniform(size=idx.size) < 0.04
        unknown = rng.uniform(size=idx.size) < 0.02
        o_eid = pc.take(eid, pa.array(idx)).to_numpy(zero_copy_only=False).astype(object)
        o_eid[unknown] = "missing"
        o = pa.table(
            {
                "event_id": pa.array(np.concatenate([o_eid, o_eid[dup]]), pa.string()),
                "ts": pa.array(np.concatenate([o_ts, o_ts[dup] + 1_000_000]), pa.int64()).cast(
                    ts_type
                ),
                "type": pa.array(np.concatenate([types[src * 2 % 6], types[src * 2 % 6][dup]])),
                "value": np.ones(idx.size + int(dup.sum())),
                "source": pa.array(["hcp"] * (idx.size + int(dup.sum()))),
                "source_id": pc.cast(
                    pa.array(np.concatenate([src, src[dup]]), pa.int64()), pa.string()
                ),
                "action_id": pa.nulls(idx.size + int(dup.sum()), pa.string()),
            }
        )
        path = out / f"outcomes-{part:03d}.parquet"
        pq.write_table(o, path, compression="zstd")
        files["raw_outcomes"].append(path)
    rd = RewardDefinition.default()
    w = pa.table(
        {
            "type": pa.array(list(rd.weights), pa.string()),
            "weight": pa.array(list(rd.weights.values()), pa.float64()),
            "by_value": pa.array([t in rd.value_types for t in rd.weights]),
        }
    )
    path = out / "weights.parquet"
    pq.write_table(w, path)
    files["raw_weights"].append(path)
    return files


def run(engine: Any, files: dict[str, list[Path]], out: Path) -> float:
    """Seconds ``engine`` takes to run the pipeline over ``files`` into ``out``."""
    from nba.reward import RewardDefinition

    window_us = round(float(RewardDefinition.default().window_days) * _US_PER_DAY)
    params = {"window_us": window_us, "default_reward": 0.0}
    t0 = time.perf_counter()
    engine.write_parquet(files, VIEWS, (pipeline_sql(), params), out)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spark-master", default="local[2]")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temp one)")
    args = ap.parse_args(argv)
    if args.decisions < 1:
        ap.error("--decisions must be at least 1")

    import pyarrow.parquet as pq

    from nba.logs.engine import DuckDBEngine, SparkEngine, get_engine

    spark = get_engine("spark", args.spark_master)  # fails here if pyspark or Java is missing
    assert isinstance(spark, SparkEngine)
    work = args.out or Path(tempfile.mkdtemp(prefix="nba-bench-scale-"))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    files = write_log(work / "log", args.decisions, args.seed)
    n_out = sum(pq.ParquetFile(f).metadata.num_rows for f in files["raw_outcomes"])
    print(
        f"synthetic log: {args.decisions:,} decisions, {n_out:,} outcomes "
        f"(Parquet, TIMESTAMP(MICROS, UTC)) in {time.perf_counter() - t0:.1f} s"
    )
    t0 = time.perf_counter()
    spark.session  # noqa: B018  (the JVM's start is not the pipeline's time)
    print(f"Spark session ({spark.describe()}) started in {time.perf_counter() - t0:.1f} s")
    duck_s = run(DuckDBEngine(), files, work / "duckdb.parquet")
    spark_s = run(spark, files, work / "spark.parquet")
    a = pq.read_table(work / "duckdb.parquet").sort_by("row_id")
    b = pq.read_table(work / "spark.parquet").sort_by("row_id")
    same = a.num_rows == b.num_rows == args.decisions and all(
        a.column(c).combine_chunks().equals(b.column(c).combine_chunks().cast(a.column(c).type))
        for c in a.column_names
    )
    n = args.decisions
    print(f"duckdb: {duck_s:8.2f} s  ({n / duck_s:12,.0f} decisions/s)")
    print(f"spark:  {spark_s:8.2f} s  ({n / spark_s:12,.0f} decisions/s)")
    print(f"ratio (spark / duckdb time): {spark_s / duck_s:.2f}; results identical: {same}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}; files in {work}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    publish(
        "bench/scale_pipeline.py",
        [
            Figure(f"the join and label columns on Spark `{args.spark_master}`, {n:,} decisions",
                   n / spark_s, "decisions/s", n / duck_s, "the same SQL on DuckDB",
                   ratio_name="× DuckDB", goal="results identical to DuckDB's", met=same),
        ],
        argv,
    )  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
