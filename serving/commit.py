"""Group commit of decisions: concurrent requests share one transaction (one fsync).

With ``synchronous=FULL`` every SQLite commit waits for an fsync, which costs more
than the rest of a decision. :class:`GroupCommitter` has one writer thread per
worker process: request threads hand their decision over and wait; the writer
takes everything waiting, stores it with one ``add_decisions`` transaction, and
only then releases the waiting requests. Each request is still answered only
after its decision is committed -- durability is unchanged, the number of fsyncs
under load drops.

A duplicate ``event_id`` fails the shared transaction as a whole; the writer
then stores the group one by one, so only the duplicate's request gets the
error.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from nba.domain import Decision
>>> from serving.store import EventStore
>>> store = EventStore(tempfile.mkdtemp() + "/e.db")
>>> gc = GroupCommitter(store)
>>> d = Decision("E1", datetime(2026, 1, 5, tzinfo=UTC), "h1", "r", ("email",), "{}", "c",
...              ("a@email",), (1.0,), 0, "a@email", 1.0, "uniform", "v")
>>> gc.add(d)
>>> store.get_decision("E1").model_version
'v'
>>> gc.close()
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from nba.domain import Decision
from serving.store import DuplicateEventError, EventStore
from serving.threads import name_native_thread

log = logging.getLogger("nba.serving.commit")


class _Waiting(Protocol):
    """What a group writer's item has: the future its request thread waits on."""

    done: Future[Any]


ItemT = TypeVar("ItemT", bound=_Waiting)

MAX_GROUP = 512


@dataclass
class _Item:
    decisions: list[Decision]
    deferred: bool
    done: Future[None] = field(default_factory=Future)


class GroupWriter(Generic[ItemT]):
    """One writer thread that takes every item waiting and hands them to
    :meth:`_commit` together; the request threads wait on their item's future.

    Subclasses say how big an item is (:meth:`_size`, for ``max_group``) and how a
    group is stored (:meth:`_commit`, which must settle every item's future).

    Parameters
    ----------
    store : EventStore
        Closed when the writer thread ends.
    max_group : int
        Most units (by :meth:`_size`) per shared transaction; a larger item goes alone.
    name : str
        The writer thread's name.
    """

    def __init__(self, store: EventStore, max_group: int, name: str) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, got {max_group}")
        self.store = store
        self.max_group = max_group
        self._pending: list[ItemT] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _submit(self, item: ItemT, what: str) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {what} is closed")
            self._pending.append(item)
            self._cond.notify()

    def close(self) -> None:
        """Commit what is waiting, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _size(self, item: ItemT) -> int:
        return 1

    def _commit(self, items: list[ItemT]) -> None:
        raise NotImplementedError

    def _wait(self) -> bool:
        """Wait until an item is waiting (True) or the writer is closed with none (False)."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            return bool(self._pending)

    def _take(self) -> list[ItemT]:
        """The items waiting now, oldest first, up to ``max_group`` units."""
        with self._cond:
            group: list[ItemT] = []
            n = 0
            while self._pending and (
                not group or n + self._size(self._pending[0]) <= self.max_group
            ):
                item = self._pending.pop(0)
                group.append(item)
                n += self._size(item)
            return group

    def _run(self) -> None:
        name_native_thread()  # per-thread CPU clocks can name the writer
        try:
            while self._wait():
                # the group is taken once this process's turn to write has come
                # (EventStore.writer_turn): what arrived while another process was
                # writing joins it, rather than waiting for the next turn
                group: list[ItemT] | None = None
                try:
                    with self.store.writer_turn():
                        group = self._take()
                        self._commit(group)
                except Exception as exc:  # the turn itself failed (e.g. its lock file)
                    log.error("%s: no turn to write: %s", self._thread.name, exc)
                    for item in group if group is not None else self._take():
                        if not item.done.done():
                            item.done.set_exception(exc)
        finally:
            self.store.close()


class GroupCommitter(GroupWriter[_Item]):
    """One writer thread that commits waiting decisions together.

    Parameters
    ----------
    store : EventStore
    max_group : int
        Most decisions per shared transaction.
    """

    def __init__(self, store: EventStore, max_group: int = MAX_GROUP) -> None:
        super().__init__(store, max_group, "nba-group-commit")

    def add(self, decision: Decision, deferred: bool = False) -> None:
        """Store one decision; returns once it is committed.

        Raises
        ------
        DuplicateEventError
            Its ``event_id`` is already stored.
        """
        self.add_many([decision], deferred)

    def add_many(self, decisions: list[Decision], deferred: bool = False) -> None:
        """Store decisions all-or-none (a batch request); returns once committed."""
        self.submit_many(decisions, deferred).result()

    def submit_many(self, decisions: list[Decision], deferred: bool = False) -> Future[None]:
        """Hand decisions over to be stored all-or-none, without waiting.

        The future is settled once the group holding them is committed: its result
        None, or the error (:class:`~serving.store.DuplicateEventError` when an
        ``event_id`` is already stored). It cannot be cancelled: once handed over,
        the decisions are written whoever still waits for them (an event loop
        awaiting it through :func:`asyncio.wrap_future` may be cancelled alone).
        """
        item = _Item(list(decisions), deferred)
        item.done.set_running_or_notify_cancel()  # Future.cancel() now refuses
        self._submit(item, "group committer")
        return item.done

    # ------------------------------------------------------------- writer
    def _size(self, item: _Item) -> int:
        return len(item.decisions)

    def _commit(self, items: list[_Item]) -> None:
        for deferred in (False, True):
            same = [i for i in items if i.deferred == deferred]
            if same:
                self._commit_kind(same, deferred)

    def _commit_kind(self, items: list[_Item], deferred: bool) -> None:
        try:
            self.store.add_decisions([d for i in items for d in i.decisions], deferred=deferred)
        except DuplicateEventError as exc:
            if len(items) > 1:  # find who: store each request's decisions on its own
                for item in items:
                    self._commit_kind([item], deferred)
                return
            items[0].done.set_exception(exc)
            return
        except BaseException as exc:  # report to every waiting request, keep writing
            log.error("group commit failed: %s", type(exc).__name__)
            for item in items:
                item.done.set_exception(exc)
            return
        for item in items:
            item.done.set_result(None)
