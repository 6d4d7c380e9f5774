"""Every `nba` subcommand (and sub-subcommand) answers --help."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from nba_cli.main import SUBCOMMANDS, main


def _all_paths() -> list[list[str]]:
    ctx = click.Context(main)
    paths: list[list[str]] = [[]]
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None, name
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths.extend([name, sub] for sub in cmd.list_commands(ctx))
    return paths


@pytest.mark.parametrize("path", _all_paths(), ids=lambda p: " ".join(p) or "nba")
def test_help_for_every_command(path: list[str]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_registered_commands_are_listed() -> None:
    listed = set(main.list_commands(click.Context(main)))
    assert listed <= set(SUBCOMMANDS)
    assert "simulate" in listed


def test_unknown_command_fails_clearly() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code != 0
    assert "No such command" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nba_cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "simulate" in out.stdout
