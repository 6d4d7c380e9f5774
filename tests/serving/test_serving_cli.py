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


def test_serve_runs_uvicorn_on_the_installed_parser_and_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """httptools and uvloop are in the lock file: ``nba serve`` asks uvicorn for
    them, and falls back to h11 and asyncio's loop where they are missing."""
    import importlib.util

    import uvicorn

    from serving import cli

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    env = {"NBA_AUTH_DISABLED": "true", "NBA_STORE_PATH": f"{tmp_path}/e.db"}
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert calls[0]["http"] == "httptools" and calls[0]["loop"] == "uvloop"
    assert "http=httptools  loop=uvloop" in result.output

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("httptools", "uvloop") else real(name, *a),
    )
    assert cli.server_options() == {"http": "h11", "loop": "asyncio"}
