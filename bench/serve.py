"""Benchmark of the decision service: HTTP decisions against a no-op route of the
same shape, and batch decisions against single decisions, in one run.

It starts ``nba serve`` (real uvicorn workers on 127.0.0.1) with the hidden
benchmark route switched on (``NBA_BENCH_ROUTES=true``) and a trained VW model:
the one behind ``--model`` if given, else ``models:/nba@champion`` if the
registry has it, else a small VW model trained here on synthetic decisions (so
the model cost is real). A separate load-generator process drives
``POST /v1/decisions`` and ``POST /v1/_bench/noop`` -- which validates the same
body and key but touches neither store nor model -- with 16 concurrent
clients (asyncio + httpx), alternating rounds so drift hits both alike; then it
posts ``/v1/decisions:batch`` requests (as many in flight as there are workers,
so both sides use the same workers). It prints requests/s, p50 and p99 for both
routes and their ratios, and batch decisions/s against single decisions/s.
Every decision is really stored: the store is counted before and after.

Absolute figures on shared machines are noise; the ratios are the result.
Targets (docs/DESIGN.md, "Performance budgets"): decisions >= 0.6x the no-op's
requests/s, p99 <= 2x the
no-op's p99, batch >= 5x single decisions/s.

Usage::

    .venv/bin/python bench/serve.py [--workers 2] [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT))

CONCURRENCY = 16
CHANNELS = ["email"]
K = 3


@dataclass(frozen=True)
class RunStats:
    route: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


# --------------------------------------------------------------- load generator
async def _drive(
    base: str, path: str, key: str, hcp_ids: list[str], seconds: float, seed: int
) -> tuple[int, int, float, list[float], list[str]]:
    import httpx

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(hcp_ids), size=1_000_000)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    lat: list[float] = []
    events: list[str] = []
    errors = 0
    counter = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop_at:
                i = counter
                counter += 1
                body = {
                    "hcp_id": hcp_ids[int(picks[i % picks.shape[0]])],
                    "channels": CHANNELS,
                    "k": K,
                    "context": {"requester": "bench"},
                }
                t0 = time.perf_counter()
                r = await client.post(path, json=body, headers=headers)
                lat.append((time.perf_counter() - t0) * 1e3)
                if r.status_code == 201:
                    eid = r.json().get("event_id")
                    if eid and path == "/v1/decisions":
                        events.append(eid)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return len(lat), errors, elapsed, lat, events


def _loadgen(args: tuple[str, str, str, list[str], float, int], out: Any) -> None:
    out.send(asyncio.run(_drive(*args)))
    out.close()


def drive(base: str, path: str, key: str, hcp_ids: list[str], seconds: float, seed: int) -> Any:
    """Run the load generator in its own process; returns its raw results."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_loadgen, args=((base, path, key, hcp_ids, seconds, seed), send))
    proc.start()
    result = recv.recv()
    proc.join()
    return result


# ----------------------------------------------------------------------- model
def bench_model(tmp: Path, requested: str | None) -> str:
    """The model URI/path to serve (see the module docstring)."""
    if requested:
        return requested
    try:
        from training.registry import resolve_version

        resolve_version("models:/nba@champion")
        return "models:/nba@champion"
    except Exception:
        pass
    from datetime import date

    from nba.catalog import Catalog
    from nba.context import DecisionContext, History
    from nba.domain import ADOPTION_STAGES, HCPProfile
    from nba.policies.vw import VWConfig, VWPolicy

    catalog = Catalog.default()
    pol = VWPolicy(VWConfig(epsilon=0.1), catalog=catalog, seed=7, model_version="bench-vw")
    rng = np.random.default_rng(7)
    day = date(2026, 3, 2)
    for i in range(400):
        market = catalog.markets[i % len(catalog.markets)]
        hcp = HCPProfile(
            f"t{i}",
            "cardiology",
            int(rng.integers(1, 11)),
            market,
            ADOPTION_STAGES[int(rng.integers(0, 6))],
            frozenset(catalog.channels),
            digital_affinity=float(rng.random()),
        )
        hist = History(touches_30d={"email": int(rng.integers(0, 4))})
        acts = catalog.eligible_actions(market, day, CHANNELS)
        if not acts:
            continue
        chosen = int(rng.integers(0, len(acts)))
        pol.learn(
            DecisionContext(hcp, day, hist), acts, chosen, float(rng.random() < 0.2), 1 / len(acts)
        )
    path = tmp / "bench-model"
    pol.save(path)
    return str(path)


# ------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0, help="per route per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hcps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--model", default=None, help="model URI or path (default: see docstring)")
    ap.add_argument(
        "--synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="store fsync mode (FULL, the service default, fsyncs every commit)",
    )
    args = ap.parse_args(argv)

    import httpx
    from serving_testkit import KEYS, auth, start_server, stop_server

    from serving.store import EventStore

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-serve-"))
    model = bench_model(tmp, args.model)
    print(f"machine: {os.cpu_count()} cores; workers: {args.workers}; clients: {CONCURRENCY}")
    print(f"model: {model}; store synchronous={args.synchronous}")
    proc, base = start_server(
        tmp,
        workers=args.workers,
        NBA_MODEL_URI=model,
        NBA_BENCH_ROUTES="true",
        NBA_STORE_PATH=str(tmp / "events.db"),
        NBA_STORE_SYNCHRONOUS=args.synchronous,
    )
    try:
        hcp_ids = [f"B{i:06d}" for i in range(args.hcps)]
        rng = np.random.default_rng(1)
        rows = ["hcp_id,specialty,decile,market,adoption_stage,consents,no_see,digital_affinity"]
        for h in hcp_ids:
            rows.append(
                f"{h},cardiology,{int(rng.integers(1, 11))},US,aware,email;portal;webinar,"
                f"false,{rng.random():.3f}"
            )
        with httpx.Client(base_url=base, timeout=120) as c:
            r = c.post(
                "/v1/hcps:import",
                files={"file": ("hcps.csv", "\n".join(rows).encode())},
                headers=auth("report"),
            )
            r.raise_for_status()
            served = c.get("/v1/models/current", headers=auth("decide")).json()
        print(f"serving: {served['model_version']} (baseline: {served['is_baseline']})")
        store = EventStore(tmp / "events.db")
        before = store.counts()["decisions"]

        # warm-up both routes, then alternate measured rounds
        acked_single: list[str] = []
        for path in ("/v1/_bench/noop", "/v1/decisions"):
            acked_single.extend(drive(base, path, KEYS["decide"], hcp_ids, 1.5, 0)[4])
        results: dict[str, list[Any]] = {"/v1/_bench/noop": [], "/v1/decisions": []}
        for rnd in range(args.rounds):
            for path in ("/v1/_bench/noop", "/v1/decisions"):
                results[path].append(
                    drive(base, path, KEYS["decide"], hcp_ids, args.seconds, 100 + rnd)
                )
        stats: dict[str, RunStats] = {}
        for path, runs in results.items():
            stats[path] = RunStats(
                path,
                sum(r[0] for r in runs),
                sum(r[1] for r in runs),
                sum(r[2] for r in runs),
                [x for r in runs for x in r[3]],
            )
            for r in runs:
                acked_single.extend(r[4])

        # batch: batch-size HCPs per request, as many requests in flight as workers
        batch_decisions = 0
        batch_events: list[str] = []

        def one_batch(b: int) -> dict[str, Any]:
            ids = [
                hcp_ids[(b * args.batch_size + j) % len(hcp_ids)] for j in range(args.batch_size)
            ]
            with httpx.Client(base_url=base, timeout=600) as bc:
                r = bc.post(
                    "/v1/decisions:batch",
                    json={
                        "hcp_ids": ids,
                        "channels": CHANNELS,
                        "k": K,
                        "context": {"requester": "bench"},
                    },
                    headers=auth("decide"),
                )
                r.raise_for_status()
                return dict(r.json())

        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            for out in pool.map(one_batch, range(args.batches)):
                batch_decisions += int(out["n_decisions"])
                batch_events += [d["event_id"] for d in out["decisions"] if d["event_id"]]
        batch_seconds = time.perf_counter() - t0
    finally:
        stop_server(proc)
    after = store.counts()["decisions"]
    acked = [*acked_single, *batch_events]
    missing = sum(1 for e in acked if store.get_decision(e) is None)

    dec, noop = stats["/v1/decisions"], stats["/v1/_bench/noop"]
    print()
    print(f"{'route':<22}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for s in (noop, dec):
        print(
            f"{s.route:<22}{s.requests:>10}{s.errors:>8}{s.rps:>10.1f}"
            f"{s.pct(50):>9.2f}{s.pct(99):>9.2f}"
        )
    rps_ratio = dec.rps / noop.rps if noop.rps else float("nan")
    p99_ratio = dec.pct(99) / noop.pct(99) if noop.latencies_ms else float("nan")
    batch_rate = batch_decisions / batch_seconds if batch_seconds > 0 else 0.0
    batch_ratio = batch_rate / dec.rps if dec.rps else float("nan")
    print()
    print(f"decisions/noop requests/s ratio: {rps_ratio:.2f}  (target >= 0.6)")
    print(f"decisions/noop p99 ratio:        {p99_ratio:.2f}  (target <= 2.0)")
    print(
        f"batch: {batch_decisions} decisions in {batch_seconds:.2f} s = {batch_rate:.1f}/s; "
        f"vs single {dec.rps:.1f}/s: {batch_ratio:.2f}x  (target >= 5)"
    )
    logged = after - before
    print(
        f"logged decisions: {logged} new rows in the store; acknowledged (201): "
        f"{len(acked_single)} single + {len(batch_events)} batch = {len(acked)}; "
        f"acknowledged but missing from the store: {missing}"
    )
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}; data in {tmp}")
    return 0 if logged == len(acked) and missing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
