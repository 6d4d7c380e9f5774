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


def test_short_help_matches_each_command_and_listing_imports_no_layer() -> None:
    from nba_cli.main import SHORT_HELP

    ctx = click.Context(main)
    assert set(SHORT_HELP) == set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        assert SHORT_HELP[name] == cmd.get_short_help_str(limit=80), name
    # `nba --help` in a fresh interpreter lists every command without importing them
    code = (
        "import sys, io, contextlib\n"
        "from nba_cli.main import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "from nba_cli.main import SUBCOMMANDS\n"
        "mods = [t.split(':')[0] for t in SUBCOMMANDS.values()]\n"
        "heavy = [m for m in (*mods, 'mlflow', 'vowpalwabbit', 'duckdb', 'pyarrow', 'fastapi')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n"
        "print(buf.getvalue())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, _, text = out.stdout.partition("\n")
    assert first == "[]", first
    for name, line in SHORT_HELP.items():
        assert name in text and line[:40] in text


#: what no ``--help`` may import (each costs a noticeable part of a second)
HEAVY = (
    "mlflow",
    "duckdb",
    "pyarrow",
    "vowpalwabbit",
    "fastapi",
    "uvicorn",
    "pandas",
    "matplotlib",
    "numpy",
    "scipy",
)

HELP_PROBE = (
    "import sys, io, contextlib\n"
    "from nba_cli.main import main\n"
    "buf = io.StringIO()\n"
    "with contextlib.redirect_stdout(buf):\n"
    "    try:\n"
    "        main(sys.argv[1:], prog_name='nba')\n"
    "    except SystemExit as exc:\n"
    "        assert exc.code in (0, None), exc.code\n"
    "assert 'Usage: nba' in buf.getvalue(), buf.getvalue()\n"
    f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
)


@pytest.mark.parametrize(
    "argv",
    [[], *([name] for name in sorted(SUBCOMMANDS)), ["logs", "export"], ["logs", "import"]],
    ids=lambda a: " ".join(a) or "nba",
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    """Parsing ``--help`` of the command and of every subcommand group leaves the
    heavy libraries unimported (they load inside the functions that use them)."""
    out = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", (argv, out.stdout)


def test_experiment_group_lists_its_commands_lazily() -> None:
    from experiments.cli import SHORT_HELP as EXP_HELP
    from experiments.cli import SUBCOMMANDS as EXP_CMDS
    from experiments.cli import experiment

    ctx = click.Context(experiment)
    assert set(EXP_HELP) == set(EXP_CMDS) == set(experiment.list_commands(ctx))
    for name in EXP_CMDS:
        cmd = experiment.get_command(ctx, name)
        assert cmd is not None
        assert EXP_HELP[name] == cmd.get_short_help_str(limit=60), name
    assert experiment.get_command(ctx, "no-such-experiment") is None
