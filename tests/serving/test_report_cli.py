"""``nba report`` refuses bad input with one line naming it, and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nba_cli.main import main
from serving.store import EventStore


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "events.db"
    EventStore(db).close()
    return db


@pytest.mark.parametrize(
    ("args", "env", "match"),
    [
        (["--since", "2026-01-05", "--until", "2026-01-11"], {}, "Missing option '--out'"),
        (["--since", "5 Jan", "--until", "2026-01-11"], {}, "--since: '5 Jan' is neither a date"),
        (["--since", "2026-01-12", "--until", "2026-01-11"], {}, "is not before until"),
        (
            ["--since", "2026-01-05", "--until", "2026-01-11", "--holdout-policy", "oracle"],
            {},
            "'oracle' is not one of",
        ),
        (
            ["--since", "2026-01-05", "--until", "2026-01-11"],
            {"NBA_HOLDOUT_POLICY": "random"},
            "NBA_HOLDOUT_POLICY: 'random' is not one of uniform, campaign, no_contact",
        ),
        (
            ["--since", "2026-01-05", "--until", "2026-01-11", "--alpha", "1.5"],
            {},
            "--alpha",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, store: Path, args: list[str], env: dict[str, str], match: str
) -> None:
    out = tmp_path / "weekly"
    extra = [] if "Missing" in match else ["--out", str(out)]
    res = CliRunner().invoke(main, ["report", *args, *extra, "--store", str(store)], env=env)
    assert res.exit_code != 0
    assert match in res.output, res.output
    assert not out.exists()


def test_missing_store_is_named_and_not_created(tmp_path: Path) -> None:
    gone = tmp_path / "gone.db"
    res = CliRunner().invoke(
        main,
        ["report", "--since", "2026-01-05", "--until", "2026-01-11", "--out", str(tmp_path / "o")],
        env={"NBA_STORE_PATH": str(gone)},
    )
    assert res.exit_code == 2 and f"--store: no event store database at {gone}" in res.output
    assert not gone.exists()


def test_bad_value_definition_names_file_and_line(tmp_path: Path, store: Path) -> None:
    vdef = tmp_path / "value.toml"
    vdef.write_text('name = "v"\nversion = "1"\n[weights]\nopened = 1\nprescribed = 9\n')
    res = CliRunner().invoke(
        main,
        [
            "report",
            "--since",
            "2026-01-05",
            "--until",
            "2026-01-11",
            "--out",
            str(tmp_path / "o"),
            "--store",
            str(store),
            "--value-def",
            str(vdef),
        ],
    )
    assert res.exit_code == 1
    assert f"{vdef}:5: field 'weights.prescribed': unknown outcome type" in res.output
    assert not (tmp_path / "o").exists()


def test_an_empty_period_still_reports(tmp_path: Path, store: Path) -> None:
    out = tmp_path / "o"
    res = CliRunner().invoke(
        main,
        [
            "report",
            "--since",
            "2026-01-05",
            "--until",
            "2026-01-11",
            "--out",
            str(out),
            "--store",
            str(store),
            "--holdout-policy",
            "no_contact",
        ],
    )
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "| all | 0 | 0 | 0 | — | — | 0.00 | 0.00 | 0.00 |" in md
    assert "got `no_contact`" in md


def test_the_report_reads_a_postgresql_store_named_by_nba_store_url(
    tmp_path: Path, postgres: Any
) -> None:
    url = postgres.create_database("report_cli")
    EventStore(url).close()
    out = tmp_path / "o"
    args = ["report", "--since", "2026-01-05", "--until", "2026-01-11", "--out", str(out)]
    res = CliRunner().invoke(main, args, env={"NBA_STORE_URL": url, "NBA_STORE_PATH": "x.db"})
    assert res.exit_code == 0, res.output
    assert "| all | 0 | 0 | 0 |" in (out / "report.md").read_text()
    bad = CliRunner().invoke(main, args, env={"NBA_STORE_URL": "postgresql://u@h:5432"})
    assert bad.exit_code != 0 and "names no database" in bad.output
