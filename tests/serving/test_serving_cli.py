"""``nba serve`` validates its settings before any worker starts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nba_cli.main import main
from serving.settings import hash_key


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"NBA_API_KEYS": "[]"}, "no API keys configured"),
        (
            {
                "NBA_API_KEYS": json.dumps(
                    [{"name": "x", "sha256": hash_key("changeme"), "scopes": ["admin"]}]
                )
            },
            "well-known default secret",
        ),
        ({"NBA_API_KEYS": "not json"}, "api_keys"),
        ({"NBA_AUTH_DISABLED": "true", "NBA_MAX_BATCH": "0"}, "max_batch"),
    ],
)
def test_serve_refuses_bad_settings(env: dict[str, str], match: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert result.exit_code != 0
    assert match in result.output


def test_serve_help() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--workers" in result.output
