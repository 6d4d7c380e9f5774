"""``nba serve``: run the decision service with uvicorn.

Every setting comes from the environment (``NBA_*``, see
:class:`serving.settings.Settings`); ``--store`` and ``--model`` are shortcuts
for ``NBA_STORE_PATH`` and ``NBA_MODEL_URI``. Settings are validated before any
worker starts, so a missing API key or a default secret stops the command with
a clear message. With ``--workers N > 1`` the workers share one event store and
follow one model alias; Prometheus metrics are aggregated across them through a
private ``PROMETHEUS_MULTIPROC_DIR``.

uvicorn parses HTTP with httptools and runs its event loop on uvloop when both
are installed (they are in the lock file), and falls back to its pure-Python h11
parser and asyncio's own loop otherwise (:func:`server_options`); the banner
names what it uses.

``--fd N`` serves on a socket that is already bound and listening, inherited as
file descriptor ``N`` (:func:`inherited_listener` checks it first), instead of
binding ``--host``/``--port``: whoever started the command owns the port from
before the service starts until it exits, so no other process can take it in
between (a supervisor's socket activation, or the tests' server helper).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from serving.cli_store import STORE


def server_options() -> dict[str, str]:
    """uvicorn's ``http`` and ``loop`` settings: the C implementations when installed.

    ``bench/serve.py`` starts its bare reference app with the same settings, so
    the two are measured on the same server.

    >>> sorted(server_options())
    ['http', 'loop']
    """
    from importlib.util import find_spec

    return {
        "http": "httptools" if find_spec("httptools") is not None else "h11",
        "loop": "uvloop" if find_spec("uvloop") is not None else "asyncio",
    }


HINT = "'--fd'"


def inherited_listener(fd: int) -> str:
    """The address of the listening stream socket at file descriptor ``fd``, as text.

    Raises :class:`click.BadParameter` naming ``--fd`` and what is wrong when ``fd``
    is not open, not a socket, not a stream socket, or not listening. The socket
    itself is left as it is (a duplicate of it is inspected and closed).

    >>> with socket.create_server(("127.0.0.1", 0)) as s:
    ...     inherited_listener(s.fileno()) == f"http://127.0.0.1:{s.getsockname()[1]}"
    True
    """
    try:
        dup = os.dup(fd)
    except OSError as exc:
        raise click.BadParameter(
            f"{fd} is not an open file descriptor ({exc.strerror})", param_hint=HINT
        ) from None
    try:
        sock = socket.socket(fileno=dup)
    except OSError as exc:
        os.close(dup)
        raise click.BadParameter(
            f"{fd} is not a socket ({exc.strerror})", param_hint=HINT
        ) from None
    with sock:
        if sock.type != socket.SOCK_STREAM:
            raise click.BadParameter(f"{fd} is not a stream (TCP or Unix) socket", param_hint=HINT)
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise click.BadParameter(
                f"socket {fd} is not listening (call listen() on it first)", param_hint=HINT
            )
        address = sock.getsockname()
        if sock.family == socket.AF_INET:
            return f"http://{address[0]}:{address[1]}"
        if sock.family == socket.AF_INET6:
            return f"http://[{address[0]}]:{address[1]}"
        if sock.family == socket.AF_UNIX:
            return f"unix:{address}"
        raise click.BadParameter(
            f"socket {fd} is of an unsupported family ({sock.family!r})", param_hint=HINT
        )


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket at file descriptor ``fd`` (checked by
    :func:`inherited_listener`), with its own family, type and protocol.

    uvicorn's own ``fd=`` option takes every inherited socket for a Unix one
    (``socket.fromfd(fd, AF_UNIX, ...)``), so the event loop never sets
    ``TCP_NODELAY`` on the TCP connections it accepts there: each keep-alive
    answer then waits for the client's delayed acknowledgement (tens of
    milliseconds a request). Read from the descriptor, the family is the
    socket's own.
    """
    return socket.socket(fileno=fd)


def _serve_on(sock: socket.socket, options: dict[str, Any]) -> None:
    """Run the service's uvicorn on the listening ``sock`` (one process, or
    ``options["workers"]`` worker processes sharing it), as ``uvicorn.run`` does
    for a socket it binds itself."""
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("serving.main:create_app", **options)
    server = uvicorn.Server(config=config)
    if config.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return
    config.load_app()
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--fd",
    type=click.IntRange(0),
    default=None,
    help="Serve on the bound, listening socket inherited as this file descriptor "
    "instead of binding --host/--port (the caller owns the port).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--store",
    type=STORE,
    default=None,
    help="Event store: SQLite file (NBA_STORE_PATH) or postgresql:// URL (NBA_STORE_URL).",
)
@click.option("--model", "model_uri", default=None, help="Model URI or path (NBA_MODEL_URI).")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    host: str,
    port: int,
    fd: int | None,
    workers: int,
    store: Path | str | None,
    model_uri: str | None,
    log_level: str,
) -> None:
    """Run the decision service (FastAPI + uvicorn)."""
    import uvicorn

    from serving.settings import Settings

    if fd is not None:
        context = click.get_current_context()
        for name in ("host", "port"):
            if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--fd serves on an inherited socket: drop --{name}")
        where = inherited_listener(fd)  # before the settings: a bad --fd is named first
    else:
        where = f"http://{host}:{port}"
    if isinstance(store, Path):
        os.environ["NBA_STORE_PATH"] = str(store.resolve())
        os.environ.pop("NBA_STORE_URL", None)
    elif store is not None:
        os.environ["NBA_STORE_URL"] = store
    if model_uri is not None:
        os.environ["NBA_MODEL_URI"] = model_uri
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise click.ClickException("invalid settings:\n" + "\n".join(lines)) from None
    except SettingsError as exc:  # e.g. NBA_API_KEYS that is not JSON
        raise click.ClickException(f"invalid settings: {exc}") from None
    if settings.auth_disabled:
        click.secho(
            "WARNING: auth is disabled (NBA_AUTH_DISABLED=true): every caller has every scope.",
            fg="yellow",
            err=True,
        )
    options = server_options()
    click.echo(
        f"nba serve: {where}  workers={workers}  "
        f"store={settings.store_location_text}  model={settings.model_uri}  "
        f"http={options['http']}  loop={options['loop']}",
        err=True,
    )
    own_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="nba-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    import copy

    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    # the service's own logs (access log by route template, model swaps, warnings)
    log_config["loggers"]["nba"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    options_run: dict[str, Any] = {
        "factory": True,
        "workers": workers,
        "access_log": False,  # the app logs route templates, never raw paths with HCP ids
        "log_level": log_level,
        "log_config": log_config,
        "timeout_graceful_shutdown": 10,
        "http": options["http"],
        "loop": options["loop"],
    }
    try:
        if fd is None:
            uvicorn.run("serving.main:create_app", host=host, port=port, **options_run)
        else:
            _serve_on(inherited_socket(fd), options_run)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
