"""Benchmark of featurization on the engines: ``nba train``'s VW examples made three ways.

1. Simulate a log (``nba simulate --hcps H --days D``, seeded) and join it once
   (DuckDB), keeping the training rows as ``nba train`` does.
2. Make the labelled VW text of every row:

   - ``driver``: this process reads the contexts with pyarrow, featurizes and
     labels them (the path ``nba train`` takes on DuckDB);
   - ``duckdb``: :func:`training.examples.write_examples` on DuckDB (the
     featurizer registered as an Arrow function, called by one SQL
     statement; DuckDB reads the contexts and this process writes the file);
   - ``spark``: the same statement on Spark (``--spark-master``, default
     ``local[2]``): the executors read the contexts, featurize and write the
     part files.

3. Check the three give the same bytes; print each time and the ratios
   (the JVM's start is timed apart).

Usage::

    .venv/bin/python bench/scale_featurize.py [--hcps 1000] [--days 30] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

#: the blank line that ends each VW example
EXAMPLE_END = b"\n\n"


def driver_text(root: Path, rows: pa.Table, featurizer: object) -> bytes:
    """The labelled VW text of ``rows`` (:data:`training.examples.ROWS_SCHEMA`) made in
    this process: contexts read with pyarrow, featurized and labelled in bulk."""
    from nba.features import Featurizer
    from nba.logs import io
    from nba.policies.vw import labelled_text_buffer
    from training.slates import has_slates, labelled_slot_text

    assert isinstance(featurizer, Featurizer)
    dec = io.read(root, "decisions", columns=["event_id", "activated", "context", "action_ids"])
    dec = dec.filter(dec.column("activated"))
    where = pc.index_in(rows.column("event_id"), value_set=dec.column("event_id"))
    part = rows.append_column("context", dec.column("context").take(where)).append_column(
        "action_ids", dec.column("action_ids").take(where)
    )
    batch = featurizer.featurize_table(part)
    if has_slates(part):
        return labelled_slot_text(part, batch)
    return labelled_text_buffer(
        batch,
        part.column("chosen_index").to_numpy(),
        part.column("reward").to_numpy(),
        part.column("propensity").to_numpy(),
        part.column("event_id").to_pylist(),
    ).to_pybytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hcps", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spark-master", default="local[2]")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temp one)")
    args = ap.parse_args(argv)
    if args.hcps < 1 or args.days < 1:
        ap.error("--hcps and --days must be at least 1")

    from click.testing import CliRunner

    from nba.catalog import Catalog
    from nba.features import Featurizer
    from nba.logs.engine import DuckDBEngine, SparkEngine, get_engine
    from nba.logs.join import load_joined
    from nba.reward import RewardDefinition
    from nba_cli.main import main as nba
    from training.examples import example_rows, write_examples
    from training.train import JOIN_COLUMNS

    spark = get_engine("spark", args.spark_master)  # fails here if pyspark or Java is missing
    assert isinstance(spark, SparkEngine)
    work = args.out or Path(tempfile.mkdtemp(prefix="nba-bench-featurize-"))
    root = work / "logs"
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    sim = ["simulate", "--hcps", str(args.hcps), "--days", str(args.days)]
    res = CliRunner().invoke(nba, [*sim, "--seed", str(args.seed), "--out", str(root)])
    if res.exit_code != 0:
        print(res.output)
        return 1
    joined = load_joined(root, RewardDefinition.default(), columns=JOIN_COLUMNS).table
    order = pc.sort_indices(joined, sort_keys=[("ts", "ascending"), ("event_id", "ascending")])
    rows = example_rows(joined.take(order))
    n = rows.num_rows
    print(f"log: {args.hcps} HCPs, {args.days} days: {n:,} decisions to featurize "
          f"(simulated and joined in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    featurizer = Featurizer(Catalog.default())
    t0 = time.perf_counter()
    spark.session  # noqa: B018  (the JVM's start is not featurization's time)
    print(f"Spark session ({spark.describe()}) started in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    ref = driver_text(root, rows, featurizer)
    times = {"driver": time.perf_counter() - t0}
    texts = {}
    for name, engine in (("duckdb", DuckDBEngine()), ("spark", spark)):
        t0 = time.perf_counter()
        parts = write_examples(engine, root, rows, featurizer, work / name)
        times[name] = time.perf_counter() - t0
        texts[name] = b"".join(p.read_bytes() for p in parts)
    same = all(t == ref for t in texts.values())
    for name, s in times.items():
        print(f"{name + ':':8}{s:8.2f} s  ({n / s:10,.0f} decisions/s)")
    print(f"ratio spark / duckdb (engine function): {times['spark'] / times['duckdb']:.2f}")
    print(f"ratio duckdb (engine function) / driver: {times['duckdb'] / times['driver']:.2f}")
    print(f"identical bytes: {same} ({len(ref):,} bytes, {ref.count(EXAMPLE_END):,} examples)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}; files in {work}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
