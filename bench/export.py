"""Benchmark of the DSJSON export (``nba logs export --format dsjson``): the bulk
path (lines written column-wise) against one decision at a time, same log, same run.

1. Simulate a log with the simulator (campaign policy, 3-slot slates, the HCPs'
   pulls), or reuse ``--logs DIR``.
2. Join it and gather what the command gathers (catalog snapshots, outcomes
   about other suggestions, each decision's pulls) -- timed once, the same for
   both sides.
3. Write the DSJSON file with :func:`nba.logs.dsjson.export_dsjson` one
   decision at a time (``bulk=False``, the path before) and with the bulk
   path (``bulk=True``, what the command uses: the bulk featurizer writing
   each action line's JSON object from its own token tables, and the rest of
   each line written column-wise in Arrow), alternating, best of
   ``--repeat``; check both files are the same bytes.
4. Time the bulk featurizer alone on the same rows (what the bulk path
   cannot go below), best of ``--repeat``.
5. For each engine of ``--engines`` (default ``duckdb``; ``duckdb,spark``
   adds Spark on ``--spark-master``): the same file with the lines made by
   the engine (:func:`nba.logs.dsjson_engine.export_dsjson_on_engine`: one
   SQL statement that reads the outcomes and touches itself, picks each
   line's outcomes about other suggestions and window pulls, and calls the
   line writer; part files concatenated into the file), best of
   ``--repeat`` (Spark's session is started before the clock), checked the
   same bytes, with its ratio to the in-process bulk path plus the reading of
   the outcomes and pulls that path is given.

6. The command as a user runs it, in a fresh process (``python -m nba_cli.main
   logs export --format dsjson --quiet``: imports, join, the export with every
   cache empty), its file checked the same bytes.
7. With ``--large-hcps N`` (default 0, off): the same on a second log of ``N``
   HCPs simulated the same way (30,000 for about ten times the default's
   decisions), where the export's per-batch costs are spread over more rows:
   the bulk path's best and first export in this process and the command,
   its lines checked against the one-decision-at-a-time export of a slice of
   ``--check-rows`` rows (each line depends only on its own row; the whole
   reference would take minutes).

Prints decisions/s (wall time, and per CPU second of this process and the
children it waited for -- the bulk path writes half the rows in a forked child
on a machine of two cores or more; the machine may be shared) of both and
their ratio, the bulk path's first export in the process (its caches empty,
as in the command) beside its best, and the featurizer's share of the bulk
path. The goal (>= 50,000 decisions/s) is judged on the bulk path's best
export of the default log, as before; the other figures say what the fixed
costs add. Usage::

    .venv/bin/python bench/export.py [--hcps 3000] [--days 30] [--logs DIR] [--repeat 2]
        [--large-hcps 30000] [--large-logs DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from record import Figure, publish

GOAL = 50_000


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (the bulk
    export's forked child among them)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def simulate(out: Path, hcps: int, days: int) -> None:
    from click.testing import CliRunner

    from nba_cli.main import main as nba

    res = CliRunner().invoke(
        nba,
        [
            "simulate",
            "--hcps",
            str(hcps),
            "--days",
            str(days),
            "--slate-size",
            "3",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
    )
    if res.exit_code != 0:
        raise RuntimeError(res.output)


def _featurizer_alone(table: Any, catalogs: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of featurizing ``table`` (as the export does:
    batches of 4,096 rows, the action lines' JSON objects asked for)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from nba.logs.dsjson import _featurizer

    parts = []  # (catalog version, batch) of each version's rows
    for version in table.column("catalog_version").unique().to_pylist():
        rows = table.filter(pc.equal(table.column("catalog_version"), version))
        cols = rows.select(["context", "action_ids", "event_id"]).combine_chunks()
        parts += [(version, pa.Table.from_batches([b])) for b in cols.to_batches(4096)]
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for version, part in parts:
            _featurizer(catalogs.get(version), version).featurize_table(part, action_json=True)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu


def _on_engine(
    name: str,
    master: str,
    logs: Path,
    table: Any,
    catalogs: dict[str, Any],
    extras: Any,
    reference: Path,
    in_process: float,
    repeat: int,
) -> bool:
    """Time the export with the lines made by engine ``name``; print its rate and
    its ratio to ``in_process`` (seconds of the bulk path and of gathering what
    it is given); whether its file is ``reference``'s bytes."""
    from nba.logs.dsjson_engine import export_dsjson_on_engine
    from nba.logs.engine import SparkEngine, get_engine

    engine = get_engine(name, master if name == "spark" else None)
    if isinstance(engine, SparkEngine):
        assert engine.session is not None  # the JVM starts before the clock
    out = reference.with_name(f"{name}.dsjson")
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        written = export_dsjson_on_engine(engine, logs, table, out, catalogs, extras)
        best = min(best, time.perf_counter() - t0)
        assert written == table.num_rows
    same = filecmp.cmp(reference, out, shallow=False)
    n = table.num_rows
    print(
        f"lines made by {engine.describe():16s} {n / best:10.0f} decisions/s  ({best:.2f} s; "
        f"{in_process / best:.2f}x the in-process bulk path with its outcomes and pulls read; "
        f"file identical: {same})"
    )
    return same


def _command(
    logs: Path, out: Path, n: int, reference: Path | None, label: str
) -> tuple[bool, float]:
    """Run ``nba logs export --format dsjson`` on ``logs`` in a fresh process
    (``python -m nba_cli.main``, this interpreter); print its decisions/s by
    wall time and per CPU second of the process. Returns whether its file is
    ``reference``'s bytes (True without a reference) and its decisions/s."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = ["logs", "export", "--logs", str(logs), "--format", "dsjson", "--out", str(out)]
    subprocess.run(
        [sys.executable, "-m", "nba_cli.main", *command, "--quiet"],
        check=True,
        stdout=subprocess.DEVNULL,  # its summary; errors still reach stderr
        # not the checkout: ``-m`` puts the working directory first on the path,
        # where it would shadow a PYTHONPATH naming another copy of the code
        cwd=out.parent,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    same = reference is None or filecmp.cmp(reference, out, shallow=False)
    print(
        f"{label}: {n / wall:10.0f} decisions/s  ({wall:.2f} s; {n / cpu:.0f} per CPU second, "
        f"{cpu:.2f} CPU s; file identical: {same})"
    )
    return same, n / wall


def _large(logs: Path, tmp: Path, repeat: int, check_rows: int) -> bool:
    """The bulk path and the command on a larger log (step 7): print their
    rates; whether the lines match the one-at-a-time export of a slice."""
    from nba.logs import io
    from nba.logs.dsjson import export_dsjson, load_catalogs, window_pulls
    from nba.logs.join import load_joined
    from nba.reward import RewardDefinition

    rd = RewardDefinition.default()
    result = load_joined(logs, rd)
    table = result.table
    catalogs = load_catalogs(logs, table.column("catalog_version").unique().to_pylist())
    outcomes = io.read(logs, "outcomes")
    pulls = window_pulls(io.read(logs, "touches"), table, rd.window_days, result.as_of)
    n = table.num_rows
    out = tmp / "large-bulk.dsjson"
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _cpu()
        assert export_dsjson(table, out, catalogs, outcomes=outcomes, pulls=pulls) == n
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    # a slice from the middle, one decision at a time, against the same lines
    begin = max(0, n // 2 - check_rows // 2)
    part = table.slice(begin, min(check_rows, n))
    ref = tmp / "large-rowwise-slice.dsjson"
    export_dsjson(part, ref, catalogs, outcomes=outcomes, pulls=pulls, bulk=False)
    with open(out, "rb") as fh:
        lines = fh.read().split(b"\n")
    same = lines[begin : begin + part.num_rows] == ref.read_bytes().split(b"\n")[:-1]
    print(
        f"larger log: {n} decisions; bulk best {n / min(walls):10.0f} decisions/s "
        f"({min(walls):.2f} s; {n / min(cpus):.0f} per CPU second); first export in the "
        f"process {n / walls[0]:.0f}/s ({n / cpus[0]:.0f} per CPU second); "
        f"{part.num_rows} lines from row {begin} identical to one at a time: {same}"
    )
    same_command, _ = _command(
        logs, tmp / "large-command.dsjson", n, out, "larger log, the command end to end"
    )
    return same_command and same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hcps", type=int, default=3000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--logs", type=Path, default=None, help="reuse this log directory")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--engines",
        default="duckdb",
        help="comma-separated engines that also make the lines (duckdb, spark); '' for none",
    )
    ap.add_argument("--spark-master", default="local[2]")
    ap.add_argument(
        "--large-hcps", type=int, default=0, help="also a log of this many HCPs (0: none)"
    )
    ap.add_argument("--large-logs", type=Path, default=None, help="reuse this larger log")
    ap.add_argument("--check-rows", type=int, default=2000)
    args = ap.parse_args(argv)

    from nba.logs import io
    from nba.logs.dsjson import export_dsjson, load_catalogs, window_pulls
    from nba.logs.dsjson_engine import LineExtras
    from nba.logs.join import load_joined
    from nba.reward import RewardDefinition

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-export-"))
    logs = args.logs
    if logs is None:
        logs = tmp / "logs"
        t0 = time.perf_counter()
        simulate(logs, args.hcps, args.days)
        print(f"simulated {args.hcps} HCPs x {args.days} days in {time.perf_counter() - t0:.1f} s")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    rd = RewardDefinition.default()
    t0, c0 = time.perf_counter(), time.process_time()
    result = load_joined(logs, rd)
    table = result.table
    catalogs = load_catalogs(logs, table.column("catalog_version").unique().to_pylist())
    t1 = time.perf_counter()
    outcomes = io.read(logs, "outcomes")
    pulls = window_pulls(io.read(logs, "touches"), table, rd.window_days, result.as_of)
    gather = time.perf_counter() - t1
    prep, prep_cpu = time.perf_counter() - t0, time.process_time() - c0
    n = table.num_rows
    slates = sum(1 for s in table.column("slate").to_pylist() if s)
    print(
        f"log: {n} decisions ({slates} with slates, {len(pulls)} with pulls); "
        f"join + outcomes + pulls (both sides) {prep:.2f} s ({prep_cpu:.2f} CPU s, the first "
        "in this process)"
    )

    best: dict[bool, float] = {}
    best_cpu: dict[bool, float] = {}
    first: dict[bool, tuple[float, float]] = {}
    files = {False: tmp / "rowwise.dsjson", True: tmp / "bulk.dsjson"}
    for _ in range(args.repeat):
        for bulk in (False, True):
            t0, c0 = time.perf_counter(), _cpu()
            written = export_dsjson(
                table, files[bulk], catalogs, outcomes=outcomes, pulls=pulls, bulk=bulk
            )
            s, cpu = time.perf_counter() - t0, _cpu() - c0
            assert written == n
            first.setdefault(bulk, (s, cpu))
            best[bulk] = min(best.get(bulk, s), s)
            best_cpu[bulk] = min(best_cpu.get(bulk, cpu), cpu)
    same = filecmp.cmp(files[False], files[True], shallow=False)
    old, new = n / best[False], n / best[True]
    print(
        f"one decision at a time: {old:10.0f} decisions/s  ({best[False]:.2f} s; "
        f"{n / best_cpu[False]:.0f} per CPU second)"
    )
    print(
        f"bulk (column-wise):     {new:10.0f} decisions/s  ({best[True]:.2f} s; "
        f"{n / best_cpu[True]:.0f} per CPU second)"
    )
    print(
        f"ratio {new / old:.1f}x; files identical: {same}; goal >= {GOAL:,}/s: "
        f"{'met' if new >= GOAL else 'NOT met'}"
    )
    print(
        f"bulk, first export in the process (caches empty): {n / first[True][0]:.0f} "
        f"decisions/s  ({first[True][0]:.2f} s; {n / first[True][1]:.0f} per CPU second)"
    )
    feat, feat_cpu = _featurizer_alone(table, catalogs, args.repeat)
    print(
        f"bulk featurizer alone:  {n / feat:10.0f} decisions/s  ({feat:.2f} s; "
        f"{n / feat_cpu:.0f} per CPU second; {feat_cpu / best_cpu[True]:.0%} of the bulk "
        "path's CPU)"
    )
    with_prep = n / (best[True] + prep)
    print(f"bulk including the join, outcomes and pulls: {with_prep:.0f} decisions/s")
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        same = (
            _on_engine(
                name,
                args.spark_master,
                logs,
                table,
                catalogs,
                LineExtras(rd.window_days, result.as_of),
                files[True],
                best[True] + gather,
                args.repeat,
            )
            and same
        )
    same_command, command_rate = _command(
        logs, tmp / "command.dsjson", n, files[True], "the command end to end"
    )
    same = same_command and same
    if args.large_hcps or args.large_logs:
        large = args.large_logs
        if large is None:
            large = tmp / "large-logs"
            t0 = time.perf_counter()
            simulate(large, args.large_hcps, args.days)
            print(
                f"simulated {args.large_hcps} HCPs x {args.days} days in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        same = _large(large, tmp, args.repeat, args.check_rows) and same
    print(f"load average at the end {os.getloadavg()[0]:.1f}; files in {tmp}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    publish(
        "bench/export.py",
        [
            Figure(f"`nba logs export --format dsjson`, {n:,} decisions, a fresh process",
                   command_rate, "decisions/s", old, "one decision at a time, in-process",
                   ratio_name="× one at a time", goal=f"≥ {GOAL:,} decisions/s",
                   met=command_rate >= GOAL and same),
            Figure(f"the bulk path in one process, {n:,} decisions (best of {args.repeat})",
                   new, "decisions/s", old, "one decision at a time, in-process",
                   ratio_name="× one at a time"),
        ],
    )  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
