"""`nba logs export` and `nba logs import` on real log directories."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.logs import io
from nba.logs.schema import JOINED
from nba.reward import RewardDefinition
from nba_cli.main import main


@pytest.fixture
def logs_dir(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> Path:
    root = tmp_path / "logs"
    dec = make_decisions(30, step=timedelta(hours=5), activated=[i != 3 for i in range(30)])
    io.append(root, "decisions", dec)
    ids = dec.column("event_id").to_pylist()
    tss = dec.column("ts").to_pylist()
    rows = [(e, t + timedelta(hours=1), "opened") for e, t in zip(ids, tss, strict=True)][::2]
    rows.append((ids[1], tss[1] + timedelta(days=30), "clicked"))  # late
    io.append(root, "outcomes", make_outcomes(rows))
    Catalog.default().write_snapshot(root / "catalog")
    return root


def _counts(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def test_export_parquet(tmp_path: Path, logs_dir: Path) -> None:
    out = tmp_path / "joined.parquet"
    res = CliRunner().invoke(
        main, ["logs", "export", "--logs", str(logs_dir), "--format", "parquet", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    table = pq.read_table(out)
    assert table.schema.equals(JOINED, check_metadata=False)
    assert table.num_rows == 29  # one never-activated decision left out
    c = _counts(res.output)
    assert c["reward definition"] == RewardDefinition.default().id
    assert (c["decisions"], c["late_outcomes"], c["unselected_outcomes"]) == ("29", "1", "0")


def test_export_dsjson_with_dates_and_reward_def(tmp_path: Path, logs_dir: Path) -> None:
    rd = tmp_path / "r.toml"
    rd.write_text('name = "opens"\nversion = "2"\nwindow_days = 1\n[weights]\nopened = 1.0\n')
    out = tmp_path / "out.dsjson"
    day = "2026-01-06"
    args = ["logs", "export", "--logs", str(logs_dir), "--reward-def", str(rd)]
    args += ["--format", "dsjson", "--out", str(out), "--since", day, "--until", day, "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines and all(x["Timestamp"].startswith(day) for x in lines)
    assert {x["_label_cost"] for x in lines} <= {0.0, -1.0}
    assert _counts(res.output)["reward definition"].startswith("opens@2#")
    # the catalog snapshot was found: actions carry topic features
    assert all(len(a["T"]) == 1 for x in lines for a in x["c"]["_multi"])


def test_import_then_export_again(tmp_path: Path, logs_dir: Path) -> None:
    dsjson = tmp_path / "x.dsjson"
    runner = CliRunner()
    base = ["logs", "export", "--logs", str(logs_dir), "--format", "dsjson", "--quiet"]
    res = runner.invoke(main, [*base, "--include-inactive", "--out", str(dsjson)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "imported"
    res = runner.invoke(
        main, ["logs", "import", "--format", "dsjson", str(dsjson), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    c = _counts(res.output)
    assert (c["decisions"], c["not_activated"], c["outcomes"]) == ("30", "1", "15")
    assert io.read(out, "decisions").num_rows == 30
    # the imported log exports again, with the same features and no catalog warning
    again = tmp_path / "again.dsjson"
    base2 = ["logs", "export", "--logs", str(out), "--format", "dsjson", "--quiet"]
    res = runner.invoke(main, [*base2, "--include-inactive", "--out", str(again)])
    assert res.exit_code == 0, res.output
    assert "no catalog snapshot" not in res.output
    first = [json.loads(x) for x in dsjson.read_text().splitlines()]
    second = [json.loads(x) for x in again.read_text().splitlines()]
    assert [x["c"] for x in first] == [x["c"] for x in second]
    assert [x["p"] for x in first] == [x["p"] for x in second]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--format", "parquet"], "Missing option '--out'"),
        (["--format", "xml", "--out", "o"], "'xml' is not one of"),
        (["--format", "parquet", "--out", "o", "--since", "5 Jan"], "'5 Jan' does not match"),
        (["--format", "parquet", "--out", "o"], "give the source of the decisions: --logs DIR"),
    ],
    ids=["no out", "bad format", "bad date", "no source"],
)
def test_export_usage_errors(args: list[str], match: str) -> None:
    res = CliRunner().invoke(main, ["logs", "export", *args])
    assert res.exit_code == 2
    assert match in res.output


def test_export_reports_bad_inputs(tmp_path: Path, logs_dir: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nversion = "1"\naggregation = "mean"\n[weights]\nopened = 1\n')
    out = tmp_path / "o.parquet"
    runner = CliRunner()
    fmt = ["--format", "parquet", "--out", str(out)]
    res = runner.invoke(
        main, ["logs", "export", "--logs", str(logs_dir), "--reward-def", str(bad), *fmt]
    )
    assert res.exit_code == 1
    assert "bad.toml:3: field 'aggregation'" in res.output
    res = runner.invoke(main, ["logs", "export", "--logs", str(tmp_path / "none"), *fmt])
    assert res.exit_code == 1 and "not a log directory" in res.output
    assert not out.exists()


def test_import_reports_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "f.dsjson"
    f.write_text('{"EventId": "x"}\n')
    res = CliRunner().invoke(main, ["logs", "import", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "f.dsjson:1: field 'Timestamp'" in res.output


def test_export_notes_a_missing_catalog_snapshot(tmp_path: Path, logs_dir: Path) -> None:
    for p in (logs_dir / "catalog").iterdir():
        p.unlink()
    out = tmp_path / "o.dsjson"
    args = ["logs", "export", "--logs", str(logs_dir), "--format", "dsjson", "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"no catalog snapshot for {Catalog.default().version}" in res.output
    first = json.loads(out.read_text().splitlines()[0])
    # the packaged catalog has that version: features are the same as with the snapshot
    assert all(len(a["T"]) == 1 for a in first["c"]["_multi"])


def test_export_runs_with_the_collector_off_and_gives_it_back(
    tmp_path: Path, logs_dir: Path
) -> None:
    import gc

    from nba_cli.logs import _without_collector, export_cmd

    seen: list[bool] = []

    @_without_collector
    def command(fail: bool) -> str:
        seen.append(gc.isenabled())
        if fail:
            raise RuntimeError("boom")
        return "done"

    assert gc.isenabled()
    assert command(False) == "done" and gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"):
        command(True)
    assert seen == [False, False] and gc.isenabled()  # back on after an error too
    gc.disable()
    try:
        command(False)
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()
    # the export command is the wrapped one, and it still writes its file
    assert export_cmd.callback is not None and hasattr(export_cmd.callback, "__wrapped__")
    out = tmp_path / "o.dsjson"
    args = ["logs", "export", "--logs", str(logs_dir), "--format", "dsjson", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0 and gc.isenabled()
