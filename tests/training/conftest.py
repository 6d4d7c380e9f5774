"""Fixtures shared by the training tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def mlflow_sqlite_store(
    tmp_path_factory: pytest.TempPathFactory, empty_mlflow_store: Path
) -> Iterator[str]:
    """An empty MLflow tracking store (SQLite file) for one test module: a copy of
    the session's empty store (MLflow's migrations of a new store cost seconds).

    ``MLFLOW_TRACKING_URI`` names it and ``NBA_DATA_DIR`` points beside it while
    the module's tests run; both are restored afterwards. Yields the store's URI.
    """
    d = tmp_path_factory.mktemp("mlflow")
    shutil.copy(empty_mlflow_store, d / "mlflow.db")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("NBA_DATA_DIR", str(d / "data"))
        yield uri
