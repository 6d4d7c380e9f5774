"""Several processes share one store and lose nothing; a SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving_testkit import sample_decision

from nba.domain import Decision, Outcome, Touch
from serving.store import EventStore

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _decision(event_id: str, i: int) -> Decision:
    return sample_decision(event_id, i, T0)


def _writer(path: str, tag: str, n: int, start: mp.synchronize.Event) -> None:
    store = EventStore(path, busy_timeout_s=60)
    start.wait(30)
    for i in range(n):
        eid = f"{tag}-{i:04d}"
        store.add_decision(_decision(eid, i))
        store.add_outcome(Outcome(eid, T0 + timedelta(seconds=i + 1), "opened", source_id=tag))
        store.add_touch(Touch(f"h{i % 7}", T0 + timedelta(seconds=i), "email", tag))
    store.add_decisions([_decision(f"{tag}-batch-{i}", i) for i in range(50)])


def test_two_writer_processes_lose_nothing(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    path = str(store_at())
    EventStore(path)  # create the schema once, as the service does at start
    ctx = mp.get_context("fork")
    start = ctx.Event()
    n = 150
    procs = [ctx.Process(target=_writer, args=(path, tag, n, start)) for tag in ("A", "B")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    c = EventStore(path).counts()
    assert (c["decisions"], c["outcomes"], c["touches"]) == (2 * (n + 50), 2 * n, 2 * n)


_KILLED_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from nba.domain import Decision, Outcome
from serving.store import EventStore
store = EventStore(sys.argv[1])
t0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
i = 0
while True:
    eid = f"K-{i:06d}"
    store.add_decision(Decision(eid, t0, "h1", "r", ("email",), "{}", "v1", ("a@email",),
                                (1.0,), 0, "a@email", 1.0, "uniform", "none"))
    print("D", eid, flush=True)
    store.add_outcome(Outcome(eid, t0 + timedelta(hours=1), "opened"))
    print("O", eid, flush=True)
    i += 1
"""


def test_sigkill_loses_no_acknowledged_write(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    path = store_at()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked: dict[str, set[str]] = {"D": set(), "O": set()}
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            kind, eid = line.split()
            acked[kind].add(eid)
            if len(acked["O"]) >= 300:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # whatever was printed after our last read is acknowledged too; read it
    rest = proc.stdout.read()
    for line in rest.splitlines():
        if line.strip():
            kind, eid = line.split()
            acked[kind].add(eid)
    store = EventStore(path)
    assert all(store.get_decision(e) is not None for e in acked["D"])
    assert all(len(store.outcomes_of(e)) == 1 for e in acked["O"])
    assert store.counts()["decisions"] >= len(acked["D"]) >= 300
