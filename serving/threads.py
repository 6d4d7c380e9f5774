"""The operating system's name of the service's own threads.

CPython (before 3.14) names a thread only for Python: ``/proc``, ``top -H`` and
per-thread CPU clocks show every thread as ``python``. :func:`name_native_thread`
gives the calling thread's Python name to the kernel too (Linux keeps its first
15 bytes), so that the benchmark (``bench/serve.py``) can tell the event loop,
the decision pool, the hand-over pool and the group committers apart when it
reads each thread's CPU time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

#: Linux's ``prctl`` option that names the calling thread
_PR_SET_NAME = 15
#: the longest name Linux keeps (16 bytes with the terminating NUL)
NAME_BYTES = 15

_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError):  # no C library found: names stay Python's
        _prctl = None


def native_name(name: str) -> bytes:
    """The bytes the kernel keeps of ``name`` (UTF-8, cut to :data:`NAME_BYTES`).

    >>> native_name("nba-group-commit")
    b'nba-group-commi'
    >>> native_name("nba-decide_0")
    b'nba-decide_0'
    """
    return name.encode("utf-8")[:NAME_BYTES]


def name_native_thread(name: str | None = None) -> bool:
    """Give the calling thread's name (default: its Python name) to the kernel.

    Returns True when it was named (Linux), False elsewhere or on failure; never
    raises, since a thread's name is only for observing it.
    """
    if _prctl is None:
        return False
    text = threading.current_thread().name if name is None else name
    try:
        return int(_prctl(_PR_SET_NAME, ctypes.c_char_p(native_name(text)), 0, 0, 0)) == 0
    except (OSError, ctypes.ArgumentError):
        return False
