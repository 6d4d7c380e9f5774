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


def _fresh_python(code: str, cwd: Path) -> str:
    """Run ``code`` in a new interpreter (pyarrow's memory of pandas is per process)."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_export_dsjson_as_the_program_leaves_pandas_unimported(
    tmp_path: Path, logs_dir: Path
) -> None:
    here = tmp_path / "here.dsjson"
    args = ["logs", "export", "--logs", str(logs_dir), "--format", "dsjson", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--out", str(here)])
    assert res.exit_code == 0, res.output
    fresh = tmp_path / "fresh.dsjson"
    code = (  # as `python -m nba_cli.main logs export ...` runs, then exits
        "import atexit, gc, runpy, sys\n"
        "import nba_cli\n"
        "atexit.register(lambda: print('pandas' in sys.modules, gc.isenabled(),"
        " nba_cli.PROCESS_ENDS_WITH_COMMAND))\n"
        f"sys.argv = ['nba', *{[*args, '--out', str(fresh)]!r}]\n"
        "runpy.run_module('nba_cli.main', run_name='__main__')\n"
    )
    assert _fresh_python(code, tmp_path).splitlines()[-1] == "False True True"
    assert fresh.read_bytes() == here.read_bytes()


def test_export_under_clirunner_leaves_pyarrow_aware_of_pandas(
    tmp_path: Path, logs_dir: Path
) -> None:
    code = (  # a process that goes on after the command: pandas objects still known
        "from click.testing import CliRunner\n"
        "from nba_cli import main\n"
        f"args = ['logs', 'export', '--logs', {str(logs_dir)!r}, '--format', 'dsjson']\n"
        f"res = CliRunner().invoke(main.main, [*args, '--out', {str(tmp_path / 'o.dsjson')!r}])\n"
        "assert res.exit_code == 0, res.output\n"
        "import pandas as pd, pyarrow as pa\n"
        "import nba_cli\n"
        "print(pa.array(pd.Series(pd.Categorical(['a', 'b']))).type,"
        " nba_cli.PROCESS_ENDS_WITH_COMMAND)\n"
    )
    out = _fresh_python(code, tmp_path).splitlines()[-1]
    assert out == "dictionary<values=large_string, indices=int8, ordered=0> False"


def test_arrow_without_pandas_still_lets_pyarrow_use_pandas(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import pyarrow as pa\n"
        "from nba_cli.logs import _arrow_without_pandas\n"
        "_arrow_without_pandas()\n"
        "a = pa.array(np.arange(3)); b = pa.array([True, None]); s = pa.scalar(2, pa.int64())\n"
        "print('pandas' in sys.modules, a.to_pylist(), b.to_pylist(), s.as_py())\n"
        "df = pa.table({'x': [1, 2]}).to_pandas()\n"  # imports pandas when asked to
        "print(type(df).__name__, 'pandas' in sys.modules, list(df['x']))\n"
    )
    out = _fresh_python(code, tmp_path).splitlines()
    assert out == ["False [0, 1, 2] [True, None] 2", "DataFrame True [1, 2]"]
