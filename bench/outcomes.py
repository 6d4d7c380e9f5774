"""Benchmark of storing outcomes: one transaction per outcome against group commit,
at the store and over HTTP, in one run.

1. Store write path: 16 threads store outcomes of stored decisions into one
   SQLite file (``synchronous=FULL``, the service default), first each with its
   own :meth:`~serving.store.EventStore.add_outcome` transaction (one fsync per
   outcome), then through an :class:`~serving.commit_outcomes.OutcomeCommitter`
   (one fsync per group). Prints outcomes/s of both and their ratio. Then two
   processes (as two workers), each with its own committer fed by 8 threads,
   share one file: outcomes/s, commits/s, outcomes per commit and the commit
   times' distribution (their tail is the wait for the other process).
2. HTTP: ``nba serve`` (real uvicorn workers on 127.0.0.1, ``--workers 2``,
   group commit on) is driven by wrk (Debian's package; one thread, 16
   connections) when it is installed, else by a Python/httpx load generator in
   its own process (whose own CPU caps the cheaper routes on 2 cores). Four
   routes in alternating rounds, so drift in the machine's load hits all alike:
   the bare FastAPI app's outcome-shaped no-op (``bench/bare_app.py``, same
   workers, same HTTP parser and event loop), our own no-op
   ``POST /v1/_bench/noop`` (middleware, key check, metrics; no store),
   ``POST /v1/events/{event_id}/outcomes`` (one outcome per request) and
   ``POST /v1/outcomes:batch`` (``--batch-size`` outcomes per request,
   ``--batch-connections`` requests in flight). Prints requests/s, p50, p99, the
   server's CPU ms per request (all its processes, from ``/proc``) and, for the
   two outcome routes, outcomes/s and CPU ms per outcome.

Every acknowledged outcome is checked to be in the store afterwards
(acknowledged = committed: 201 answers of the single route, ``stored`` items of
batch answers, counted by a Lua counter in wrk; each source_id is unique, so the
store is counted by its prefix); the exit status is 1 otherwise.

Usage::

    .venv/bin/python bench/outcomes.py [--seconds 8] [--rounds 2] [--workers 2]
        [--batch-size 100] [--loadgen auto|wrk|python] [--store-outcomes 3000]
        [--two-process-seconds 8]
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from record import Figure, publish  # noqa: E402  (bench/ is on the path above)

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


@dataclass
class TwoProcessRun:
    """What :func:`two_process_rate` measured: both processes' outcomes pooled."""

    outcomes_per_s: float
    commits_per_s: float
    mean_group: float
    #: seconds of each shared transaction (``add_outcomes``), sorted
    commit_seconds: list[float]
    acknowledged: int
    missing: int

    def commit_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) of a shared transaction's time, in ms."""
        c = self.commit_seconds
        return 1e3 * c[round(q * (len(c) - 1))] if c else float("nan")


def _committing_process(path: str, tag: str, seconds: float, out: Any) -> None:
    """One 'worker process': an OutcomeCommitter fed by 8 threads for ``seconds``;
    sends back the acknowledged (event, source_id) and each commit's (seconds, size)."""
    from nba.domain import Outcome
    from serving.commit_outcomes import OutcomeCommitter
    from serving.store import EventStore, OutcomeWrite

    store = EventStore(path, synchronous="FULL")
    commits: list[tuple[float, int]] = []
    add_outcomes = store.add_outcomes

    def timed(writes: Any) -> list[bool | Exception]:
        t0 = time.perf_counter()
        try:
            return add_outcomes(writes)
        finally:
            commits.append((time.perf_counter() - t0, len(writes)))

    store.add_outcomes = timed  # type: ignore[method-assign]
    oc = OutcomeCommitter(store)
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    ids = [f"BE{i:07d}" for i in range(CONCURRENCY * 100)]
    ts = T0 + timedelta(hours=1)
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            o = Outcome(ids[i % len(ids)], ts, "opened", 1.0, "hcp", f"{tag}-{i}")
            if oc.add(OutcomeWrite(o)):
                with lock:
                    acked.append((o.event_id, o.source_id))
            i += CONCURRENCY // 2

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONCURRENCY // 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oc.close()
    store.close()
    out.send((acked, commits))


def two_process_rate(tmp: Path, seconds: float) -> TwoProcessRun:
    """Two processes (as ``nba serve --workers 2``), each with its own group
    committer and 8 threads, store outcomes into one SQLite file for ``seconds``:
    outcomes/s, commits/s, the mean group and each commit's time (the wait for the
    other process's writes shows in the commit times' tail)."""
    path = tmp / "store-two-processes.db"
    seed_decisions(path, CONCURRENCY * 100)
    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [
        ctx.Process(target=_committing_process, args=(str(path), tag, seconds, send))
        for tag, (_, send) in zip(("p1", "p2"), pipes, strict=True)
    ]
    for p in procs:
        p.start()
    results = [recv.recv() for recv, _ in pipes]
    for p in procs:
        p.join()
    acked = [a for r in results for a in r[0]]
    commits = [c for r in results for c in r[1]]
    missing = len(set(acked) - stored_keys(path))
    return TwoProcessRun(
        len(acked) / seconds,
        len(commits) / seconds,
        sum(n for _, n in commits) / len(commits) if commits else float("nan"),
        sorted(c for c, _ in commits),
        len(acked),
        missing,
    )


# --------------------------------------------------------------------- HTTP path
BARE, NOOP, SINGLE, BATCH = (
    "bare FastAPI no-op",
    "our no-op (/v1/_bench/noop)",
    "POST /v1/events/{id}/outcomes",
    "POST /v1/outcomes:batch",
)


@dataclass
class RouteStats:
    """One route's rounds pooled: requests and seconds add up."""

    route: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    #: outcomes acknowledged as stored (201 single answers, ``stored`` batch items)
    outcomes: int = 0
    cpu_seconds: float = 0.0
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def outcomes_per_s(self) -> float:
        return self.outcomes / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1e3 * self.cpu_seconds / self.requests if self.requests else float("nan")

    @property
    def cpu_ms_per_outcome(self) -> float:
        return 1e3 * self.cpu_seconds / self.outcomes if self.outcomes else float("nan")

    @property
    def p99_ms(self) -> float:
        """Mean of the rounds' p99 (wrk reports percentiles only)."""
        return sum(self.p99s) / len(self.p99s) if self.p99s else float("nan")

    @property
    def p50_ms(self) -> float:
        return sum(self.p50s) / len(self.p50s) if self.p50s else float("nan")


@dataclass(frozen=True)
class Load:
    """What one load-generator run sends: ``kind`` is ``noop`` (the decision-shaped
    no-op), ``single`` (one outcome per request) or ``batch`` (``batch`` outcomes
    per request); ``tag`` prefixes every source_id so the store can be counted."""

    kind: str
    key: str
    ids: list[str]
    tag: str
    batch: int = 1
    connections: int = CONCURRENCY


_WRK_SCRIPT = """
local ids = {%(ids)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local kind, batch, tag = "%(kind)s", %(batch)d, "%(tag)s"
local function item(i)
  return '"type":"opened","source_id":"' .. tag .. '-' .. i .. '"'
end
request = function()
  n = n + 1
  if kind == "noop" then
    return wrk.format(nil, "/v1/_bench/noop", nil,
      '{"hcp_id":"H0000","channels":["email"],"k":3}')
  elseif kind == "single" then
    local e = ids[(n %% #ids) + 1]
    return wrk.format(nil, "/v1/events/" .. e .. "/outcomes", nil, "{" .. item(n) .. "}")
  end
  local parts = {}
  for j = 1, batch do
    local i = (n - 1) * batch + j
    parts[j] = '{"event_id":"' .. ids[(i %% #ids) + 1] .. '",' .. item(i) .. '}'
  end
  return wrk.format(nil, "/v1/outcomes:batch", nil,
    '{"outcomes":[' .. table.concat(parts, ",") .. ']}')
end
counted = 0
response = function(status, headers, body)
  if kind == "batch" then
    if status == 200 then
      for _ in string.gmatch(body, '"status":"stored"') do counted = counted + 1 end
    end
  elseif status == 201 then
    counted = counted + 1
  end
end
"""


def drive_wrk(base: str, load: Load, seconds: float) -> tuple[int, int, float, float, float, int]:
    """Drive the server at ``base`` with wrk (one thread, ``load.connections``
    connections). Returns requests, errors (non-2xx and socket errors), seconds,
    p50 and p99 in ms, and the acknowledged outcomes (201 answers; ``stored``
    items of batch answers) -- or 201 answers of the no-op."""
    from wrk import run_wrk

    script = _WRK_SCRIPT % {
        "ids": ",".join(f'"{e}"' for e in load.ids),
        "key": load.key,
        "kind": load.kind,
        "batch": load.batch,
        "tag": load.tag,
    }
    r = run_wrk(script, base, load.connections, seconds, "counted")
    return r.requests, r.errors, r.seconds, r.p50_ms, r.p99_ms, r.counted


async def _drive(
    base: str, load: Load, seconds: float
) -> tuple[int, int, float, float, float, int]:
    import httpx
    import numpy as np

    headers = {"Authorization": f"Bearer {load.key}"}
    limits = httpx.Limits(
        max_connections=load.connections, max_keepalive_connections=load.connections
    )
    lat: list[float] = []
    errors = 0
    counted = 0
    n = 0
    ids = load.ids
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            nonlocal errors, counted, n
            while time.perf_counter() < stop_at:
                n += 1
                i = n
                body: dict[str, Any]
                if load.kind == "noop":
                    path, body = "/v1/_bench/noop", {"hcp_id": "H0000", "channels": ["email"]}
                elif load.kind == "single":
                    path = f"/v1/events/{ids[i % len(ids)]}/outcomes"
                    body = {"type": "opened", "source_id": f"{load.tag}-{i}"}
                else:
                    js = range((i - 1) * load.batch + 1, i * load.batch + 1)
                    path = "/v1/outcomes:batch"
                    body = {
                        "outcomes": [
                            {
                                "event_id": ids[j % len(ids)],
                                "type": "opened",
                                "source_id": f"{load.tag}-{j}",
                            }
                            for j in js
                        ]
                    }
                t0 = time.perf_counter()
                r = await client.post(path, json=body, headers=headers)
                lat.append((time.perf_counter() - t0) * 1e3)
                if load.kind == "batch" and r.status_code == 200:
                    counted += int(r.json()["n_stored"])
                elif load.kind != "batch" and r.status_code == 201:
                    counted += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(load.connections)))
        elapsed = time.perf_counter() - start
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if lat else (0.0, 0.0)
    return len(lat), errors, elapsed, p50, p99, counted


def _loadgen(args: tuple[Any, ...], out: Any) -> None:
    out.send(asyncio.run(_drive(*args)))
    out.close()


def drive_python(
    base: str, load: Load, seconds: float
) -> tuple[int, int, float, float, float, int]:
    """The Python/httpx load generator in its own process (so it does not share the
    GIL); the same results as :func:`drive_wrk`. Its own CPU caps the cheaper
    routes on a 2-core machine."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_loadgen, args=((base, load, seconds), send))
    proc.start()
    result: tuple[int, int, float, float, float, int] = recv.recv()
    proc.join()
    return result


def stored_with_tag(path: Path, tag: str) -> int:
    """Outcomes in the store whose source_id starts with ``tag-``."""
    con = sqlite3.connect(path)
    try:
        (n,) = con.execute(
            "SELECT COUNT(*) FROM outcomes WHERE source_id LIKE ?", (f"{tag}-%",)
        ).fetchone()
        return int(n)
    finally:
        con.close()


def http_rates(tmp: Path, args: argparse.Namespace, use_wrk: bool) -> dict[str, Any]:
    """The four routes in alternating rounds on one ``nba serve`` and the bare app."""
    from serve import group_cpu_seconds, start_bare
    from serving_testkit import KEYS, start_server, stop_server

    sub = tmp / "http"
    sub.mkdir()
    db = sub / "events.db"
    ids = seed_decisions(db, args.decisions)
    proc, base = start_server(
        sub,
        workers=args.workers,
        NBA_BENCH_ROUTES="true",
        NBA_STORE_PATH=str(db),
        NBA_STORE_SYNCHRONOUS="FULL",
        NBA_GROUP_COMMIT="false" if args.no_group_commit else "true",
        NBA_FAST_ROUTES="true" if args.fast_routes == "on" else "false",
    )
    procs = [proc]
    drive = drive_wrk if use_wrk else drive_python
    try:
        bare_proc, bare_base = start_bare(sub, args.workers)
        procs.append(bare_proc)
        routes: dict[str, tuple[str, int, Load]] = {
            BARE: (bare_base, bare_proc.pid, Load("single", KEYS["report"], ids, "bare")),
            NOOP: (base, proc.pid, Load("noop", KEYS["decide"], ids, "noop")),
            SINGLE: (base, proc.pid, Load("single", KEYS["report"], ids, "single")),
            BATCH: (
                base,
                proc.pid,
                Load(
                    "batch",
                    KEYS["report"],
                    ids,
                    "batch",
                    batch=args.batch_size,
                    connections=args.batch_connections,
                ),
            ),
        }
        stats = {name: RouteStats(name) for name in routes}
        acked = {SINGLE: 0, BATCH: 0}
        for rnd in range(-1, args.rounds):  # round -1 warms up and is not counted
            for name, (url, pgid, load) in routes.items():
                tag = f"{load.tag}{rnd + 1}"
                run = Load(load.kind, load.key, load.ids, tag, load.batch, load.connections)
                cpu0 = group_cpu_seconds(pgid)
                requests, errors, seconds, p50, p99, counted = drive(
                    url, run, 1.5 if rnd < 0 else args.seconds
                )
                cpu = group_cpu_seconds(pgid) - cpu0
                if name in acked:
                    acked[name] += counted
                if rnd < 0:
                    continue
                s = stats[name]
                s.requests += requests
                s.errors += errors
                s.seconds += seconds
                s.outcomes += counted
                s.cpu_seconds += cpu
                s.p50s.append(p50)
                s.p99s.append(p99)
    finally:
        for p in procs:
            stop_server(p)
    # every acknowledged outcome is in the store (wrk drops the answers to requests
    # in flight when its clock stops: the store may hold more than were counted)
    in_store = {
        name: sum(stored_with_tag(db, f"{routes[name][2].tag}{r}") for r in range(args.rounds + 1))
        for name in acked
    }
    return {"stats": stats, "acked": acked, "in_store": in_store}


def main(argv: list[str] | None = None) -> int:
    from wrk import add_loadgen_option

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store-outcomes", type=int, default=3000, help="per store-path run")
    ap.add_argument("--seconds", type=float, default=8.0, help="per HTTP route and round")
    ap.add_argument(
        "--two-process-seconds", type=float, default=8.0, help="store path, two processes"
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decisions", type=int, default=5000, help="decisions the HTTP runs report on")
    ap.add_argument("--batch-size", type=int, default=100, help="outcomes per batch request")
    ap.add_argument(
        "--batch-connections", type=int, default=4, help="batch requests in flight at once"
    )
    add_loadgen_option(ap)
    ap.add_argument(
        "--no-group-commit", action="store_true", help="serve with NBA_GROUP_COMMIT=false"
    )
    ap.add_argument(
        "--fast-routes",
        default="on",
        choices=["on", "off"],
        help="NBA_FAST_ROUTES of the service (off: the outcome route through FastAPI)",
    )
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-store", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-outcomes-"))
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores; load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f} (1, 5, 15 min); store synchronous=FULL"
    )
    missing = 0
    figures: list[Figure] = []
    if not args.skip_store:
        single, n1, miss1 = store_rate(tmp, args.store_outcomes, grouped=False)
        grouped, n2, miss2 = store_rate(tmp, args.store_outcomes, grouped=True)
        print()
        print(f"store write path, {CONCURRENCY} threads, {args.store_outcomes} outcomes each run:")
        print(f"  one transaction per outcome: {single:10.1f} outcomes/s  ({n1} acknowledged)")
        print(f"  group commit:                {grouped:10.1f} outcomes/s  ({n2} acknowledged)")
        print(f"  ratio: {grouped / single:.1f}x; acknowledged but missing: {miss1 + miss2}")
        missing += miss1 + miss2
        two = two_process_rate(tmp, args.two_process_seconds)
        print(
            f"  group commit, two processes (8 threads each, {args.two_process_seconds:.0f} s): "
            f"{two.outcomes_per_s:10.1f} outcomes/s, {two.commits_per_s:.0f} commits/s, "
            f"{two.mean_group:.1f} outcomes per commit; commit ms p50 {two.commit_ms(0.5):.1f} "
            f"p90 {two.commit_ms(0.9):.1f} p99 {two.commit_ms(0.99):.1f} "
            f"max {two.commit_ms(1.0):.1f}; acknowledged {two.acknowledged}, "
            f"missing {two.missing}"
        )
        missing += two.missing
        figures.append(
            Figure(f"store write path, group commit, {CONCURRENCY} threads", grouped,
                   "outcomes/s", single, "one transaction per outcome",
                   ratio_name="× one per transaction", goal="≥ 2,000 outcomes/s",
                   met=grouped >= 2000)
        )  # fmt: skip
    if not args.skip_http:
        gone, http_figures = report_http(tmp, args)
        missing += gone
        figures += http_figures
    print(f"load average at the end {os.getloadavg()[0]:.1f}; data in {tmp}")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    figures.append(
        Figure("acknowledged outcomes missing from the store", float(missing), "outcomes",
               goal="none lost", met=missing == 0)
    )  # fmt: skip
    publish("bench/outcomes.py", figures)
    return 0 if missing == 0 else 1


def report_http(tmp: Path, args: argparse.Namespace) -> tuple[int, list[Figure]]:
    """Run and print the HTTP part; returns the number of acknowledged outcomes
    missing from the store and the part's headline figures."""
    from wrk import wants_wrk

    from serving.cli import server_options

    use_wrk = wants_wrk(args.loadgen)
    options = server_options()
    print()
    print(
        f"HTTP: nba serve --workers {args.workers} "
        f"(group commit {'off' if args.no_group_commit else 'on'}, fast routes "
        f"{args.fast_routes}) and the bare FastAPI app, "
        f"uvicorn http={options['http']} loop={options['loop']}; load generator "
        + (
            f"wrk (1 thread, {CONCURRENCY} connections; batch {args.batch_connections})"
            if use_wrk
            else "Python/httpx in its own process (wrk not found: its own CPU caps the "
            "cheaper routes)"
        )
        + f"; {args.rounds} rounds of {args.seconds:.0f} s per route"
    )
    r = http_rates(tmp, args, bool(use_wrk))
    stats: dict[str, RouteStats] = r["stats"]
    print(
        f"  {'route':<32}{'requests':>9}{'errors':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/req':>11}{'outcomes/s':>11}{'CPU ms/outcome':>15}"
    )
    for s in stats.values():
        print(
            f"  {s.route:<32}{s.requests:>9}{s.errors:>7}{s.rps:>9.1f}{s.p50_ms:>9.1f}"
            f"{s.p99_ms:>9.1f}{s.cpu_ms_per_request:>11.2f}"
            + (
                f"{s.outcomes_per_s:>11.1f}{s.cpu_ms_per_outcome:>15.2f}"
                if s.route in (SINGLE, BATCH)
                else ""
            )
        )
    single, batch, bare, noop = stats[SINGLE], stats[BATCH], stats[BARE], stats[NOOP]

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    print(
        f"  single outcomes / bare no-op req/s: {ratio(single.rps, bare.rps):.2f}; "
        f"/ our no-op: {ratio(single.rps, noop.rps):.2f}; "
        f"CPU per request single / bare: "
        f"{ratio(single.cpu_ms_per_request, bare.cpu_ms_per_request):.1f}x"
    )
    print(
        f"  batches of {args.batch_size}: {batch.outcomes_per_s:.1f} outcomes/s = "
        f"{ratio(batch.outcomes_per_s, single.outcomes_per_s):.1f}x the single route; "
        f"CPU per outcome {ratio(batch.cpu_ms_per_outcome, single.cpu_ms_per_outcome):.2f}x"
    )
    goal = 2000.0
    print(
        f"  goal >= {goal:,.0f} outcomes/s: single route "
        f"{'met' if single.outcomes_per_s >= goal else 'NOT met'} "
        f"({single.outcomes_per_s:.0f}/s); batch route "
        f"{'met' if batch.outcomes_per_s >= goal else 'NOT met'} ({batch.outcomes_per_s:.0f}/s)"
    )
    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    figures = [
        Figure(f"`POST /v1/events/{{event_id}}/outcomes`, {workers}, {CONCURRENCY} clients",
               single.outcomes_per_s, "outcomes/s", bare.rps, "bare FastAPI no-op route, req/s",
               ratio_name="× bare", goal=f"≥ {goal:,.0f} outcomes/s",
               met=single.outcomes_per_s >= goal),
        Figure(f"`POST /v1/outcomes:batch`, {args.batch_size} a request, {workers}",
               batch.outcomes_per_s, "outcomes/s", single.outcomes_per_s, "single route",
               ratio_name="× single", goal=f"≥ {goal:,.0f} outcomes/s",
               met=batch.outcomes_per_s >= goal),
    ]  # fmt: skip
    missing = 0
    for name in (SINGLE, BATCH):
        acked, stored = r["acked"][name], r["in_store"][name]
        gone = max(0, acked - stored)
        missing += gone
        print(
            f"  {name}: acknowledged {acked} (warm-up included), in the store {stored}, "
            f"acknowledged but missing from the store {gone}"
            + (f" ({stored - acked} stored while in flight at the end)" if stored > acked else "")
        )
    return missing, figures


if __name__ == "__main__":
    raise SystemExit(main())
