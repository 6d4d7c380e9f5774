"""``nba rules`` against a real event store file: validate, diff, apply, history,
rollback, dry-run; bad files and bad edits refused naming line and key, with the
rules in force untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nba.contact import ContactPolicy
from nba_cli.main import main
from serving import store_rules
from serving.rules import seed
from serving.store import EventStore

DEFAULT_TEXT = (Path(__file__).parents[2] / "nba" / "data" / "rules.toml").read_text()
DE_GAP = "\n[markets.DE.min_gap]\nhours = 72\n"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        seed(store, DEFAULT_TEXT, who="service start", comment="first start", markets=None)
    return path


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["rules", *args], catch_exceptions=False)
    return res.exit_code, res.output


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def in_force(db: Path) -> store_rules.RulesVersion:
    with EventStore(db) as store:
        rec = store_rules.get(store)
    assert rec is not None
    return rec


def test_validate_apply_history_rollback(db: Path, tmp_path: Path) -> None:
    new = write(tmp_path, "new.toml", DEFAULT_TEXT + DE_GAP)
    code, out = run("validate", new)
    assert code == 0 and "valid; version" in out and "DE: approval, consent" in out
    code, out = run("diff", new, "--store", str(db))
    assert code == 0 and "+[markets.DE.min_gap]" in out and "+hours = 72" in out
    code, out = run(
        "apply", new, "--store", str(db), "--comment", "DE: 3 days between touches", "--who", "ana"
    )
    assert code == 0 and "rules version 2" in out and "applied by ana" in out, out
    rec = in_force(db)
    assert rec.version == 2 and rec.who == "ana" and rec.comment == "DE: 3 days between touches"
    assert rec.rules_hash == ContactPolicy.loads(DEFAULT_TEXT + DE_GAP).version
    code, out = run("history", "--store", str(db))
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("*    2") and "apply" in lines[0] and "ana" in lines[0]
    assert "seed" in lines[1] and "service start" in lines[1]
    code, out = run("show", "--store", str(db))
    assert code == 0 and out == DEFAULT_TEXT + DE_GAP
    code, out = run("diff", "--store", str(db))  # against version 1: what a rollback changes
    assert code == 0 and "-hours = 72" in out
    code, out = run("rollback", "1", "--store", str(db), "--comment", "too strict", "--who", "bo")
    assert code == 0 and "rules version 3" in out and "the rules of version 1" in out
    rec = in_force(db)
    assert rec.version == 3 and rec.text == DEFAULT_TEXT and rec.action == "rollback"
    code, out = run("dry-run", new, "--store", str(db), "--days", "3")
    report = json.loads(out)
    assert code == 0 and report["decisions"] == 0 and report["current_version"] == 3


@pytest.mark.parametrize(
    ("args", "text", "match"),
    [
        (
            ["validate"],
            DEFAULT_TEXT + "\n[markets.ZZ]\nallowed_channels = ['email']\n",
            r"bad\.toml, line 69: rule 'markets\.ZZ': unknown market 'ZZ'",
        ),
        (
            ["apply", "--comment", "x"],
            DEFAULT_TEXT.replace("share = 0.05", "share = 1.5"),
            r"bad\.toml, line 66: rule 'holdout': 'share' must be in \[0, 1\)",
        ),
        (
            ["apply", "--comment", "x"],
            DEFAULT_TEXT + "\n[markets.DE]\nwebinar_cap = 1\n",
            r"line 70: rule 'markets\.DE': unknown key 'webinar_cap'",
        ),
        (
            ["apply", "--comment", "x"],
            DEFAULT_TEXT + "\n[[markets.FR.frequency_caps]]\nchannel = 'sms'\nmax = 1\ndays = 7\n",
            r"line 70: .*unknown channel 'sms'",
        ),
        (["apply", "--comment", "x"], "[min_gap\n", r"bad\.toml, line 1: not valid TOML"),
        (["apply", "--comment", "  "], DEFAULT_TEXT + DE_GAP, "a comment is required"),
        (["apply", "--comment", "x"], DEFAULT_TEXT, "same rules as version 1"),
        (
            ["apply", "--comment", "x", "--expected-version", "4"],
            DEFAULT_TEXT + DE_GAP,
            "version 1 is in force, not 4",
        ),
        (["diff", "--version", "1"], None, "give FILE or --version, not both"),
    ],
)
def test_bad_files_and_edits_leave_the_rules_in_force(
    db: Path, tmp_path: Path, args: list[str], text: str | None, match: str
) -> None:
    bad = write(tmp_path, "bad.toml", text if text is not None else DEFAULT_TEXT)
    store_args = [] if args[0] == "validate" else ["--store", str(db)]
    res = CliRunner().invoke(main, ["rules", args[0], bad, *args[1:], *store_args])
    assert res.exit_code != 0
    assert re.search(match, res.output), res.output
    rec = in_force(db)
    assert rec.version == 1 and rec.text == DEFAULT_TEXT


def test_store_commands_need_a_store(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["rules", "history", "--store", str(tmp_path / "none.db")])
    assert res.exit_code != 0 and "no event store database" in res.output
    res = CliRunner().invoke(
        main, ["rules", "rollback", "7", "--comment", "x", "--store", str(tmp_path / "none.db")]
    )
    assert res.exit_code != 0 and "no event store database" in res.output
    empty = tmp_path / "empty.db"
    EventStore(empty).close()
    res = CliRunner().invoke(main, ["rules", "show", "--store", str(empty)])
    assert res.exit_code != 0 and "no rules version is stored yet" in res.output
