"""Benchmark of the event store's scale-out: decisions/s of two service replicas
sharing one PostgreSQL database against one replica on its SQLite file, in one run.

It starts a PostgreSQL server from the machine's binaries (as the tests do,
``tests/servers/pg_server.py``: a temporary cluster on 127.0.0.1), then, for
each configuration, real ``nba serve`` processes on 127.0.0.1 (``--workers``
each, the uniform baseline policy: no model, so the store's share of the work
is what differs):

- reference: one replica, ``NBA_STORE_PATH`` (SQLite, WAL, synchronous FULL);
- scale-out: two replicas, ``NBA_STORE_URL`` (PostgreSQL, one database).

The same HCPs are imported into both stores. Load: ``POST /v1/decisions`` from
the Python load generator of ``bench/serve.py`` (one process per replica, 16
clients each; with two replicas, both are driven at once), in alternating
rounds so drift hits both alike. It prints decisions/s of each configuration,
their ratio, and how many acknowledged decisions are missing from each store
(must be 0).

On a machine with few cores the replicas, the database and the load generators
share them, so the ratio says more about the store's overhead per decision than
about scale-out; the figures are printed with the core count.

Usage::

    .venv/bin/python bench/scale_store.py [--seconds 6] [--rounds 2] [--hcps 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT / "tests" / "servers"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from record import Figure, publish  # noqa: E402  (bench/ is on the path above)

SQLITE_1, PG_2 = "1 replica, SQLite", "2 replicas, PostgreSQL"


def _drive_all(bases: list[str], hcp_ids: list[str], seconds: float, seed: int) -> list[Any]:
    """Drive every replica at once (one load generator process each)."""
    from serve import drive
    from serving_testkit import KEYS

    out: list[Any] = [None] * len(bases)

    def run(i: int) -> None:
        out[i] = drive(bases[i], "/v1/decisions", KEYS["decide"], hcp_ids, seconds, seed + i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers per replica")
    ap.add_argument("--seconds", type=float, default=6.0, help="per configuration per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hcps", type=int, default=2000)
    args = ap.parse_args(argv)

    from pg_server import running_postgres
    from serve import import_hcps
    from serving_testkit import start_server, stop_server

    from serving.store import EventStore

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-scale-store-"))
    hcp_ids = [f"S{i:06d}" for i in range(args.hcps)]
    print(f"machine: {os.cpu_count()} cores; workers per replica: {args.workers}; "
          f"clients: 16 per replica; policy: uniform baseline")  # fmt: skip
    procs: list[Any] = []
    with running_postgres({"max_connections": "200"}) as pg:
        url = pg.create_database("bench_scale")
        try:
            sq_dir = tmp / "sqlite"
            sq_dir.mkdir()
            proc, sq_base = start_server(
                sq_dir, workers=args.workers, NBA_STORE_PATH=str(sq_dir / "events.db")
            )
            procs.append(proc)
            pg_bases = []
            for name in ("pg-a", "pg-b"):
                d = tmp / name
                d.mkdir()
                proc, base = start_server(d, workers=args.workers, NBA_STORE_URL=url)
                procs.append(proc)
                pg_bases.append(base)
            import_hcps(sq_base, hcp_ids, 1)
            import_hcps(pg_bases[0], hcp_ids, 1)
            configs = {SQLITE_1: [sq_base], PG_2: pg_bases}
            runs: dict[str, list[list[Any]]] = {name: [] for name in configs}
            for rnd in range(-1, args.rounds):  # round -1 warms up and is not counted
                for name, bases in configs.items():
                    seconds = 1.5 if rnd < 0 else args.seconds
                    res = _drive_all(bases, hcp_ids, seconds, 100 + rnd)
                    if rnd >= 0:
                        runs[name].append(res)
        finally:
            for p in procs:
                stop_server(p)
        stores = {SQLITE_1: EventStore(tmp / "sqlite" / "events.db"), PG_2: EventStore(url)}
        print()
        print(f"{'configuration':<26}{'decisions':>10}{'errors':>8}{'decisions/s':>13}"
              f"{'p50 ms':>9}{'p99 ms':>9}{'missing':>9}")  # fmt: skip
        rate: dict[str, float] = {}
        for name, rounds in runs.items():
            created = sum(r[6] for rs in rounds for r in rs)
            errors = sum(r[1] for rs in rounds for r in rs)
            # replicas run at the same time: a round lasts as long as its longest driver
            seconds = sum(max(r[2] for r in rs) for rs in rounds)
            lat = [x for rs in rounds for r in rs for x in r[3]]
            acked = [e for rs in rounds for r in rs for e in r[4]]
            missing = sum(1 for e in acked if stores[name].get_decision(e) is None)
            rate[name] = created / seconds if seconds > 0 else 0.0
            p50 = float(np.percentile(lat, 50)) if lat else float("nan")
            p99 = float(np.percentile(lat, 99)) if lat else float("nan")
            print(f"{name:<26}{created:>10}{errors:>8}{rate[name]:>13.1f}{p50:>9.1f}"
                  f"{p99:>9.1f}{missing:>9}")  # fmt: skip
        ratio = rate[PG_2] / rate[SQLITE_1] if rate[SQLITE_1] > 0 else float("nan")
        print()
        print(f"decisions/s ratio (2 replicas on PostgreSQL / 1 on SQLite): {ratio:.2f}")
        for s in stores.values():
            s.close()
    publish(
        "bench/scale_store.py",
        [
            Figure(f"2 replicas on one PostgreSQL database, {args.workers} worker each, "
                   "16 clients each", rate[PG_2], "decisions/s", rate[SQLITE_1],
                   "1 replica on SQLite", ratio_name="× SQLite"),
        ],
        argv,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
