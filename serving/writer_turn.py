"""Writers of one SQLite file take turns through a lock file, not SQLite's busy handler.

SQLite lets one writer at a time hold a database's write lock. A connection that
finds it taken (``BEGIN IMMEDIATE`` answers ``SQLITE_BUSY``) does not queue: its
busy handler sleeps and tries again, in growing steps (1, 2, 5, 10, ... up to
100 ms), for up to the busy timeout. Two worker processes whose group
committers each commit back to back then hand the lock over badly: the loser
sleeps while the winner takes the lock again and again, and its requests wait
tens to hundreds of milliseconds (docs/performance.md, "Writers take turns").

:class:`WriterTurn` puts a blocking ``flock`` on a lock file beside the
database in front of every write transaction. A writer that finds the turn
taken sleeps in the kernel (releasing the GIL) and is woken the moment the
holder lets go, so writers queue instead of polling. The lock is only a queue
in front of SQLite's own locking, which still guarantees correctness (a writer
that does not take the turn, e.g. the ``sqlite3`` shell, still gets SQLite's
busy handler); durability is SQLite's, unchanged.

Each thread opens its own descriptor of the lock file (``flock`` excludes
between open file descriptions, so threads of one process queue like
processes), reopened after a ``fork()``; the kernel releases a turn when its
holder's descriptors close, so a killed process (SIGKILL) never keeps it. A turn
is re-entrant within its thread: a group committer holds it from taking its
group to its commit, and the store's write transaction inside takes it again
without waiting for itself.

>>> import tempfile
>>> turn = WriterTurn(tempfile.mkdtemp() + "/events.db-lock")
>>> with turn:
...     with turn:  # re-entrant in one thread
...         turn.held
True
>>> turn.held
False
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from pathlib import Path
from types import TracebackType


class _TurnFile:
    """One thread's descriptor of the lock file and how deep its turn is."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.pid = os.getpid()
        self.depth = 0
        # closed when its thread ends (or in a forked child, where it was inherited:
        # closing a copy never releases the parent's flock, which is the open file's)
        weakref.finalize(self, os.close, self.fd)


class WriterTurn:
    """A re-entrant, cross-process turn to write, as a context manager.

    Parameters
    ----------
    path : str or Path
        The lock file (created when missing; its content is never used). Every
        process and thread writing one database must name the same file.

    Raises
    ------
    OSError
        On entering, when the lock file cannot be opened or locked; the message
        names the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _file(self) -> _TurnFile:
        f: _TurnFile | None = getattr(self._local, "file", None)
        if f is None or f.pid != os.getpid():  # first use, or inherited through fork()
            try:
                f = _TurnFile(self.path)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot open the writers' lock file {self.path}: {exc.strerror}"
                ) from exc
            self._local.file = f
        return f

    @property
    def held(self) -> bool:
        """Whether this thread holds the turn."""
        f: _TurnFile | None = getattr(self._local, "file", None)
        return f is not None and f.pid == os.getpid() and f.depth > 0

    def __enter__(self) -> WriterTurn:
        f = self._file()
        if f.depth == 0:
            fcntl.flock(f.fd, fcntl.LOCK_EX)  # waits in the kernel, the GIL released
        f.depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        f = self._file()
        if f.depth <= 0:
            raise RuntimeError(f"writer turn of {self.path} released without being held")
        f.depth -= 1
        if f.depth == 0:
            fcntl.flock(f.fd, fcntl.LOCK_UN)
