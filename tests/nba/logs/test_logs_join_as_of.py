"""The join's ``as_of`` horizon: open reward windows are left out and counted,
outcomes after ``as_of`` are ignored and counted, and the default horizon of a
log directory comes from its manifest or its latest event."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.logs import io
from nba.logs.io import LogError
from nba.logs.join import (
    JoinCounts,
    OpenWindows,
    default_as_of,
    join_rewards,
    load_joined,
    parse_as_of,
    update_manifest,
)
from nba.reward import RewardDefinition
from nba_cli.main import main

from .conftest import T0, MakeDecisions, MakeOutcomes

D = timedelta(days=1)
H = timedelta(hours=1)
US = timedelta(microseconds=1)
RD = RewardDefinition(
    name="t", version="1", weights={"opened": 0.2, "clicked": 0.6, "meeting_held": 1.0}
)
# decisions at T0, T0 + 1d, T0 + 2d; window 14 days. At AS_OF = T0 + 15d the
# first window closed a day ago, the second closes exactly now, the third is open.
AS_OF = T0 + 15 * D


def _fixture(make_decisions: MakeDecisions, make_outcomes: MakeOutcomes) -> tuple:
    dec = make_decisions(3, step=D)
    out = make_outcomes(
        [
            ("e00000", T0 + H, "opened"),  # used
            ("e00001", AS_OF, "clicked"),  # at the window end and at as_of: used
            ("e00002", T0 + 2 * D + H, "opened"),  # of the open decision
            ("e00001", AS_OF + US, "meeting_held"),  # after as_of (and late)
            ("e00002", AS_OF + US, "clicked"),  # after as_of, inside e00002's window
        ]
    )
    return dec, out


def _sums(c: JoinCounts) -> int:
    return (
        c.outcomes_used
        + c.late_outcomes
        + c.early_outcomes
        + c.unknown_event_outcomes
        + c.duplicate_outcomes
        + c.unselected_outcomes
        + c.outcomes_after_as_of
        + c.open_window_outcomes
    )


def test_open_windows_are_left_out_and_counted(make_decisions, make_outcomes) -> None:
    dec, out = _fixture(make_decisions, make_outcomes)
    res = join_rewards(dec, out, RD, as_of=AS_OF)
    t = res.table
    assert t.column("event_id").to_pylist() == ["e00000", "e00001"]
    assert t.column("reward").to_pylist() == [0.2, 0.6]
    c = res.counts
    assert (c.decisions, c.open_window_decisions, c.open_window_outcomes) == (2, 1, 1)
    assert (c.outcomes_after_as_of, c.outcomes_used, c.late_outcomes) == (2, 2, 0)
    assert c.outcomes == 5 == _sums(c)
    assert res.as_of == AS_OF and res.open_windows is OpenWindows.EXCLUDE
    assert res.horizon_lines()[1] == (
        "1 decisions with open reward windows left out (as of 2026-01-20T09:00:00Z)"
    )
    assert res.horizon_lines()[2] == "2 outcomes stamped after 2026-01-20T09:00:00Z ignored"


def test_one_microsecond_earlier_the_closing_window_is_open(make_decisions, make_outcomes):
    dec, out = _fixture(make_decisions, make_outcomes)
    res = join_rewards(dec, out, RD, as_of=AS_OF - US)
    assert res.table.column("event_id").to_pylist() == ["e00000"]
    c = res.counts
    # e00001's click at AS_OF is now after as_of too
    assert (c.open_window_decisions, c.outcomes_after_as_of, c.open_window_outcomes) == (2, 3, 1)
    assert c.outcomes == _sums(c)


def test_decisions_after_as_of_are_open(make_decisions, make_outcomes) -> None:
    dec, out = _fixture(make_decisions, make_outcomes)
    res = join_rewards(dec, out, RD, as_of=T0 - US)
    assert res.table.num_rows == 0
    assert res.counts.open_window_decisions == 3
    assert res.counts.outcomes_after_as_of == 5


def test_partial_is_explicit_and_says_it_is_biased(make_decisions, make_outcomes) -> None:
    dec, out = _fixture(make_decisions, make_outcomes)
    res = join_rewards(dec, out, RD, as_of=AS_OF, open_windows=OpenWindows.PARTIAL)
    assert res.table.column("reward").to_pylist() == [0.2, 0.6, 0.2]  # e00002's click cut off
    c = res.counts
    assert (c.decisions, c.open_window_decisions, c.open_window_outcomes) == (3, 1, 0)
    assert c.outcomes == _sums(c)
    assert res.horizon_lines()[1].startswith("BIASED: 1 decisions with open reward windows kept")


def test_without_as_of_every_outcome_is_final(make_decisions, make_outcomes) -> None:
    dec, out = _fixture(make_decisions, make_outcomes)
    res = join_rewards(dec, out, RD)
    assert res.table.column("reward").to_pylist() == [0.2, 0.6, 0.8]
    assert res.counts.late_outcomes == 1  # e00001's meeting, one microsecond after its window
    assert res.counts.open_window_decisions == res.counts.outcomes_after_as_of == 0


def test_open_windows_must_be_a_member(make_decisions, make_outcomes) -> None:
    dec, out = _fixture(make_decisions, make_outcomes)
    with pytest.raises(LogError, match="open_windows: expected an OpenWindows member"):
        join_rewards(dec, out, RD, as_of=AS_OF, open_windows="partial")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-25", datetime(2026, 1, 25, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-01-25T10:00:00Z", datetime(2026, 1, 25, 10, tzinfo=UTC)),
        ("2026-01-25T10:00:00+01:00", datetime(2026, 1, 25, 9, tzinfo=UTC)),
        ("2026-01-25 10:00:00.5z", datetime(2026, 1, 25, 10, 0, 0, 500000, tzinfo=UTC)),
        (date(2026, 1, 25), datetime(2026, 1, 25, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_parse_as_of(text: str | date, expected: datetime) -> None:
    assert parse_as_of(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("yesterday", r"--as-of: 'yesterday' is not a date \(YYYY-MM-DD\) or an ISO 8601"),
        ("2026-13-01", r"--as-of: '2026-13-01' is not a date"),
        ("2026/01/25", r"--as-of: '2026/01/25' is not a date"),
        ("", r"--as-of: '' is not a date"),
        ("2026-01-25T10:00:00", r"--as-of: '2026-01-25T10:00:00' has no time zone"),
        (datetime(2026, 1, 25), r"--as-of: '2026-01-25T00:00:00' has no time zone"),
    ],
)
def test_parse_as_of_refuses(text: str | datetime, match: str) -> None:
    with pytest.raises(LogError, match=match):
        parse_as_of(text)


@pytest.fixture
def log_dir(tmp_path: Path, make_decisions, make_outcomes) -> Path:
    dec, out = _fixture(make_decisions, make_outcomes)
    root = tmp_path / "log"
    io.append(root, "decisions", dec)
    io.append(root, "outcomes", out)
    return root


def test_default_is_the_latest_outcome(log_dir: Path) -> None:
    assert default_as_of(log_dir) == (AS_OF + US, "latest outcome in the log")
    res = load_joined(log_dir, RD)
    assert res.as_of == AS_OF + US
    # the window of e00002 closes at T0 + 16d: still open at the latest outcome
    assert res.table.column("event_id").to_pylist() == ["e00000", "e00001"]
    assert res.counts.open_window_decisions == 1
    assert res.counts.outcomes == _sums(res.counts)


def test_manifest_as_of_wins_and_explicit_as_of_wins_over_it(log_dir: Path) -> None:
    update_manifest(log_dir, {"as_of": (T0 + 20 * D).isoformat(), "as_of_basis": "test writer"})
    res = load_joined(log_dir, RD)
    assert res.as_of == T0 + 20 * D and res.as_of_basis == "test writer, from manifest.json"
    assert res.table.column("reward").to_pylist() == [0.2, 0.6, 0.8]
    res = load_joined(log_dir, RD, as_of="2026-01-19")
    assert res.as_of_basis == "given with --as-of"
    assert res.table.column("event_id").to_pylist() == ["e00000"]


def test_manifest_outcomes_complete_means_no_horizon(log_dir: Path) -> None:
    update_manifest(log_dir, {"writer": "test", "outcomes_complete": True})
    res = load_joined(log_dir, RD)
    assert res.as_of is None and res.counts.open_window_decisions == 0
    assert res.table.num_rows == 3
    assert res.horizon_lines() == [
        "reward windows: no as_of horizon (outcomes complete (test), from manifest.json)"
    ]


def test_without_outcomes_the_latest_decision(tmp_path: Path, make_decisions) -> None:
    root = tmp_path / "log"
    io.append(root, "decisions", make_decisions(3, step=D))
    as_of, basis = default_as_of(root)
    assert as_of == T0 + 2 * D and "latest decision" in basis
    assert load_joined(root, RD).counts.open_window_decisions == 3


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ("{not json", r"manifest.json: not readable JSON"),
        ("[1, 2]", r"manifest.json: expected a JSON object, got list"),
        ('{"as_of": "soon"}', r"manifest.json: field 'as_of': 'soon' is not a date"),
        ('{"as_of": "2026-01-20T00:00:00"}', r"field 'as_of': .* has no time zone"),
    ],
)
def test_bad_manifest_is_refused(log_dir: Path, manifest: str, match: str) -> None:
    (log_dir / "manifest.json").write_text(manifest)
    with pytest.raises(LogError, match=match):
        load_joined(log_dir, RD)


@pytest.mark.parametrize(
    "command",
    [
        ["logs", "export", "--format", "parquet", "--out", "x.parquet"],
        ["train", "--no-mlflow"],
        ["evaluate", "--policy", "uniform", "--no-mlflow"],
        ["promote", "--dry-run"],
    ],
)
@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("tomorrow", "Invalid value for '--as-of': 'tomorrow' is not a date (YYYY-MM-DD)"),
        ("2026-01-25T10:00", "Invalid value for '--as-of': '2026-01-25T10:00' has no time zone"),
    ],
)
def test_commands_refuse_a_bad_as_of(
    log_dir: Path, command: list[str], value: str, match: str
) -> None:
    res = CliRunner().invoke(main, [*command, "--logs", str(log_dir), "--as-of", value])
    assert res.exit_code == 2, res.output
    assert match in res.output
    assert not (log_dir.parent / "x.parquet").exists()


def test_logs_export_prints_the_horizon(tmp_path: Path, log_dir: Path) -> None:
    out = tmp_path / "joined.parquet"
    args = ["logs", "export", "--logs", str(log_dir), "--format", "parquet", "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--as-of", "2026-01-20T09:00:00Z"])
    assert res.exit_code == 0, res.output
    assert "reward windows as of 2026-01-20T09:00:00Z (given with --as-of)" in res.output
    assert "1 decisions with open reward windows left out (as of 2026-01-20T09:00:00Z)" in (
        res.output
    )
    assert "open_window_decisions: 1" in res.output
    assert pq.read_table(out).column("event_id").to_pylist() == ["e00000", "e00001"]


def test_dsjson_import_declares_its_labels_final(tmp_path: Path, log_dir: Path) -> None:
    dsjson = tmp_path / "x.dsjson"
    args = ["logs", "export", "--logs", str(log_dir), "--format", "dsjson", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--as-of", "2100-01-01", "--out", str(dsjson)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "imported"
    res = CliRunner().invoke(main, ["logs", "import", str(dsjson), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["outcomes_complete"] is True
    res2 = load_joined(out, RewardDefinition.default())
    assert res2.table.num_rows == 3 and res2.as_of is None
