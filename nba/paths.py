"""Where things live by default, resolved from configuration or from this file,
never from the current directory.

``NBA_DATA_DIR`` overrides the data directory (default: ``<project>/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The project's data directory (created on first use)."""
    d = Path(os.environ.get("NBA_DATA_DIR") or PROJECT_ROOT / "data")
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_tracking_uri() -> str:
    """MLflow tracking store: ``MLFLOW_TRACKING_URI`` or an SQLite file in the data dir."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{data_dir() / 'mlflow.db'}"
