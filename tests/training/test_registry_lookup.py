"""Looking a model up in a store that does not exist fails clearly and creates nothing."""

from __future__ import annotations

import subprocess
import sys
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


def test_missing_store_is_refused_before_mlflow_is_imported(tmp_path: Path) -> None:
    """A service started before any training serves its baseline; finding that the
    SQLite store is not there must not cost it MLflow's import (seconds of CPU)."""
    db = tmp_path / "nowhere" / "mlflow.db"
    code = (
        "import sys\n"
        "from nba.policies.base import PolicyError\n"
        "from training.registry import load_policy, resolve_version\n"
        "for lookup in (resolve_version, load_policy):\n"
        "    try:\n"
        f"        lookup('models:/nba@champion', {f'sqlite:///{db}'!r})\n"
        "    except PolicyError as exc:\n"
        "        print(exc)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    refused = f"sqlite:///{db}: no MLflow tracking store there yet, so no models:/nba@champion"
    assert out == [refused, refused, "[]"]
    assert not db.exists()
