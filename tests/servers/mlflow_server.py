"""A real ``mlflow server`` process for tests: PostgreSQL backend store, local artifact root.

Tests get it through the module-scoped fixture ``mlflow_server`` (registered in
``tests/conftest.py``)::

    def test_something(mlflow_server: MlflowServer) -> None:
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
        ...

Each test module that asks for it gets its own server process and its own
database in the session's PostgreSQL server (fixture ``postgres`` of
``tests/servers/pg_server.py``), so the registry starts empty in every module. The
server is started exactly as a deployment starts it (docs/deploy.md)::

    mlflow server --backend-store-uri postgresql+psycopg://... \\
        --artifacts-destination DIR --host 127.0.0.1 --port P --workers 1

so clients upload and download artifacts through the server
(``mlflow-artifacts:/`` URIs), never by writing to ``DIR`` themselves. The
fixture waits until ``GET /health`` and a first REST call answer (the
database schema is created on the first start, and the first request opens the
store, which takes a few seconds) and stops the server's process
group at the end of the module.

When the server cannot start, the test is skipped with the reason, except under
``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_server import HOST, PostgresServer, ServiceUnavailable, free_port, unavailable


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server`` (see :func:`running_mlflow_server`).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``: the tracking and registry URI for clients.
    port : int
    backend_store_uri : str
        The SQLAlchemy URL of its PostgreSQL database.
    artifact_root : Path
        ``--artifacts-destination``: where uploaded artifacts land
        (``<experiment id>/<run id>/artifacts/...``).
    log_path : Path
        The server's stdout and stderr.
    """

    url: str
    port: int
    backend_store_uri: str
    artifact_root: Path
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def mlflow_command() -> list[str]:
    """The ``mlflow`` entry point of this interpreter's environment (``.venv/bin/mlflow``)."""
    exe = Path(sys.executable).parent / "mlflow"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]


def server_env() -> dict[str, str]:
    """The environment of the server process: this one, with telemetry off."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    # MLflow 3 starts a job runner beside the server by default (eight Python
    # processes, each importing MLflow, for GenAI jobs nba never submits); on two
    # loaded cores `mlflow ui` answered /health after 92 s without it, 156 s with it
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _healthy(url: str) -> bool:
    """``/health`` answers, and so does the REST API (which opens the database: the
    first request after a start can take many seconds)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            if r.status != 200:
                return False
        api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        with urllib.request.urlopen(api, timeout=120) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop the server and the workers it forked (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    try:  # workers left behind by a supervisor that died first
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def running_mlflow_server(
    backend_store_uri: str,
    artifact_root: Path,
    workdir: Path,
    start_timeout: float = 180.0,
    attempts: int = 3,
) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` on a free port of 127.0.0.1; stop it on exit.

    Parameters
    ----------
    backend_store_uri : str
        SQLAlchemy URL of the backend (and registry) store.
    artifact_root : Path
        Directory given as ``--artifacts-destination`` (created).
    workdir : Path
        The server's working directory; its log goes to ``workdir/mlflow-server.log``.
    start_timeout : float
        Seconds to wait for ``/health``.
    attempts : int
        Ports to try when another process takes the free port first.

    Raises
    ------
    ServiceUnavailable
        The server exited or did not become healthy in time (with its log's tail).
    """
    artifact_root.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    for attempt in range(attempts):
        port = free_port()
        server = MlflowServer(
            f"http://{HOST}:{port}", port, backend_store_uri, artifact_root, log_path
        )
        cmd = [
            *mlflow_command(),
            "server",
            "--backend-store-uri",
            backend_store_uri,
            "--artifacts-destination",
            str(artifact_root),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=server_env(),
                start_new_session=True,  # its own process group: stopped as a whole
            )
        try:
            deadline = time.monotonic() + start_timeout
            while not _healthy(server.url):
                if proc.poll() is not None:
                    raise ServiceUnavailable(
                        f"mlflow server exited with {proc.returncode} while starting on port "
                        f"{port}:\n{server.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"mlflow server on port {port} was not healthy within "
                        f"{start_timeout:.0f} s:\n{server.log_tail()}"
                    )
                time.sleep(0.5)
        except ServiceUnavailable:
            _stop_group(proc)
            in_use = re.search(r"address already in use", server.log_tail(), re.I)
            if attempt == attempts - 1 or not in_use:
                raise
            continue
        try:
            yield server
        finally:
            _stop_group(proc)
        return


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` for this test module, on its own fresh PostgreSQL database.

    Skips the test when the server cannot start, or fails it under ``CI=true``.
    """
    module = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    dbname = f"mlflow_{module[:40]}_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("mlflow-server")
    try:
        postgres.create_database(dbname)
        cm = running_mlflow_server(
            postgres.sqlalchemy_url(dbname), root / "artifacts", root / "work"
        )
        server = cm.__enter__()
    except ServiceUnavailable as exc:
        unavailable(f"mlflow server is not available: {exc}")
        raise AssertionError("unreachable") from exc
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)
