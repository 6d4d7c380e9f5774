"""The service's threads carry their names to the kernel (serving/threads.py), so
per-thread CPU clocks in /proc can tell them apart."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_serving_commit import decision

from serving import threads
from serving.api import fast
from serving.commit import GroupCommitter
from serving.store import EventStore

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc names")


def _comm(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


@linux_only
def test_a_pool_thread_and_the_group_committer_are_named(tmp_path: Path) -> None:
    with fast.open_decide_executor() as pool:
        tid = pool.submit(threading.get_native_id).result()
        assert _comm(tid) == "nba-decide_0"
    store = EventStore(tmp_path / "e.db", synchronous="NORMAL")
    gc = GroupCommitter(store)
    try:
        gc.add(decision("T1"))  # committed: the writer has run, so named itself
        native = gc._thread.native_id
        assert native is not None and _comm(native) == "nba-group-commi"
    finally:
        gc.close()


@linux_only
def test_names_are_cut_to_what_linux_keeps() -> None:
    def named() -> tuple[bool, str]:
        done = threads.name_native_thread("a-very-long-thread-name")
        return done, _comm(threading.get_native_id())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(named).result() == (True, "a-very-long-thr")


def test_naming_never_raises_without_prctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_prctl", None)
    assert threads.name_native_thread("x") is False
