"""Fixtures shared by the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def mlflow_sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh MLflow tracking store (SQLite file) for one test module.

    ``MLFLOW_TRACKING_URI`` names it and ``NBA_DATA_DIR`` points beside it while
    the module's tests run; both are restored afterwards. Yields the store's URI.
    """
    d = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("NBA_DATA_DIR", str(d / "data"))
        yield uri
