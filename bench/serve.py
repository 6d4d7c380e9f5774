"""Benchmark of the decision service: HTTP decisions against a no-op route of the
same shape (inside our app, and in a bare FastAPI app), and batch decisions
against single decisions, in one run.

It starts ``nba serve`` (real uvicorn workers on 127.0.0.1) with the hidden
benchmark route switched on (``NBA_BENCH_ROUTES=true``) and a trained VW model:
the one behind ``--model`` if given, else ``models:/nba@champion`` if the
registry has it, else a small VW model trained here on synthetic decisions (so
the model cost is real). A separate load-generator process drives
``POST /v1/decisions`` and ``POST /v1/_bench/noop`` -- which validates the same
body and key but touches neither store nor model -- with 16 concurrent
clients (asyncio + httpx), alternating rounds so drift hits both alike; then it
posts ``/v1/decisions:batch`` requests, two in flight per worker by default
(``--batch-in-flight``): the single route is measured at saturation (16
clients), and with one batch in flight per worker the worker would sit idle
while the load generator reads each answer and sends the next request. It
prints requests/s, p50 and p99 for both routes and their ratios, and batch
decisions/s against single decisions/s.

The no-op inside our app pays for our middleware, key check and metrics, which
hides part of the gap. So the same load also goes, in the same alternating
rounds, to ``bench/bare_app.py``: a bare FastAPI app (no middleware, no key)
with one no-op ``POST /v1/decisions`` of the same request and response shape,
under uvicorn with the same number of workers and the same HTTP parser and
event loop as ``nba serve`` (httptools and uvloop when installed, see
:func:`serving.cli.server_options`). Goal for the decision route
against it: >= 0.5x its requests/s and p99 <= 2x its p99.
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
from record import Figure, publish

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "serving"))
sys.path.insert(0, str(ROOT))

CONCURRENCY = 16
BARE, NOOP, DECIDE = "bare FastAPI no-op", "/v1/_bench/noop", "/v1/decisions"
CHANNELS = ["email"]
K = 3


def _group_cpu(pgid: int, main_threads_only: bool) -> float:
    """CPU seconds (user + system) of the live processes of process group ``pgid``,
    whole or of their main threads only; NaN where ``/proc`` is missing."""
    if not os.path.isdir("/proc"):
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # after the command name: state, ppid, pgrp, ... utime (12th), stime (13th)
            if int(fields[2]) != pgid:
                continue
            if main_threads_only:
                with open(f"/proc/{entry}/task/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, seconds) used so far by the live processes of
    process group ``pgid`` (a server started in its own session: uvicorn and its
    workers); NaN where ``/proc`` is missing.

    >>> group_cpu_seconds(os.getpgid(0)) > 0 or not os.path.isdir("/proc")
    True
    """
    return _group_cpu(pgid, main_threads_only=False)


def group_loop_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, seconds) of the main threads of the live processes
    of process group ``pgid``: in a uvicorn worker, the event loop's thread (the
    rest of a worker's CPU is its thread pools' and its group committers'); NaN
    where ``/proc`` is missing.

    >>> 0 <= group_loop_cpu_seconds(os.getpgid(0)) or not os.path.isdir("/proc")
    True
    """
    return _group_cpu(pgid, main_threads_only=True)


def thread_role(comm: str, is_main: bool) -> str:
    """What a server thread is, by its kernel name (``serving.threads``): the event
    loop (a process's main thread), or the name without its pool index.

    >>> thread_role("python", True), thread_role("nba-decide_1", False)
    ('event loop', 'nba-decide')
    >>> thread_role("nba-group-commi", False), thread_role("python", False)
    ('nba-group-commi', 'other (unnamed)')
    """
    if is_main:
        return "event loop"
    base = comm.rstrip("0123456789")
    base = base[:-1] if base.endswith("_") else comm
    return "other (unnamed)" if base == "python" else base


def group_thread_cpu(pgid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the live processes of process group ``pgid``
    by thread role (:func:`thread_role`); empty where ``/proc`` is missing."""
    if not os.path.isdir("/proc"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            for tid in os.listdir(f"/proc/{entry}/task"):
                with open(f"/proc/{entry}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{entry}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                role = thread_role(comm, tid == entry)
                out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
    return out


@dataclass(frozen=True)
class RunStats:
    route: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: the server's CPU time over the measured rounds (all its processes)
    cpu_seconds: float = float("nan")
    #: of which its processes' main threads (the event loops)
    loop_cpu_seconds: float = float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return 1e3 * self.cpu_seconds / self.requests if self.requests else float("nan")

    @property
    def loop_cpu_ms_per_request(self) -> float:
        return 1e3 * self.loop_cpu_seconds / self.requests if self.requests else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def of(
        cls,
        route: str,
        runs: list[Any],
        cpu_seconds: float = float("nan"),
        loop_cpu_seconds: float = float("nan"),
    ) -> RunStats:
        """Pool the rounds of one route: requests and seconds add up; percentiles
        come from all latencies (Python load generator) or, with wrk, which reports
        percentiles only, are the mean of the rounds' percentiles."""
        lat = [x for r in runs for x in r[3]]
        if lat:
            p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
        else:
            p50 = float(np.mean([r[5][0] for r in runs]))
            p99 = float(np.mean([r[5][1] for r in runs]))
        return cls(
            route,
            sum(r[0] for r in runs),
            sum(r[1] for r in runs),
            sum(r[2] for r in runs),
            p50,
            p99,
            cpu_seconds,
            loop_cpu_seconds,
        )


# ------------------------------------------------------------------------- wrk
_WRK_SCRIPT = """
local ids = {%(ids)s}
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  local h = ids[math.random(#ids)]
  return wrk.format(nil, "%(path)s", nil, '{"hcp_id":"' .. h .. '","channels":%(channels)s,'
    .. '"k":%(k)d,"context":{"requester":"bench"}}')
end
created = 0
response = function(status, headers, body)
  if status == 201 then created = created + 1 end
end
"""


def drive_wrk(
    base: str, path: str, key: str, hcp_ids: list[str], seconds: float, seed: int
) -> tuple[int, int, float, list[float], list[str], tuple[float, float], int]:
    """Drive ``path`` with wrk (one thread, :data:`CONCURRENCY` connections) for
    ``seconds``; each request names a random HCP. Returns requests, non-2xx
    responses, seconds, no latencies, no event ids, wrk's (p50, p99) in ms, and
    the number of 201 (stored) answers."""
    import json

    from wrk import run_wrk

    script = _WRK_SCRIPT % {
        "ids": ",".join(f'"{h}"' for h in hcp_ids),
        "seed": seed,
        "key": key,
        "path": path,
        "channels": json.dumps(CHANNELS),
        "k": K,
    }
    r = run_wrk(script, base, CONCURRENCY, seconds, "created")
    return r.requests, r.errors, r.seconds, [], [], (r.p50_ms, r.p99_ms), r.counted


# --------------------------------------------------------------- load generator
async def _drive(
    base: str, path: str, key: str, hcp_ids: list[str], seconds: float, seed: int
) -> tuple[int, int, float, list[float], list[str], tuple[float, float], int]:
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
    nan = float("nan")
    return len(lat), errors, elapsed, lat, events, (nan, nan), len(events)


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


# ------------------------------------------------------------- the bare app
def start_bare(tmp: Path, workers: int) -> tuple[Any, str]:
    """Start ``bench/bare_app.py`` under uvicorn on a free loopback port; wait until
    it answers. Returns (process, base URL)."""
    from serving_testkit import start_process

    from serving.cli import server_options

    options = server_options()  # the same parser and loop as `nba serve`
    return start_process(
        tmp,
        "bare",
        lambda port: [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--app-dir",
            str(ROOT / "bench"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
            "--http",
            options["http"],
            "--loop",
            options["loop"],
        ],
        wait_s=60,
    )


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


def import_hcps(base: str, hcp_ids: list[str], seed: int) -> None:
    """Import ``hcp_ids`` into the service at ``base`` (``POST /v1/hcps:import``): US
    cardiologists consenting to email, portal and webinar, with seeded deciles and
    digital affinities."""
    import httpx
    from serving_testkit import auth

    rng = np.random.default_rng(seed)
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


def main(argv: list[str] | None = None) -> int:
    from wrk import add_loadgen_option, wants_wrk

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0, help="per route per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hcps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument(
        "--batch-in-flight",
        type=int,
        default=None,
        help="batch requests in flight at once (default: two per worker)",
    )
    ap.add_argument("--model", default=None, help="model URI or path (default: see docstring)")
    add_loadgen_option(ap)
    ap.add_argument(
        "--synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="store fsync mode (FULL, the service default, fsyncs every commit)",
    )
    ap.add_argument(
        "--fast-routes",
        default="on",
        choices=["on", "off"],
        help="NBA_FAST_ROUTES of the service (off: the decision route through FastAPI)",
    )
    args = ap.parse_args(argv)
    if args.batch_in_flight is None:
        args.batch_in_flight = 2 * args.workers
    if args.batch_in_flight < 1:
        ap.error(f"--batch-in-flight must be at least 1, got {args.batch_in_flight}")

    import httpx
    from serving_testkit import KEYS, auth, start_server, stop_server

    from serving.store import EventStore

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-serve-"))
    model = bench_model(tmp, args.model)
    print(f"machine: {os.cpu_count()} cores; workers: {args.workers}; clients: {CONCURRENCY}")
    print(f"model: {model}; store synchronous={args.synchronous}; fast routes: {args.fast_routes}")
    from serving.cli import server_options

    options = server_options()
    print(
        f"server (service and bare app alike): uvicorn http={options['http']} "
        f"loop={options['loop']}"
    )
    bare_procs: list[Any] = []
    use_wrk = wants_wrk(args.loadgen)
    load = drive_wrk if use_wrk else drive
    print(
        "load generator: "
        + (
            "wrk (1 thread)"
            if use_wrk
            else "Python/httpx in its own process (wrk not found: its own CPU caps the "
            "no-op references more than the decision route)"
        )
    )
    proc, base = start_server(
        tmp,
        workers=args.workers,
        NBA_MODEL_URI=model,
        NBA_BENCH_ROUTES="true",
        NBA_STORE_PATH=str(tmp / "events.db"),
        NBA_STORE_SYNCHRONOUS=args.synchronous,
        NBA_FAST_ROUTES="true" if args.fast_routes == "on" else "false",
    )
    try:
        hcp_ids = [f"B{i:06d}" for i in range(args.hcps)]
        import_hcps(base, hcp_ids, seed=1)
        with httpx.Client(base_url=base, timeout=120) as c:
            served = c.get("/v1/models/current", headers=auth("decide")).json()
        print(f"serving: {served['model_version']} (baseline: {served['is_baseline']})")
        store = EventStore(tmp / "events.db")
        before = store.counts()["decisions"]
        bare_proc, bare_base = start_bare(tmp, args.workers)
        bare_procs.append(bare_proc)

        # warm-up every route, then alternate measured rounds
        routes = {BARE: (bare_base, "/v1/decisions"), NOOP: (base, NOOP), DECIDE: (base, DECIDE)}
        # CPU per request: the machine is shared, so requests/s and latencies move
        # with everybody's load; the server's own CPU time per request much less
        groups = {BARE: bare_proc.pid, NOOP: proc.pid, DECIDE: proc.pid}
        cpu: dict[str, float] = {name: 0.0 for name in routes}
        loop_cpu: dict[str, float] = {name: 0.0 for name in routes}
        acked_single: list[str] = []  # event ids (Python load generator only)
        acked_count = 0  # 2xx decisions, whichever load generator
        decide_roles: dict[str, float] = {}  # the decisions' CPU by server thread role
        results: dict[str, list[Any]] = {name: [] for name in routes}
        for rnd in range(-1, args.rounds):  # round -1 warms up and is not counted
            for name, (url, path) in routes.items():
                seconds = 1.5 if rnd < 0 else args.seconds
                cpu0 = group_cpu_seconds(groups[name])
                loop0 = group_loop_cpu_seconds(groups[name])
                roles0 = group_thread_cpu(groups[name]) if name == DECIDE else {}
                res = load(url, path, KEYS["decide"], hcp_ids, seconds, 100 + rnd)
                if rnd >= 0:
                    cpu[name] += group_cpu_seconds(groups[name]) - cpu0
                    loop_cpu[name] += group_loop_cpu_seconds(groups[name]) - loop0
                    if name == DECIDE:
                        for role, sec in group_thread_cpu(groups[name]).items():
                            decide_roles[role] = (
                                decide_roles.get(role, 0.0) + sec - roles0.get(role, 0.0)
                            )
                if name == DECIDE:  # only the service's decisions are stored
                    acked_single.extend(res[4])
                    acked_count += res[6]
                if rnd >= 0:
                    results[name].append(res)
        stats = {
            name: RunStats.of(name, runs, cpu[name], loop_cpu[name])
            for name, runs in results.items()
        }

        # batch: batch-size HCPs per request, --batch-in-flight requests at once
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

        batch_cpu0 = group_cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.batch_in_flight) as pool:
            for out in pool.map(one_batch, range(args.batches)):
                batch_decisions += int(out["n_decisions"])
                batch_events += [d["event_id"] for d in out["decisions"] if d["event_id"]]
        batch_seconds = time.perf_counter() - t0
        batch_cpu = group_cpu_seconds(proc.pid) - batch_cpu0
    finally:
        stop_server(proc)
        for p in bare_procs:
            stop_server(p)
    after = store.counts()["decisions"]
    acked = [*acked_single, *batch_events]
    missing = sum(1 for e in acked if store.get_decision(e) is None)
    n_acked = acked_count + len(batch_events)

    dec, noop, bare = stats[DECIDE], stats[NOOP], stats[BARE]
    print()
    print(
        f"{'route':<28}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/req':>12}"
    )
    for s in (bare, noop, dec):
        print(
            f"{s.route:<28}{s.requests:>10}{s.errors:>8}{s.rps:>10.1f}"
            f"{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.cpu_ms_per_request:>12.2f}"
        )
    print()
    print(f"{'server CPU ms per request':<28}{'event loop':>12}{'other threads':>15}")
    for s in (bare, noop, dec):
        loop = s.loop_cpu_ms_per_request
        print(f"{s.route:<28}{loop:>12.2f}{s.cpu_ms_per_request - loop:>15.2f}")
    if decide_roles and dec.requests:
        print()
        print(f"{'/v1/decisions CPU by thread':<28}{'ms/request':>12}")
        for role, sec in sorted(decide_roles.items(), key=lambda kv: -kv[1]):
            if sec > 0:
                print(f"{role:<28}{1e3 * sec / dec.requests:>12.3f}")
    rps_ratio = dec.rps / noop.rps if noop.rps else float("nan")
    p99_ratio = dec.p99_ms / noop.p99_ms if noop.requests else float("nan")
    bare_rps = dec.rps / bare.rps if bare.rps else float("nan")
    bare_p99 = dec.p99_ms / bare.p99_ms if bare.requests else float("nan")
    batch_rate = batch_decisions / batch_seconds if batch_seconds > 0 else 0.0
    batch_ratio = batch_rate / dec.rps if dec.rps else float("nan")
    print()
    print(f"decisions/noop requests/s ratio: {rps_ratio:.2f}  (target >= 0.6)")
    print(f"decisions/noop p99 ratio:        {p99_ratio:.2f}  (target <= 2.0)")
    print(f"decisions/bare FastAPI requests/s ratio: {bare_rps:.2f}  (goal >= 0.5)")
    print(f"decisions/bare FastAPI p99 ratio:        {bare_p99:.2f}  (goal <= 2.0)")
    print(
        f"server CPU per request, decisions/bare FastAPI: "
        f"{dec.cpu_ms_per_request / bare.cpu_ms_per_request:.2f}x  "
        "(what bounds the requests/s ratio when the server is CPU-bound)"
    )
    print(
        f"batch: {batch_decisions} decisions ({args.batch_size} a request, "
        f"{args.batch_in_flight} in flight) in {batch_seconds:.2f} s = {batch_rate:.1f}/s; "
        f"vs single {dec.rps:.1f}/s: {batch_ratio:.2f}x  (target >= 5)"
    )
    if batch_decisions and batch_cpu > 0:
        # the server's CPU, which the machine's load moves much less than decisions/s
        print(
            f"batch server CPU: {1e3 * batch_cpu / batch_decisions:.3f} ms a decision "
            f"({batch_decisions / batch_cpu:.0f} decisions per CPU second); single "
            f"{dec.cpu_ms_per_request:.3f} ms a decision: "
            f"{dec.cpu_ms_per_request * batch_decisions / (1e3 * batch_cpu):.2f}x per CPU second"
        )
    logged = after - before
    print(
        f"logged decisions: {logged} new rows in the store; acknowledged (201): "
        f"{acked_count} single + {len(batch_events)} batch = {n_acked}; "
        f"acknowledged but missing from the store: {max(0, n_acked - logged)}"
        f" (by count), {missing} (by event id, {len(acked)} ids known)"
    )
    if logged > n_acked:  # wrk stops its clock with requests in flight and drops them
        print(
            f"stored but not counted (in flight when the load generator stopped): "
            f"{logged - n_acked}"
        )
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}; data in {tmp}")
    route = f"`POST /v1/decisions`, {args.workers} worker{'s' if args.workers > 1 else ''}"
    publish(
        "bench/serve.py",
        [
            Figure(f"{route}, 16 clients", dec.rps, "req/s", bare.rps,
                   "bare FastAPI no-op route", ratio_name="× bare", goal="≥ 0.5× bare",
                   met=bare_rps >= 0.5),
            Figure(f"{route}, p99 latency", dec.p99_ms, "ms", bare.p99_ms,
                   "bare FastAPI no-op route", ratio_name="× bare", goal="≤ 2× bare",
                   met=bare_p99 <= 2.0),
            Figure(f"{route}, server CPU per decision", dec.cpu_ms_per_request, "ms",
                   bare.cpu_ms_per_request, "bare route, per request", ratio_name="× bare"),
            *(
                [Figure(f"`POST /v1/decisions:batch`, {args.batch_size} HCPs a request",
                        batch_rate, "decisions/s", dec.rps, "single route",
                        ratio_name="× single", goal="≥ 5× single", met=batch_ratio >= 5.0)]
                if batch_decisions and dec.rps else []
            ),
            Figure("acknowledged decisions missing from the store", float(missing),
                   "decisions", goal="none lost", met=missing == 0 and logged >= n_acked),
        ],
    )  # fmt: skip
    return 0 if logged >= n_acked and missing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
