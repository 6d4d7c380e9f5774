"""A real PostgreSQL server for tests, started from the machine's own binaries.

Tests get it through the session-scoped fixture ``postgres`` (registered in
``tests/conftest.py``)::

    def test_something(postgres: PostgresServer) -> None:
        dsn = postgres.create_database("events")  # a fresh, empty database
        with psycopg.connect(dsn) as conn:
            ...

One server serves the whole test session; each test module that needs its own
state creates its own database with :meth:`PostgresServer.create_database`
(cheap: one ``CREATE DATABASE``), so nothing leaks between modules.

Where the server comes from:

- the binaries (``initdb``, ``postgres``) are looked up in ``NBA_PG_BINDIR``
  when set, then next to ``pg_ctl``/``initdb`` on ``PATH``, then in
  ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package,
  which ``make test`` and ``.ci/run`` install when it is missing; nothing is
  ever downloaded);
- the cluster lives in a fresh temporary directory (``initdb --auth=trust``:
  only 127.0.0.1 can connect, as the superuser ``postgres``, no password), on a
  free port of 127.0.0.1, with its Unix socket inside that directory;
- ``initdb`` and ``postgres`` refuse to run as root: as root both run as the
  operating-system user ``postgres`` (what ``runuser -u postgres --`` does;
  here through :class:`subprocess.Popen`'s ``user``, ``group`` and
  ``extra_groups``, so the server is a direct child of the test process), which
  owns the temporary directory;
- at the end of the session the server gets a fast shutdown (SIGINT) and the
  directory is removed.

When the server cannot start (no binaries, no ``postgres`` user while running
as root, a start that fails), the fixture skips the tests that need it with the
reason, except under ``CI=true``, where it fails them: CI must run them.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the database superuser of the test cluster (``initdb -U``)
SUPERUSER = "postgres"
#: the operating-system user that runs the cluster when the tests run as root
OS_USER = "postgres"
HOST = "127.0.0.1"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ServiceUnavailable(RuntimeError):
    """A server a test needs could not be found or started (the message says why)."""


def in_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip the requesting test with ``reason``; under CI, fail it instead.

    Raises
    ------
    pytest.fail.Exception or pytest.skip.Exception
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests that need this server must run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _has_server_binaries(d: Path) -> bool:
    return all((d / name).is_file() for name in ("initdb", "postgres"))


def _version_key(d: Path) -> tuple[int, ...]:
    nums = re.findall(r"\d+", d.parent.name)
    return tuple(int(n) for n in nums)


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None when there is none.

    Looks in ``NBA_PG_BINDIR``, then next to ``pg_ctl`` or ``initdb`` on
    ``PATH`` (symlinks resolved), then in the newest
    ``/usr/lib/postgresql/<version>/bin``.
    """
    env = os.environ.get("NBA_PG_BINDIR")
    if env:
        d = Path(env)
        return d if _has_server_binaries(d) else None
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found:
            d = Path(found).resolve().parent
            if _has_server_binaries(d):
                return d
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_server_binaries(d)]
    return max(candidates, key=_version_key) if candidates else None


@dataclass(frozen=True)
class RunAs:
    """Who runs the server's processes: ``uid``/``gid`` None means the current user."""

    uid: int | None
    gid: int | None
    name: str

    @classmethod
    def for_postgres(cls) -> RunAs:
        """The current user, or the ``postgres`` user when running as root.

        Raises
        ------
        ServiceUnavailable
            Running as root and there is no ``postgres`` user.
        """
        if os.geteuid() != 0:
            return cls(None, None, pwd.getpwuid(os.geteuid()).pw_name)
        try:
            pw = pwd.getpwnam(OS_USER)
        except KeyError:
            raise ServiceUnavailable(
                f"running as root, and initdb refuses root, but there is no {OS_USER!r} "
                "user to run PostgreSQL as (Debian's postgresql package creates it)"
            ) from None
        return cls(pw.pw_uid, pw.pw_gid, OS_USER)

    @property
    def extra_groups(self) -> list[int] | None:
        """Supplementary groups for :class:`subprocess.Popen`: none when switching user."""
        return None if self.uid is None else []

    def chown(self, path: Path) -> None:
        """Give ``path`` to this user (a no-op for the current user)."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server (see :func:`running_postgres`).

    Attributes
    ----------
    host, port : str, int
        Where it listens (TCP only on 127.0.0.1).
    user : str
        The database superuser; no password (trust authentication on 127.0.0.1).
    root : Path
        The temporary directory: ``data/`` (the cluster), ``socket/``, ``postgres.log``.
    bin_dir : Path
        Where its binaries came from.
    version : str
        ``postgres --version`` of those binaries.
    """

    host: str
    port: int
    user: str
    root: Path
    bin_dir: Path
    version: str

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection URI for database ``dbname`` (psycopg, psql, ...)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def sqlalchemy_url(self, dbname: str = "postgres") -> str:
        """The same database as a SQLAlchemy URL with the psycopg 3 driver
        (what ``mlflow server --backend-store-uri`` takes)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` and return its DSN.

        Parameters
        ----------
        name : str
            Lower-case letters, digits and ``_``, starting with a letter or ``_``,
            at most 63 characters.

        Raises
        ------
        ValueError
            ``name`` is not such a name.
        psycopg.errors.DuplicateDatabase
            It exists already.
        """
        if not _DB_NAME.match(name):
            raise ValueError(
                f"database name {name!r}: use lower-case letters, digits and '_' "
                "(at most 63, not starting with a digit)"
            )
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def _run(cmd: list[str], run_as: RunAs, what: str, timeout: float) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
            check=False,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=run_as.extra_groups,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceUnavailable(f"{what} failed: {exc}") from exc
    if out.returncode != 0:
        raise ServiceUnavailable(
            f"{what} exited with {out.returncode}: {(out.stderr or out.stdout).strip()[-2000:]}"
        )
    return out.stdout


def _wait_ready(server: PostgresServer, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(
                f"postgres exited with {proc.returncode} while starting on port "
                f"{server.port}:\n{server.log_tail()}"
            )
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.2)
    raise ServiceUnavailable(
        f"postgres did not accept connections on port {server.port} within {timeout:.0f} s "
        f"({last}):\n{server.log_tail()}"
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextmanager
def running_postgres(
    settings: dict[str, str] | None = None, start_timeout: float = 60.0, attempts: int = 3
) -> Iterator[PostgresServer]:
    """Initialise a cluster in a temporary directory, start it, stop and remove it on exit.

    Parameters
    ----------
    settings : dict, optional
        Extra server settings (``-c name=value``), e.g. ``{"max_connections": "200"}``.
    start_timeout : float
        Seconds to wait for the server to accept connections.
    attempts : int
        Ports to try when another process takes the free port first.

    Raises
    ------
    ServiceUnavailable
        No binaries, no user to run them as, or the server did not start.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise ServiceUnavailable(
            "no PostgreSQL server binaries (initdb, postgres) in NBA_PG_BINDIR, on PATH or "
            "in /usr/lib/postgresql/*/bin; `make test` installs Debian's postgresql package"
        )
    run_as = RunAs.for_postgres()
    root = Path(tempfile.mkdtemp(prefix="nba-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        run_as.chown(root)
        version = _run(
            [str(bin_dir / "postgres"), "--version"], run_as, "postgres --version", 30
        ).strip()
        data, sockets = root / "data", root / "socket"
        sockets.mkdir()
        run_as.chown(sockets)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
            "initdb",
            120,
        )
        options = {"listen_addresses": HOST, **(settings or {})}
        server: PostgresServer | None = None
        for attempt in range(attempts):
            port = free_port()
            server = PostgresServer(HOST, port, SUPERUSER, root, bin_dir, version)
            cmd = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
            cmd += ["-k", str(sockets)]
            for k, v in options.items():
                cmd += ["-c", f"{k}={v}"]
            log = server.log_path.open("ab")
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                    cwd="/",
                    user=run_as.uid,
                    group=run_as.gid,
                    extra_groups=run_as.extra_groups,
                )
            finally:
                log.close()
            try:
                _wait_ready(server, proc, start_timeout)
                break
            except ServiceUnavailable:
                _stop(proc)
                proc = None
                if attempt == attempts - 1:
                    raise
        assert server is not None
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole test session (see the module docstring).

    Skips the test when PostgreSQL cannot start, or fails it under ``CI=true``.
    """
    try:
        cm = running_postgres()
        server = cm.__enter__()
    except ServiceUnavailable as exc:
        unavailable(f"PostgreSQL is not available: {exc}")
        raise AssertionError("unreachable") from exc
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)
