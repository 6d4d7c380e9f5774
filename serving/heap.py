"""The worker's garbage collector, settled once the service has started.

A worker of ``nba serve`` holds a quarter of a million objects the collector
tracks once it has started (FastAPI, pydantic's models, MLflow's and VW's
modules, the catalog, the model): objects that live as long as the process.
CPython's full collection walks every one of them, and it holds the GIL while
it does, so each full collection under load stopped every request of the worker
for 100--300 ms (docs/performance.md, "Seventh pass: the collector's pauses").
Python's young generation is collected every 700 net allocations of container
objects, a few requests' worth, and each of these collections may start an
older one.

:func:`settle` runs in the worker once its services are open (the app's
``lifespan``): one full collection (the start-up's garbage is freed, not
frozen), then :func:`gc.freeze`, which moves every object alive now to a
permanent generation no collection walks, then a larger threshold for the
young generation. Nothing is freed later that would have been freed before: a
frozen object is still freed by its reference count; only a cycle among
start-up objects that becomes garbage later stays (until :func:`release`).
:func:`release` (on shutdown) gives the frozen objects back to the collector
and restores the thresholds, so a process that starts and stops the app many
times (the tests) does not keep each app's objects.

>>> import gc
>>> before = gc.get_threshold()
>>> s = settle(freeze=True, young_threshold=5_000)
>>> gc.get_threshold()[0], s.frozen > 0, gc.get_freeze_count() > 0
(5000, True, True)
>>> release(s)
>>> gc.get_threshold() == before, gc.get_freeze_count()
(True, 0)

:func:`paused` keeps the collector from starting while a batch decision builds
its answer (:meth:`serving.engine.DecisionEngine.decide_batch_json`). A batch
keeps its thousand decisions' objects alive until the answer is written, and
they are freed by their reference counts when it returns; a young collection
during the batch only walks them (docs/performance.md, "Ninth round, continued:
the collector around a batch"). The pause is shared: the collector is switched
back on when the last pause open in the process ends, and a pause that ends
while others are still open runs the collection Python would have run
meanwhile (if one is due), so collections are late by at most one batch, never
skipped for good.

>>> with paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Settled:
    """What :func:`settle` did.

    Attributes
    ----------
    frozen : int
        Objects in the permanent generation after it (0 when not frozen).
    threshold : tuple of int
        The collector's three thresholds after it.
    previous : tuple of int
        The thresholds before it (restored by :func:`release`).
    froze : bool
        Whether it froze the objects alive (what :func:`release` undoes).
    """

    frozen: int
    threshold: tuple[int, int, int]
    previous: tuple[int, int, int]
    froze: bool


def settle(freeze: bool, young_threshold: int) -> Settled:
    """Collect once, freeze what is alive (``freeze``) and set the young generation's
    threshold (``young_threshold``; 0 keeps Python's).

    Raises
    ------
    ValueError
        ``young_threshold`` is negative.
    """
    if young_threshold < 0:
        raise ValueError(f"young_threshold must be 0 (Python's) or more, got {young_threshold}")
    previous = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    if young_threshold:
        gc.set_threshold(young_threshold, previous[1], previous[2])
    return Settled(gc.get_freeze_count(), gc.get_threshold(), previous, freeze)


def release(settled: Settled) -> None:
    """Undo :func:`settle`: the frozen objects back to the collector (when it froze
    them), the thresholds as they were."""
    if settled.froze:
        gc.unfreeze()
    gc.set_threshold(*settled.previous)


_pause_lock = threading.Lock()
#: pauses open in the process; the collector's state when the first one opened
_pauses = 0
_enabled_before = False


@contextmanager
def paused() -> Iterator[None]:
    """The collector switched off for the block (when it was on), shared by the
    threads inside a block at once.

    The first pause to open switches the collector off; the last one to end
    switches it back on, if it was on before, in ``finally`` (an exception in the
    block too). A pause that ends while another is open runs the collection Python
    would have started on its own by then, if one is due (:func:`_due_generation`):
    batches overlapping without a break cannot hold the collector off for longer
    than one of them lasts. Objects are still freed by their reference counts
    meanwhile; only cycles wait.
    """
    global _pauses, _enabled_before
    with _pause_lock:
        if _pauses == 0:
            _enabled_before = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0:
                if _enabled_before:
                    gc.enable()
                late = False
            else:
                late = _enabled_before
        if late:
            due = _due_generation(gc.get_count(), gc.get_threshold())
            if due is not None:
                gc.collect(due)


def _due_generation(counts: tuple[int, int, int], thresholds: tuple[int, int, int]) -> int | None:
    """The generation Python's collector would collect now (the oldest whose count is
    past its threshold, the young one first to be past), or None when none is due.

    Python also holds a full collection back until the objects that survived into
    the oldest generation since the last one are a quarter of those there; that
    count is not readable from Python, so a full collection started here goes by
    the threshold alone.

    >>> _due_generation((20_001, 3, 0), (20_000, 10, 10))
    0
    >>> _due_generation((20_001, 11, 4), (20_000, 10, 10))
    1
    >>> _due_generation((19_000, 11, 4), (20_000, 10, 10)) is None
    True
    >>> _due_generation((19_000, 11, 4), (0, 10, 10)) is None  # 0: no automatic collection
    True
    """
    if thresholds[0] == 0 or counts[0] <= thresholds[0]:
        return None
    return 2 if counts[2] > thresholds[2] else 1 if counts[1] > thresholds[1] else 0
