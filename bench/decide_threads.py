"""The decision route's thread hand-overs measured without HTTP, in one process.

``POST /v1/decisions`` spends about twice the engine's own CPU outside the event
loop (docs/performance.md). This script runs the engine in-process the two ways the
fast decision route has run it, on a real SQLite store with ``synchronous=FULL``
and the group committer, from an asyncio loop with 16 concurrent "clients" (the
benchmark's wrk connections):

``blocking``
    each request in a pool of 40 threads calling ``DecisionEngine.decide``, which
    waits in its thread for the group commit (the route before this change);
``awaited``
    each request's decision computed in a pool of ``DECIDE_THREADS`` threads
    (``DecisionEngine.start_decision``), handed to the group committer, and its
    commit awaited on the loop (the route now).

Rounds alternate the two ways in the same process and print, per decision, the
process's CPU time (user + system), its context switches (voluntary and not,
from ``getrusage``) and the decisions per second of wall-clock time. The answers
are serialized as the route does; no HTTP is involved, so the difference between
the ways is the hand-overs' own cost (and the GIL's).

Usage::

    .venv/bin/python bench/decide_threads.py [--decisions 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT))

CLIENTS = 16
CHANNELS = ["email"]
K = 3


def _services(tmp: Path, hcps: int, model: str | None) -> tuple[Any, list[str]]:
    """The service's objects on a new store (``synchronous=FULL``, group commit)
    holding ``hcps`` HCPs, a third of them with a few touches."""
    from serving_testkit import add_population, make_settings

    from serving.main import open_services

    settings = make_settings(
        tmp, model_uri=model or str(tmp / "none"), store_synchronous="FULL", group_commit=True
    )
    svc = open_services(settings)
    rng = np.random.default_rng(1)
    ids = add_population(svc.store, svc.catalog, hcps, rng)
    return svc, ids


async def _round(svc: Any, reqs: list[Any], way: str, pools: dict[str, Any]) -> float:
    """Run ``reqs`` through ``way`` with :data:`CLIENTS` concurrent clients;
    returns the wall-clock seconds."""
    engine = svc.engine
    loop = asyncio.get_running_loop()
    queue = list(reversed(reqs))

    async def blocking(req: Any) -> None:
        def work() -> bytes:
            _, out = engine.decide(req, "bench")
            return bytes(out.model_dump_json(), "utf-8")

        await loop.run_in_executor(pools["blocking"], work)

    async def awaited(req: Any) -> None:
        work = await loop.run_in_executor(pools["awaited"], engine.start_decision, req, "bench")
        stored = engine.submit_decision(work)
        if stored is not None:
            await asyncio.wrap_future(stored, loop=loop)
            engine.decision_stored(work)
        work.response.model_dump_json()

    one = blocking if way == "blocking" else awaited

    async def client() -> None:
        while queue:
            await one(queue.pop())

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from serving.api.fast import DECIDE_THREADS, THREADS
    from serving.schemas import DecisionRequest

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=3000, help="per round and way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hcps", type=int, default=2000)
    ap.add_argument("--model", default=None, help="model path (default: bench/serve.py's)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-threads-"))
    if args.model is None:
        from serve import bench_model

        args.model = bench_model(tmp, None)
    svc, ids = _services(tmp, args.hcps, args.model)
    rng = np.random.default_rng(2)
    pools = {
        "blocking": ThreadPoolExecutor(THREADS, thread_name_prefix="blocking"),
        "awaited": ThreadPoolExecutor(DECIDE_THREADS, thread_name_prefix="awaited"),
    }
    figures: dict[str, list[tuple[float, float, float]]] = {"blocking": [], "awaited": []}
    print(f"clients: {CLIENTS}; blocking pool: {THREADS} threads; decision pool: {DECIDE_THREADS}")
    try:
        for rnd in range(-1, args.rounds):  # round -1 warms up
            for way in ("blocking", "awaited"):
                n = 300 if rnd < 0 else args.decisions
                reqs = [
                    DecisionRequest(hcp_id=ids[int(i)], channels=CHANNELS, k=K)
                    for i in rng.integers(0, len(ids), n)
                ]
                r0, c0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
                wall = asyncio.run(_round(svc, reqs, way, pools))
                r1, c1 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
                if rnd < 0:
                    continue
                cpu_ms = 1e3 * (c1 - c0) / n
                cs = (r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw) / n
                figures[way].append((cpu_ms, cs, n / wall))
                print(
                    f"round {rnd} {way:<9} CPU {cpu_ms:.3f} ms/decision, "
                    f"{cs:.1f} context switches/decision, {n / wall:.0f} decisions/s"
                )
    finally:
        for p in pools.values():
            p.shutdown()
        if svc.engine.committer is not None:
            svc.engine.committer.close()
        svc.store.close()
    print("medians:")
    for way, rows in figures.items():
        cpu, cs, rate = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"  {way:<9} CPU {cpu:.3f} ms/decision, {cs:.1f} switches, {rate:.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
