"""Whether the MLflow tracking server a command will use answers, checked without
importing MLflow.

The commands that need a tracking server (``nba train``, ``nba evaluate``,
``nba promote``) call :func:`check_server` first, before they import MLflow,
pandas, scipy and the training code: a refusal then costs a fraction of a second
of CPU instead of seconds, and no work is done before it.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import urlparse

from nba.paths import default_tracking_uri


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server named by the tracking URI cannot be used."""


def server_auth() -> dict[str, str]:
    """HTTP headers with the credentials MLflow's client would send: a bearer token
    from ``MLFLOW_TRACKING_TOKEN``, else basic authentication from
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, else none."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if user and password:
        raw = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {raw}"}
    return {}


def check_server(
    tracking_uri: str | None = None, connect_timeout: float = 10.0, read_timeout: float = 120.0
) -> str:
    """The tracking URI (``tracking_uri``, else :func:`nba.paths.default_tracking_uri`),
    after checking that an ``http(s)://`` one answers as an MLflow tracking server
    (a store that is a file or a database is not checked here).

    MLflow's own client retries an unreachable server for minutes before it
    fails; this check asks once (``connect_timeout`` seconds to connect,
    ``read_timeout`` for the answer: a server's first request after its start
    opens its database, which can take a while).

    Parameters
    ----------
    tracking_uri : str, optional
        The URI to check; default the project's (``MLFLOW_TRACKING_URI`` or the
        SQLite store in the data directory).
    connect_timeout, read_timeout : float
        Seconds to connect, and to wait for the answer.

    Returns
    -------
    str
        The tracking URI.

    Raises
    ------
    TrackingUnavailable
        The server refuses connections, times out, rejects the credentials, or
        answers something that is not the MLflow REST API; the message names the
        URI and what to do.
    """
    uri = tracking_uri or default_tracking_uri()
    if urlparse(uri).scheme not in ("http", "https"):
        return uri
    import httpx

    url = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search"
    hint = (
        "start the MLflow tracking server (docs/deploy.md) or point MLFLOW_TRACKING_URI "
        "(--tracking-uri, NBA_TRACKING_URI for the service) at one that runs"
    )
    try:
        r = httpx.get(
            url,
            params={"max_results": 1},
            headers=server_auth(),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )
    except httpx.HTTPError as exc:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} cannot be reached ({type(exc).__name__}: {exc}); {hint}"
        ) from exc
    if r.status_code in (401, 403):
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} refused the credentials (HTTP {r.status_code}); "
            "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
        )
    try:
        ok = r.status_code == 200 and isinstance(r.json(), dict)
    except ValueError:
        ok = False
    if not ok:
        raise TrackingUnavailable(
            f"{uri} does not answer as an MLflow tracking server (GET {url} gave HTTP "
            f"{r.status_code}: {r.text[:200]!r}); {hint}"
        )
    return uri
