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
>>> oc.close()
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from serving.store import EventStore, OutcomeWrite

log = logging.getLogger("nba.serving.commit_outcomes")

MAX_GROUP = 512


@dataclass
class _Item:
    write: OutcomeWrite
    done: Future[bool] = field(default_factory=Future)


class OutcomeCommitter:
    """One writer thread that commits waiting outcomes together.

    Parameters
    ----------
    store : EventStore
    max_group : int
        Most outcomes per shared transaction.
    """

    def __init__(self, store: EventStore, max_group: int = MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, got {max_group}")
        self.store = store
        self.max_group = max_group
        self._pending: list[_Item] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="nba-outcome-commit", daemon=True)
        self._thread.start()

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
        item = _Item(write)
        with self._cond:
            if self._closed:
                raise RuntimeError("the outcome committer is closed")
            self._pending.append(item)
            self._cond.notify()
        return item.done.result()

    def close(self) -> None:
        """Commit what is waiting, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------- writer
    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            return group

    def _run(self) -> None:
        try:
            while True:
                group = self._take()
                if group is None:
                    return
                self._commit(group)
        finally:
            self.store.close()

    def _commit(self, items: list[_Item]) -> None:
        try:
            results = self.store.add_outcomes([i.write for i in items])
        except BaseException as exc:  # the shared transaction failed: nothing is stored
            log.error("outcome group commit failed: %s", type(exc).__name__)
            for item in items:
                item.done.set_exception(exc)
            return
        for item, res in zip(items, results, strict=True):
            if isinstance(res, Exception):
                item.done.set_exception(res)
            else:
                item.done.set_result(res)
