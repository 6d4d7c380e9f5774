"""Helpers shared by the decision-service tests (imported by name: conftest puts
this folder on ``sys.path``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.settings import Settings, hash_key

KEYS: dict[str, str] = {
    "decide": "test-key-decide-7f1c",
    "report": "test-key-report-93ab",
    "admin": "test-key-admin-51de",
}

HCP_BODY: dict[str, Any] = {
    "specialty": "cardiology",
    "decile": 8,
    "market": "US",
    "adoption_stage": "aware",
    "consents": ["email", "rep_visit", "webinar", "remote_call", "portal"],
    "no_see": False,
    "digital_affinity": 0.7,
}


def sqlite_rows(db: str | Path, sql: str) -> list[tuple[Any, ...]]:
    """All rows of ``sql`` on the SQLite file ``db``, read on a connection of its own."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope]}"}


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "api_keys": [
            {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
            for scope, key in KEYS.items()
        ],
        "store_path": tmp / "events.db",
        "model_uri": str(tmp / "no-model-yet"),
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "model_poll_seconds": 0,
        # a test process starts and stops many apps: each start would collect its
        # whole heap to freeze it (serving/heap.py); servers started by
        # start_server (and the benchmarks) keep the service's defaults
        "gc_freeze": False,
        "gc_young_threshold": 0,
    }
    base.update(overrides)
    return Settings(**base)


def store_settings(location: str | Path) -> dict[str, Any]:
    """The settings naming the store at ``location``: ``store_url`` for a
    PostgreSQL URL, ``store_path`` for an SQLite file."""
    if isinstance(location, str) and location.startswith("postgresql://"):
        return {"store_url": location}
    return {"store_path": Path(location)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a real ``nba serve`` subprocess with the test keys."""
    import json
    import os

    env = dict(os.environ)
    env.update(
        {
            "NBA_API_KEYS": json.dumps(
                [
                    {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
                    for scope, key in KEYS.items()
                ]
            ),
            "NBA_STORE_PATH": str(tmp / "events.db"),
            "NBA_MODEL_URI": str(tmp / "no-model-yet"),
            "NBA_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "NBA_MODEL_POLL_SECONDS": "0",
            "NBA_DATA_DIR": str(tmp / "data"),
        }
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def listening_socket() -> Any:
    """A TCP socket bound to a free loopback port and listening, owned by the caller
    (a ``socket.socket``)."""
    import socket

    return socket.create_server(("127.0.0.1", 0))


def start_server(
    tmp: Path, workers: int = 1, serve_args: tuple[str, ...] = (), **extra: str
) -> tuple[Any, str]:
    """Start ``nba serve`` (plus ``serve_args``) in its own process group on a
    loopback socket this process binds and hands over (``nba serve --fd``); wait
    until ``/readyz`` answers 200. Returns (process, base URL).

    The port is never free between choosing it and the server serving on it, so
    another process (another test suite's server, on a shared machine) cannot take
    it and answer in the server's place."""
    import sys

    listener = listening_socket()
    return start_process(
        tmp,
        "server",
        lambda port: [
            sys.executable,
            "-m",
            "nba_cli.main",
            "serve",
            "--fd",
            str(listener.fileno()),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            *serve_args,
        ],
        env=server_env(tmp, **extra),
        listener=listener,
    )


def start_process(
    tmp: Path,
    name: str,
    command: Callable[[int], list[str]],
    env: dict[str, str] | None = None,
    wait_s: float = 90,
    listener: Any = None,
) -> tuple[Any, str]:
    """Start ``command(port)`` in its own process group, its output in
    ``tmp/<name>-<port>.log``; wait until its ``/readyz`` answers 200. Returns
    (process, base URL).

    With ``listener`` (a bound, listening socket of :func:`listening_socket`) the
    port is the listener's, the process inherits the socket (its file descriptor
    stays open in the child) and this process closes its own copy once the child
    has started; else the port is a free one, which the command binds itself (and
    another process could take first)."""
    import subprocess
    import time

    import httpx

    port = free_port() if listener is None else int(listener.getsockname()[1])
    log_path = tmp / f"{name}-{port}.log"
    try:
        proc = subprocess.Popen(
            command(port),
            env=env,
            stdout=open(log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=() if listener is None else (listener.fileno(),),
        )
    finally:
        if listener is not None:
            listener.close()  # the child holds the socket; a dead child refuses connections
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    # one client for the polls: httpx.get builds a client, and an SSL context, each
    # call (about 40 ms of CPU, taken from the starting server on a busy machine)
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log_path.read_text()}")
            try:
                if http.get(f"{base}/readyz").status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{name} did not become ready in {wait_s:.0f} s")


def stop_server(proc: Any, kill: bool = False) -> None:
    """Stop a server started by :func:`start_server` (its own process group)."""
    import os
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def add_population(store: Any, catalog: Any, hcps: int, rng: Any) -> list[str]:
    """Store ``hcps`` HCPs (``B000000``, ...) of the benchmarks' shape.

    US cardiologists with email, portal and webinar consent, deciles and
    digital affinities drawn from ``rng`` (a ``numpy.random.Generator``); the
    first third have one to four email touches of ours, nine days apart, the
    latest two days ago. Returns their ids.
    """
    from datetime import UTC, datetime, timedelta

    from nba.domain import HCPProfile, Touch

    ids = [f"B{i:06d}" for i in range(hcps)]
    store.upsert_hcps(
        [
            HCPProfile(
                h,
                "cardiology",
                int(rng.integers(1, 11)),
                "US",
                "aware",
                frozenset({"email", "portal", "webinar"}),
                digital_affinity=round(float(rng.random()), 3),
            )
            for h in ids
        ]
    )
    now = datetime.now(UTC)
    content = [c for c in catalog.by_id if c]
    store.add_touches(
        [
            Touch(h, now - timedelta(days=2 + 9 * d), "email", content[(j + d) % len(content)])
            for j, h in enumerate(ids[: hcps // 3])
            for d in range(1 + j % 4)
        ]
    )
    return ids


def sample_decision(event_id: str, i: int, at: Any) -> Any:
    """Decision ``event_id``, the ``i``-th of a run starting at ``at`` (a UTC
    datetime): ``i`` seconds later, for one of seven HCPs, uniform over two
    email actions, choosing the first or the second as ``i`` is even or odd."""
    from datetime import timedelta

    from nba.domain import Decision

    actions = ("a@email", "b@email")
    return Decision(
        event_id,
        at + timedelta(seconds=i),
        f"h{i % 7}",
        "rep_app",
        ("email",),
        "{}",
        "v1",
        actions,
        (0.5, 0.5),
        i % 2,
        actions[i % 2],
        0.5,
        "uniform",
        "none",
    )
