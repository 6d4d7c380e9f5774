"""Looking a model up in a store that does not exist fails clearly and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.policies.base import PolicyError
from training.registry import resolve_version


def test_missing_sqlite_store_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(PolicyError, match="no MLflow tracking store there yet"):
        resolve_version("models:/nba@champion", f"sqlite:///{db}")
    assert not db.exists()


def test_bad_model_uri_is_refused() -> None:
    with pytest.raises(PolicyError, match="is not 'models:/<name>@<alias>'"):
        resolve_version("nba@champion", "sqlite:///unused.db")
