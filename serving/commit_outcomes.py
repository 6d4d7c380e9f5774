"""Group commit of outcomes: concurrent reports share one transaction (one fsync).

The same idea as :mod:`serving.commit` for decisions. With ``synchronous=FULL``
each SQLite commit waits for an fsync, which costs more than the rest of an
outcome. :class:`OutcomeCommitter` has one writer thread per worker process:
request threads hand their outcome over and wait; the writer takes everything
waiting and stores it with one :meth:`~serving.store.EventStore.add_outcomes`
call, and only then releases the waiting requests. A request is still answered
only after its outcome is committed -- durability is unchanged.

Unlike decisions, outcomes of one group do not stand or fall together: each is
stored in its own savepoint, so a bad one (unknown event, action not offered,
an error in its trigger hook) gets its own error and the others are still
committed and acknowledged. A repeat of an outcome already stored (or earlier in
the same group) answers ``False``, as :meth:`~serving.store.EventStore.add_outcome`
does.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from nba.domain import Decision, Outcome
>>> from serving.store import EventStore, OutcomeWrite
>>> store = EventStore(tempfile.mkdtemp() + "/e.db")
>>> store.add_decision(Decision("E1", datetime(2026, 1, 5, tzinfo=UTC), "h1", "r", ("email",),
...     "{}", "c", ("a@email",), (1.0,), 0, "a@email", 1.0, "uniform", "v"))
>>> oc = OutcomeCommitter(store)
>>> o = Outcome("E1", datetime(2026, 1, 6, tzinfo=UTC), "opened")
>>> oc.add(OutcomeWrite(o)), oc.add(OutcomeWrite(o))
(True, False)
>>> oc.add_many([OutcomeWrite(Outcome("E1", o.ts, "clicked")), OutcomeWrite(o)])
[True, False]
>>> oc.close()
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field

from serving.commit import GroupWriter
from serving.store import EventStore, OutcomeWrite

log = logging.getLogger("nba.serving.commit_outcomes")

MAX_GROUP = 512


@dataclass
class _Item:
    writes: list[OutcomeWrite]
    done: Future[list[bool | Exception]] = field(default_factory=Future)


class OutcomeCommitter(GroupWriter[_Item]):
    """One writer thread that commits waiting outcomes together.

    Parameters
    ----------
    store : EventStore
    max_group : int
        Most outcomes per shared transaction.
    """

    def __init__(self, store: EventStore, max_group: int = MAX_GROUP) -> None:
        super().__init__(store, max_group, "nba-outcome-commit")

    def add(self, write: OutcomeWrite) -> bool:
        """Store one outcome; returns once it is committed.

        Returns
        -------
        bool
            False when the same (event, type, source_id) was already stored.

        Raises
        ------
        UnknownEventError, StoreError
            As :meth:`serving.store.EventStore.add_outcome` raises them; also any
            error of the write's ``on_stored`` hook (its outcome is then not stored).
        RuntimeError
            When the committer is closed.
        """
        (result,) = self.add_many([write])
        if isinstance(result, Exception):
            raise result
        return result

    def add_many(self, writes: list[OutcomeWrite]) -> list[bool | Exception]:
        """Store several outcomes in one group (a batch request); returns once committed.

        The outcomes share one transaction (one that is larger than ``max_group``
        goes alone) but are stored each in its own savepoint, as
        :meth:`serving.store.EventStore.add_outcomes` does.

        Returns
        -------
        list of bool or Exception
            One entry per write, in order: True when stored, False when already
            stored, or the error of that outcome alone (it is then not stored).

        Raises
        ------
        sqlite3.Error or psycopg.Error
            When the shared transaction itself failed: nothing of it is stored.
        RuntimeError
            When the committer is closed.
        """
        if not writes:
            return []
        return self.submit_many(writes).result()

    def submit_many(self, writes: list[OutcomeWrite]) -> Future[list[bool | Exception]]:
        """Hand outcomes over to be stored in one group, without waiting.

        The future is settled once the group holding them is committed, with what
        :meth:`add_many` returns (or the shared transaction's error). It cannot be
        cancelled: once handed over, the outcomes are written whoever still waits
        for them (an event loop awaiting it through :func:`asyncio.wrap_future` may
        be cancelled alone).

        Raises
        ------
        RuntimeError
            When the committer is closed.
        """
        item = _Item(list(writes))
        item.done.set_running_or_notify_cancel()  # Future.cancel() now refuses
        self._submit(item, "outcome committer")
        return item.done

    # ------------------------------------------------------------- writer
    def _size(self, item: _Item) -> int:
        return len(item.writes)

    def _commit(self, items: list[_Item]) -> None:
        try:
            results = self.store.add_outcomes([w for i in items for w in i.writes])
        except BaseException as exc:  # the shared transaction failed: nothing is stored
            log.error("outcome group commit failed: %s", type(exc).__name__)
            for item in items:
                item.done.set_exception(exc)
            return
        start = 0
        for item in items:
            end = start + len(item.writes)
            item.done.set_result(results[start:end])
            start = end
