"""Writers of one SQLite file take turns on its lock file (serving/writer_turn.py):
exclusive across processes and threads, re-entrant, released on errors and when
its holder is killed, reopened after fork; group committers of two processes
lose no acknowledged outcome and do not deadlock."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from serving_testkit import sample_decision

from nba.domain import Decision, Outcome
from serving.commit_outcomes import OutcomeCommitter
from serving.store import EventStore, OutcomeWrite
from serving.writer_turn import WriterTurn

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _decision(event_id: str, i: int) -> Decision:
    return sample_decision(event_id, i, T0)


def _free(lock: Path) -> bool:
    """Whether nobody holds the turn: a descriptor of our own gets the flock at once."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases it again if we got it
    return True


def _turn_of(store: EventStore) -> WriterTurn:
    turn = store.writer_turn()
    assert isinstance(turn, WriterTurn)  # the SQLite store's
    return turn


def test_store_writes_take_the_turn_on_the_lock_file_beside_the_database(
    tmp_path: Path,
) -> None:
    store = EventStore(tmp_path / "events.db")
    lock = tmp_path / "events.db-lock"
    assert lock.exists()  # the schema's write transaction took the turn
    seen: list[bool] = []

    def hook(con: Any, hcp_id: str, action_id: str) -> None:  # runs inside the write
        seen.append(_turn_of(store).held and not _free(lock))

    store.add_decision(_decision("E1", 0))
    assert store.add_outcome(Outcome("E1", T0 + timedelta(hours=1), "opened"), on_stored=hook)
    assert seen == [True]
    assert _free(lock) and not _turn_of(store).held


def test_turn_is_reentrant_and_released_by_the_outermost_exit(tmp_path: Path) -> None:
    lock = tmp_path / "db-lock"
    turn = WriterTurn(lock)
    with turn:
        with turn:
            assert turn.held and not _free(lock)
        assert turn.held and not _free(lock)  # the inner exit keeps it
    assert not turn.held and _free(lock)
    with pytest.raises(RuntimeError, match="released without being held"):
        turn.__exit__(None, None, None)


def test_turn_is_released_when_the_write_fails(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    store.add_decision(_decision("E1", 0))
    with pytest.raises(ValueError, match="hook failed"):

        def bad(con: Any, hcp_id: str, action_id: str) -> None:
            raise ValueError("hook failed")

        store.add_outcome(Outcome("E1", T0 + timedelta(hours=1), "opened"), on_stored=bad)
    assert _free(tmp_path / "events.db-lock") and not _turn_of(store).held
    assert store.outcomes_of("E1") == []  # rolled back
    assert store.add_outcome(Outcome("E1", T0 + timedelta(hours=1), "opened"))  # next one writes


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    turn = WriterTurn(tmp_path / "db-lock")
    inside = threading.Event()
    entered = threading.Event()

    def other() -> None:
        with turn:
            entered.set()

    with turn:
        t = threading.Thread(target=other)
        t.start()
        assert not entered.wait(0.3)  # the other thread waits for our turn to end
        inside.set()
    t.join(30)
    assert entered.is_set() and not t.is_alive()


_HOLDER = """
import sys, time
from serving.writer_turn import WriterTurn
turn = WriterTurn(sys.argv[1])
with turn:
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_releases_the_turn(tmp_path: Path) -> None:
    lock = tmp_path / "events.db-lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not _free(lock)  # another process holds it
        turn = WriterTurn(lock)
        got = threading.Event()

        def wait_for_turn() -> None:
            with turn:
                got.set()

        t = threading.Thread(target=wait_for_turn, daemon=True)
        t.start()
        assert not got.wait(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    t.join(30)
    assert got.is_set()  # the kernel released the killed holder's turn


def _child_takes_turn(turn: WriterTurn, out: Any) -> None:
    with turn:
        out.send("child has the turn")


def test_a_forked_child_opens_its_own_descriptor(tmp_path: Path) -> None:
    """A child forked while the parent holds the turn must wait for it: sharing the
    parent's descriptor would hand it the parent's flock."""
    turn = WriterTurn(tmp_path / "db-lock")
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    with turn:
        child = ctx.Process(target=_child_takes_turn, args=(turn, send))
        child.start()
        assert not recv.poll(0.5)  # the child waits while we hold the turn
    assert recv.poll(30) and recv.recv() == "child has the turn"
    child.join(30)
    assert child.exitcode == 0


def test_a_lock_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "events.db-lock").mkdir()  # a directory where the lock file goes
    with pytest.raises(OSError, match=r"writers' lock file .*events\.db-lock"):
        EventStore(tmp_path / "events.db")


def test_committer_takes_what_arrived_while_it_waited_for_the_turn(tmp_path: Path) -> None:
    """Outcomes that arrive while another writer holds the turn join one group."""
    store = EventStore(tmp_path / "events.db")
    store.add_decisions([_decision(f"E{i}", i) for i in range(5)])
    groups: list[int] = []
    add_outcomes = store.add_outcomes

    def counting(writes: Any) -> list[bool | Exception]:
        groups.append(len(writes))
        return add_outcomes(writes)

    store.add_outcomes = counting  # type: ignore[method-assign]
    oc = OutcomeCommitter(store)
    other = WriterTurn(tmp_path / "events.db-lock")  # another thread's descriptor
    results: list[bool] = []
    with other:
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(
                    oc.add(OutcomeWrite(Outcome(f"E{i}", T0 + timedelta(hours=1), "opened")))
                )
            )
            for i in range(5)
        ]
        for t in threads:
            t.start()
        for _ in range(3000):  # all five waiting: the committer holds none of them yet
            with oc._cond:
                if len(oc._pending) == 5:
                    break
            threading.Event().wait(0.01)
        assert len(oc._pending) == 5 and groups == []
    for t in threads:
        t.join(30)
    oc.close()
    assert groups == [5] and results == [True] * 5


def test_committer_fails_its_group_when_the_turn_fails_and_goes_on(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    store.add_decisions([_decision(f"E{i}", i) for i in range(2)])
    oc = OutcomeCommitter(store)
    real = store.writer_turn

    def broken() -> Any:
        raise OSError(5, "the disk went away")

    store.writer_turn = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="the disk went away"):
        oc.add(OutcomeWrite(Outcome("E0", T0 + timedelta(hours=1), "opened")))
    store.writer_turn = real  # type: ignore[method-assign]
    assert oc.add(OutcomeWrite(Outcome("E1", T0 + timedelta(hours=1), "opened")))
    oc.close()
    assert store.outcomes_of("E0") == [] and len(store.outcomes_of("E1")) == 1


def _committing_process(path: str, tag: str, n: int, start: Any, out: Any) -> None:
    store = EventStore(path, busy_timeout_s=60)
    oc = OutcomeCommitter(store)
    acked: list[str] = []
    lock = threading.Lock()
    start.wait(30)

    def worker(k: int) -> None:
        for i in range(k, n, 8):
            src = f"{tag}-{i}"
            o = Outcome(f"E{i % 50}", T0 + timedelta(hours=1), "opened", source_id=src)
            if oc.add(OutcomeWrite(o)):
                with lock:
                    acked.append(src)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    oc.close()
    out.send(acked)


def test_two_processes_group_committing_lose_no_acknowledged_outcome(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    EventStore(path).add_decisions([_decision(f"E{i}", i) for i in range(50)])
    ctx = mp.get_context("fork")
    start = ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    n = 400
    procs = [
        ctx.Process(target=_committing_process, args=(path, tag, n, start, send))
        for tag, (_, send) in zip("AB", pipes, strict=True)
    ]
    for p in procs:
        p.start()
    start.set()
    acked: list[str] = []
    for recv, _ in pipes:
        assert recv.poll(180), "a committing process did not finish (deadlock?)"
        acked += recv.recv()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(acked) == 2 * n
    con = sqlite3.connect(path)
    stored = {s for (s,) in con.execute("SELECT source_id FROM outcomes")}
    con.close()
    assert set(acked) <= stored and len(stored) == 2 * n
