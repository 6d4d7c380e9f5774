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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
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
    workers: int,
    store: Path | str | None,
    model_uri: str | None,
    log_level: str,
) -> None:
    """Run the decision service (FastAPI + uvicorn)."""
    import uvicorn

    from serving.settings import Settings

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
        f"nba serve: http://{host}:{port}  workers={workers}  "
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
    try:
        uvicorn.run(
            "serving.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # the app logs route templates, never raw paths with HCP ids
            log_level=log_level,
            log_config=log_config,
            timeout_graceful_shutdown=10,
            http=options["http"],
            loop=options["loop"],
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
