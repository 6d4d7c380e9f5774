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
"""

from __future__ import annotations

import gc
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
