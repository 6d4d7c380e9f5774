"""Simulator throughput: decisions simulated per second for 10,000 HCPs x 90 days
under the campaign policy (docs/DESIGN.md, "Performance budgets": >= 100k decisions/s).

Prints, for the same world and seed in the same run:

- the day loop alone (requesters, eligibility, response model, ground truth,
  policy, sampling, history and context JSON; logs kept in memory), and
- the whole ``simulate`` call writing the Parquet logs (world build included),
  with the seconds spent inside ``nba.logs.io.append`` (Parquet encoding, zstd),
  wall-clock and CPU of the thread that runs it. The simulator appends on a
  writer thread of its own, so those seconds overlap the day loop when a second
  core is free; they are not a share of the total. The wall-clock seconds also
  count the writer's waits for the GIL while the day loop runs Python code.
  Under the named policies the ``decisions`` table (contexts' JSON, table,
  Parquet) is written by a process of its own, and the other three tables by
  another: the CPU seconds of each are printed apart ("decisions process",
  "tables process"), and the CPU figure of the run is the sum of all three
  processes'; the writer thread is then not used (its figures are 0).

Wall-clock and CPU time are both printed: on a machine shared with other jobs
the CPU figure shows what the code costs, the wall figure what a user waits.

With ``--rules FILE|default`` each repetition also runs the day loop with the
contact rules applied (``World(..., rules=...)``) and prints its time and cost
per decision as ratios to the rule-free day loop of the same repetition (the
rules leave fewer decisions, so both the time per run and per decision are shown).

Figures only, no assertions. Usage::

    python bench/simulate.py [--hcps 10000] [--days 90] [--policy campaign] [--repeat 2]
                             [--rules default]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas  # noqa: F401  (imported up front: pyarrow loads it lazily on first use)
import pyarrow.parquet  # noqa: F401
from record import Figure, publish

from nba.contact import ContactPolicy
from nba.logs import io as logio
from simulators.hcp import world as world_module
from simulators.hcp.world import World

TARGET = 100_000


def _timed_append():
    """``nba.logs.io.append`` wrapped to sum its wall-clock seconds and the CPU
    seconds of the thread that calls it (the simulator's writer thread)."""
    spent = [0.0, 0.0]
    original = logio.append

    def wrapper(*args, **kwargs):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t
            spent[1] += time.thread_time() - c

    return wrapper, spent, original


def _writer_base() -> Any:
    """The class whose ``_work`` every forked writer process runs."""
    return getattr(world_module, "_ForkedWriter", None) or world_module._DecisionsProcess


def _timed_processes(path: Path):
    """``_ForkedWriter._work`` wrapped so that each forked writer process appends
    its name and the CPU seconds it spent (user + system) to ``path`` as it ends.
    (Code before the tables process had only ``_DecisionsProcess``: the same.)"""
    original = _writer_base()._work

    def wrapper(self, world):
        try:
            return original(self, world)
        finally:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            with open(path, "a") as fh:
                name = getattr(self, "what", "decisions writer")
                fh.write(f"{name}\t{ru.ru_utime + ru.ru_stime}\n")

    return wrapper, original


def _process_cpu(path: Path) -> dict[str, float]:
    """The CPU seconds :func:`_timed_processes` recorded, by process name."""
    out: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, cpu = line.split("\t")
            out[name] = out.get(name, 0.0) + float(cpu)
    return out


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended, waited-for children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hcps", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--policy", default="campaign")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rules", default=None, help="contact rules file, or 'default'")
    args = ap.parse_args()
    rules = None
    if args.rules is not None:
        rules = (
            ContactPolicy.default() if args.rules == "default" else ContactPolicy.load(args.rules)
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu_count={os.cpu_count()} load_avg_1min={load:.2f}")
    print(f"{args.hcps} HCPs x {args.days} days, policy {args.policy}, seed {args.seed}")
    best_loop = best_total = 0.0
    for rep in range(args.repeat):
        t0 = time.perf_counter()
        world = World(args.hcps, seed=args.seed)
        t_init = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        s = world.run(args.days, policy=args.policy)
        t_loop, c_loop = time.perf_counter() - t0, time.process_time() - c0
        loop_rate = s.decisions / t_loop
        wrapper, spent, original = _timed_append()
        logio.append = wrapper
        cpu_file = Path(tempfile.mkdtemp()) / "cpu.tsv"
        work, original_work = _timed_processes(cpu_file)
        _writer_base()._work = work
        try:
            with tempfile.TemporaryDirectory() as tmp:
                t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                world2 = World(args.hcps, seed=args.seed)
                s2 = world2.run(args.days, policy=args.policy, out=Path(tmp) / "logs")
                t_total, c_main = time.perf_counter() - t0, time.process_time() - c0
                c_child = _children_cpu() - k0
                c_total = c_main + c_child
        finally:
            logio.append = original
            _writer_base()._work = original_work
        by_proc = _process_cpu(cpu_file)
        total_rate = s2.decisions / t_total
        best_loop, best_total = max(best_loop, loop_rate), max(best_total, total_rate)
        print(
            f"run {rep + 1}: {s.decisions} decisions | world build {t_init:.2f} s | "
            f"day loop {t_loop:.2f} s = {loop_rate:,.0f} decisions/s "
            f"(CPU {c_loop:.2f} s = {s.decisions / c_loop:,.0f} decisions per CPU-s) | "
            f"with logs {t_total:.2f} s = {total_rate:,.0f} decisions/s "
            f"(CPU {c_total:.2f} s: {c_main:.2f} s simulating process, "
            f"{c_child:.2f} s writer processes: "
            f"{by_proc.get('decisions writer', 0.0):.2f} decisions process, "
            f"{by_proc.get('log tables writer', 0.0):.2f} tables process) "
            f"(nba.logs.io.append {spent[0]:.2f} s on the writer thread, "
            f"{spent[1]:.2f} CPU s of it)"
        )
        if rules is not None:
            world3 = World(args.hcps, seed=args.seed, rules=rules)
            t0, c0 = time.perf_counter(), time.process_time()
            s3 = world3.run(args.days, policy=args.policy)
            t_rules, c_rules = time.perf_counter() - t0, time.process_time() - c0
            print(
                f"run {rep + 1} with rules {rules.name} ({rules.version}): "
                f"{s3.decisions} decisions ({s3.skipped} skipped) | day loop {t_rules:.2f} s "
                f"= {s3.decisions / t_rules:,.0f} decisions/s (CPU {c_rules:.2f} s) | "
                f"time x{t_rules / t_loop:.2f} (CPU x{c_rules / c_loop:.2f}) of the run "
                f"without rules, cost per decision x"
                f"{(c_rules / s3.decisions) / (c_loop / s.decisions):.2f} (CPU)"
            )
    print(
        f"best: day loop {best_loop:,.0f} decisions/s ({best_loop / TARGET:.2f}x target), "
        f"with logs {best_total:,.0f} decisions/s ({best_total / TARGET:.2f}x target); "
        f"target {TARGET:,} decisions/s"
    )
    world_size = f"{args.hcps:,} HCPs × {args.days} days, {args.policy}"
    publish(
        "bench/simulate.py",
        [
            Figure(f"`nba simulate` with Parquet logs, {world_size} (best of {args.repeat})",
                   best_total, "decisions/s", reference_name="no code reference: the goal",
                   ratio=best_total / TARGET, ratio_name="× goal",
                   goal=f"≥ {TARGET:,} decisions/s", met=best_total >= TARGET),
            Figure(f"the day loop alone, no logs, {world_size}", best_loop, "decisions/s",
                   reference_name="no code reference: the goal", ratio=best_loop / TARGET,
                   ratio_name="× goal"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
