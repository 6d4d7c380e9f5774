"""Benchmark of storing outcomes: one transaction per outcome against group commit,
at the store and over HTTP, in one run.

1. Store write path: 16 threads store outcomes of stored decisions into one
   SQLite file (``synchronous=FULL``, the service default), first each with its
   own :meth:`~serving.store.EventStore.add_outcome` transaction (one fsync per
   outcome), then through an :class:`~serving.commit_outcomes.OutcomeCommitter`
   (one fsync per group). Prints outcomes/s of both and their ratio.
2. HTTP: ``nba serve`` (real uvicorn workers on 127.0.0.1, ``--workers 2``) is
   driven by 16 concurrent clients (asyncio + httpx, in their own process)
   posting ``POST /v1/events/{event_id}/outcomes``, once with group commit
   (``NBA_GROUP_COMMIT=true``, the default) and once without; the hidden no-op
   route ``POST /v1/_bench/noop`` of the same server is the ceiling the HTTP
   stack itself allows on this machine.

Every acknowledged outcome is checked to be in the store afterwards
(acknowledged = committed); the exit status is 1 otherwise.

Usage::

    .venv/bin/python bench/outcomes.py [--seconds 8] [--store-outcomes 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT))

CONCURRENCY = 16
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def seed_decisions(path: Path, n: int) -> list[str]:
    """Store ``n`` email decisions; returns their event ids."""
    from nba.domain import Decision
    from serving.store import EventStore

    store = EventStore(path)
    ids = [f"BE{i:07d}" for i in range(n)]
    store.add_decisions(
        [
            Decision(
                e,
                T0,
                f"H{i % 500:04d}",
                "bench",
                ("email",),
                "{}",
                "cat",
                ("a@email", "b@email"),
                (0.5, 0.5),
                i % 2,
                ("a@email", "b@email")[i % 2],
                0.5,
                "uniform",
                "bench",
            )
            for i, e in enumerate(ids)
        ]
    )
    store.close()
    return ids


def stored_keys(path: Path) -> set[tuple[str, str]]:
    """(event_id, source_id) of every stored outcome."""
    con = sqlite3.connect(path)
    try:
        return {(e, s) for e, s in con.execute("SELECT event_id, source_id FROM outcomes")}
    finally:
        con.close()


# ------------------------------------------------------------------ store path
def store_rate(tmp: Path, n: int, grouped: bool) -> tuple[float, int, int]:
    """16 threads store ``n`` outcomes; returns (outcomes/s, acknowledged, missing)."""
    from nba.domain import Outcome
    from serving.commit_outcomes import OutcomeCommitter
    from serving.store import EventStore, OutcomeWrite

    path = tmp / f"store-{'grouped' if grouped else 'single'}.db"
    ids = seed_decisions(path, n)
    store = EventStore(path, synchronous="FULL")
    oc = OutcomeCommitter(store) if grouped else None
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    ts = T0 + timedelta(hours=1)

    def worker(part: list[str]) -> None:
        for e in part:
            o = Outcome(e, ts, "opened", 1.0, "hcp", f"s-{e}")
            ok = oc.add(OutcomeWrite(o)) if oc is not None else store.add_outcome(o)
            if ok:
                with lock:
                    acked.append((e, o.source_id))

    threads = [
        threading.Thread(target=worker, args=(ids[k::CONCURRENCY],)) for k in range(CONCURRENCY)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if oc is not None:
        oc.close()
    store.close()
    missing = len(set(acked) - stored_keys(path))
    return len(acked) / seconds, len(acked), missing


# --------------------------------------------------------------------- HTTP path
async def _drive(
    base: str, route: str, key: str, ids: list[str], seconds: float, tag: str
) -> tuple[int, int, float, list[tuple[str, str]]]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    acked: list[tuple[str, str]] = []
    errors = 0
    done = 0
    counter = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            nonlocal errors, done, counter
            while time.perf_counter() < stop_at:
                i = counter
                counter += 1
                if route == "noop":
                    r = await client.post(
                        "/v1/_bench/noop",
                        json={"hcp_id": "H0000", "channels": ["email"], "k": 3},
                        headers=headers,
                    )
                    ok = r.status_code == 201
                else:
                    eid, sid = ids[i % len(ids)], f"{tag}-{i}"
                    r = await client.post(
                        f"/v1/events/{eid}/outcomes",
                        json={"type": "opened", "source_id": sid},
                        headers=headers,
                    )
                    ok = r.status_code == 201
                    if ok:
                        acked.append((eid, sid))
                done += 1
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return done, errors, elapsed, acked


def _loadgen(args: tuple[Any, ...], out: Any) -> None:
    out.send(asyncio.run(_drive(*args)))
    out.close()


def drive(
    base: str, route: str, key: str, ids: list[str], seconds: float, tag: str
) -> tuple[int, int, float, list[tuple[str, str]]]:
    """Run the load generator in its own process (so it does not share the GIL)."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_loadgen, args=((base, route, key, ids, seconds, tag), send))
    proc.start()
    result: tuple[int, int, float, list[tuple[str, str]]] = recv.recv()
    proc.join()
    return result


def http_rates(
    tmp: Path, group_commit: bool, workers: int, seconds: float, n_decisions: int
) -> dict[str, Any]:
    """Outcomes/s and no-op requests/s of one server; acknowledged vs stored."""
    from serving_testkit import KEYS, start_server, stop_server

    sub = tmp / f"http-{'grouped' if group_commit else 'single'}"
    sub.mkdir()
    db = sub / "events.db"
    ids = seed_decisions(db, n_decisions)
    proc, base = start_server(
        sub,
        workers=workers,
        NBA_BENCH_ROUTES="true",
        NBA_STORE_PATH=str(db),
        NBA_STORE_SYNCHRONOUS="FULL",
        NBA_GROUP_COMMIT="true" if group_commit else "false",
    )
    acked: list[tuple[str, str]] = []
    try:
        drive(base, "outcomes", KEYS["report"], ids, 1.5, "warm")  # warm-up
        noop = drive(base, "noop", KEYS["decide"], ids, seconds, "noop")
        out = drive(base, "outcomes", KEYS["report"], ids, seconds, "run")
        acked = out[3]
    finally:
        stop_server(proc)
    missing = len(set(acked) - stored_keys(db))
    return {
        "outcomes_rps": out[0] / out[2],
        "outcome_errors": out[1],
        "noop_rps": noop[0] / noop[2],
        "acked": len(acked),
        "missing": missing,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store-outcomes", type=int, default=3000, help="per store-path run")
    ap.add_argument("--seconds", type=float, default=8.0, help="per HTTP route and server")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decisions", type=int, default=5000, help="decisions the HTTP runs report on")
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-outcomes-"))
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; load average {load:.1f}; store synchronous=FULL")
    single, n1, miss1 = store_rate(tmp, args.store_outcomes, grouped=False)
    grouped, n2, miss2 = store_rate(tmp, args.store_outcomes, grouped=True)
    print()
    print(f"store write path, {CONCURRENCY} threads, {args.store_outcomes} outcomes each run:")
    print(f"  one transaction per outcome: {single:10.1f} outcomes/s  ({n1} acknowledged)")
    print(f"  group commit:                {grouped:10.1f} outcomes/s  ({n2} acknowledged)")
    print(f"  ratio: {grouped / single:.1f}x; acknowledged but missing: {miss1 + miss2}")
    missing = miss1 + miss2
    if not args.skip_http:
        runs = {
            g: http_rates(tmp, g, args.workers, args.seconds, args.decisions) for g in (False, True)
        }
        print()
        print(
            f"HTTP, {args.workers} workers, {CONCURRENCY} clients, {args.seconds:.0f} s per route:"
        )
        for g, r in runs.items():
            name = "group commit" if g else "one transaction per outcome"
            print(
                f"  {name:<28} outcomes {r['outcomes_rps']:8.1f}/s ({r['outcome_errors']} errors)"
                f"; no-op route of the same server {r['noop_rps']:8.1f} req/s"
                f"; outcomes/no-op {r['outcomes_rps'] / r['noop_rps']:.2f}"
            )
            missing += r["missing"]
        print(
            f"  group commit / one transaction per outcome: "
            f"{runs[True]['outcomes_rps'] / runs[False]['outcomes_rps']:.2f}x; "
            f"acknowledged {sum(r['acked'] for r in runs.values())}, missing from the store "
            f"{sum(r['missing'] for r in runs.values())}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}; data in {tmp}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
