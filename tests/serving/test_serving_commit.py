"""Group commit: concurrent decisions share transactions, every one is committed
before its caller returns, and only a duplicate's caller gets the error."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nba.domain import Decision
from serving.commit import GroupCommitter
from serving.store import DuplicateEventError, EventStore


def decision(eid: str, deferred: bool = False) -> Decision:
    return Decision(
        eid,
        datetime(2026, 1, 5, tzinfo=UTC),
        "h1",
        "r",
        ("email",),
        "{}",
        "cat",
        ("a@email", "b@email"),
        (0.25, 0.75),
        1,
        "b@email",
        0.75,
        "uniform",
        "v1",
        activated=not deferred,
    )


def test_concurrent_adds_are_all_committed_and_duplicates_isolated(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db", synchronous="NORMAL")
    gc = GroupCommitter(store)
    errors: dict[str, BaseException] = {}
    done: list[str] = []
    lock = threading.Lock()
    ids = [f"E{i:04d}" for i in range(200)] + ["E0007"]  # one duplicate

    def worker(eids: list[str]) -> None:
        for e in eids:
            try:
                deferred = e.endswith("5")
                gc.add(decision(e, deferred), deferred=deferred)
                with lock:
                    done.append(e)
            except DuplicateEventError as exc:
                with lock:
                    errors[e] = exc

    threads = [threading.Thread(target=worker, args=(ids[k::16],)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.close()
    assert list(errors) == ["E0007"]
    assert len(done) == 200
    assert store.counts()["decisions"] == 200
    assert store.counts()["pending_activation"] == 20
    for e in done:  # acknowledged means stored
        assert store.get_decision(e) is not None


def test_batch_is_all_or_none(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    gc = GroupCommitter(store)
    gc.add(decision("X1"))
    with pytest.raises(DuplicateEventError):
        gc.add_many([decision("X2"), decision("X1")])
    assert store.get_decision("X2") is None
    gc.close()
    with pytest.raises(RuntimeError, match="closed"):
        gc.add(decision("X3"))
