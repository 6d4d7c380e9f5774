"""Helpers shared by the decision-service tests (imported by name: conftest puts
this folder on ``sys.path``)."""

from __future__ import annotations

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
    }
    base.update(overrides)
    return Settings(**base)
