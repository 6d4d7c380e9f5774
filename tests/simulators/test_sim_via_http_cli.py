"""``nba simulate --via``: options that make no sense with a service, and a
service that cannot be reached, fail with messages that say what to do."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from nba_cli.main import main

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], "Missing option '--out' (required unless --via)"),
        (["--out", "x", "--via-concurrency", "2"], "--via-concurrency applies only with --via"),
        (["--via", DEAD, "--via-concurrency", "0"], "--via-concurrency"),
        (["--via", DEAD, "--policy", "oracle"], "--policy does not apply with --via"),
        (["--via", DEAD, "--epsilon", "0.2"], "--epsilon does not apply with --via"),
        (["--via", DEAD, "--reward-def", "r.toml"], "--reward-def does not apply with --via"),
        (["--via", "127.0.0.1:8000"], "'127.0.0.1:8000' is not an http(s) URL"),
        (["--via", DEAD], f"POST {DEAD}/v1/hcps:import: Connect"),
        (["--via", DEAD, "--hcps", "0"], "--hcps"),
        (["--via", DEAD, "--catalog", "no/such/catalog.toml"], "no/such/catalog.toml"),
    ],
)
def test_via_bad_inputs(args: list[str], match: str) -> None:
    res = CliRunner().invoke(main, ["simulate", "--hcps", "10", "--days", "1", "--quiet", *args])
    assert res.exit_code != 0
    assert match in res.output, res.output
