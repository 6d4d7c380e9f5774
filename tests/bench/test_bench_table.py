"""bench/record.py and bench/table.py: benchmark records and the README's table
generated from them."""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from nba.paths import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


record = _load("record")
table = _load("table")


def _record(
    finished: str, value: float, *, measure: str = "`nba --help`", cpu: str = "AMD EPYC"
) -> dict[str, Any]:
    fig = record.Figure(
        measure, value, "CPU s", 0.04, "`python -c pass`", ratio_name="× pass",
        goal="≤ 0.5 CPU s", met=value <= 0.5,
    )  # fmt: skip
    rec = record.Record("bench/startup.py", ["--repeat", "5"], [fig], finished=finished,
                        commit="abc1234", machine={"cpu": cpu, "cores": 2, "memory_gib": 23.5,
                        "python": "3.11.7", "system": "Linux 6"}, load=(0.5, 1.25))  # fmt: skip
    return dict(json.loads(rec.to_json()))


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_figure_ratio_defaults_to_value_over_reference_and_refuses_bad_values() -> None:
    f = record.Figure("x", 3.0, "s", reference=1.5, reference_name="y")
    assert f.ratio == 2.0
    assert record.Figure("x", 3.0, "s").ratio is None  # no reference, no ratio
    with pytest.raises(ValueError, match="figure 'x': value must be finite, got nan"):
        record.Figure("x", float("nan"), "s")
    with pytest.raises(ValueError, match="met is given without a goal"):
        record.Figure("x", 1.0, "s", met=True)
    with pytest.raises(ValueError, match="needs a measure"):
        record.Figure(" ", 1.0, "s")


def test_publish_prints_and_appends_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"kept": "a line already there"}\n')
    monkeypatch.setenv(record.RECORDS_ENV, str(path))
    figs = [record.Figure("y", 2.0, "s", goal="≤ 3 s", met=True)]
    rec = record.publish("bench/x.py", figs, ["--n", "3"])
    printed = capsys.readouterr().out
    lines = path.read_text().splitlines()
    assert lines[0] == '{"kept": "a line already there"}'  # nothing already there is lost
    assert printed == record.PREFIX + lines[1] + "\n"
    back = json.loads(lines[1])
    assert back["argv"] == ["--n", "3"] and back["figures"][0]["value"] == 2.0
    assert back["machine"] == rec.machine and back["machine"]["cores"] >= 1
    with pytest.raises(ValueError, match=r"bench/x\.py: a record needs at least one figure"):
        record.publish("bench/x.py", [])


def test_table_keeps_the_newest_figure_of_each_command_and_measure(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "r.jsonl",
        [
            _record("2026-12-02T10:00:00+00:00", 0.61),
            _record("2026-12-02T11:00:00+00:00", 0.42, measure="slowest group"),
            _record("2026-12-02T12:00:00+00:00", 0.11),
            _record("2026-12-02T09:00:00+00:00", 0.9),  # older, read last: not shown
        ],
    )
    rows = table.latest(table.read_records([path]))
    assert [(r.figure["measure"], r.figure["value"]) for r in rows] == [
        ("`nba --help`", 0.11),
        ("slowest group", 0.42),
    ]
    text = table.render(rows)
    assert text.startswith("Machine: AMD EPYC, 2 cores, 23.5 GiB, Python 3.11.7, Linux 6.\n")
    assert (
        "| `bench/startup.py --repeat 5` | `nba --help` | 0.11 CPU s | `python -c pass`: "
        "0.04 CPU s | 2.75× pass | ≤ 0.5 CPU s: met | 2026-12-02 12:00 UTC, load 0.5–1.2, "
        "`abc1234` |"
    ) in text.splitlines()
    slow = _record("2026-12-02T13:00:00+00:00", 0.6, cpu="Intel Xeon")
    two = table.render(table.latest(table.read_records([path, _write(tmp_path / "b", [slow])])))
    # two machines: each is named and each row says which it ran on
    assert "- machine A: Intel Xeon," in two and "- machine B: AMD EPYC," in two
    newest = next(ln for ln in two.splitlines() if "| `nba --help` |" in ln)
    assert "| 0.6 CPU s |" in newest and "≤ 0.5 CPU s: **not met**" in newest
    assert newest.endswith(", machine A |")
    assert next(ln for ln in two.splitlines() if "slowest group" in ln).endswith(", machine B |")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"benchmark": "b"\n', r"r.jsonl:1: not a JSON record"),
        ("\n[1, 2]\n", r"r.jsonl:2: a record is a JSON object, got list"),
        ('{"benchmark": "b", "argv": []}\n', r"r.jsonl:1: the record lacks figures, finished"),
    ],
)
def test_bad_records_are_named_by_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(content)
    with pytest.raises(table.RecordError, match=message):
        table.read_records([path])


def test_a_figure_without_its_value_is_named(tmp_path: Path) -> None:
    rec = _record("2026-12-02T10:00:00+00:00", 0.2)
    del rec["figures"][0]["value"]
    path = _write(tmp_path / "r.jsonl", [_record("2026-12-02T09:00:00+00:00", 0.3), rec])
    with pytest.raises(table.RecordError, match=r"r.jsonl:2: figure 1 lacks value"):
        table.read_records([path])


def test_readme_block_is_rewritten_and_checked(tmp_path: Path) -> None:
    records = _write(tmp_path / "r.jsonl", [_record("2026-12-02T10:00:00+00:00", 0.2)])
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{table.START}\nold\n{table.END}\n\nafter\n")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(BENCH / "table.py"), str(records), "--readme", str(readme),
             *extra], capture_output=True, text=True, check=False,
        )  # fmt: skip

    stale = run("--check")
    assert stale.returncode == 1 and "is not the records'" in stale.stderr
    assert run().returncode == 0
    text = readme.read_text()
    assert text.startswith(f"# t\n\n{table.START}\nMachine: AMD EPYC")
    assert text.endswith(f"`abc1234` |\n{table.END}\n\nafter\n") and "old" not in text
    assert run("--check").returncode == 0
    readme.write_text("no markers here\n")
    missing = run()
    assert missing.returncode == 2 and "needs exactly one '<!-- bench-table -->'" in missing.stderr
    assert readme.read_text() == "no markers here\n"  # a refused rewrite changes nothing


@pytest.mark.parametrize("name", ["record", "table", "suite"])
def test_the_examples_in_the_docstrings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/ is not among the suite's doctest paths; its modules' examples run here."""
    monkeypatch.syspath_prepend(str(BENCH))  # their own imports of each other
    result = doctest.testmod(_load(name))
    assert result.attempted > 0 and result.failed == 0


def test_the_commit_is_dirty_for_code_changes_not_for_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record names its commit; appending to the committed records file (what every
    run does) does not make it ``-dirty``, a change to the code does."""
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "record.py").write_text((BENCH / "record.py").read_text())
    (repo / "bench" / "records.jsonl").write_text("{}\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "--short=10", "HEAD")
    spec = importlib.util.spec_from_file_location("repo_record", repo / "bench" / "record.py")
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "repo_record", copy)  # its dataclasses look it up
    spec.loader.exec_module(copy)
    monkeypatch.setenv(record.RECORDS_ENV, str(repo / "bench" / "records.jsonl"))
    with open(repo / "bench" / "records.jsonl", "a") as fh:
        fh.write("{}\n")
    assert copy._commit() == head
    with open(repo / "bench" / "record.py", "a") as fh:
        fh.write("# changed\n")
    assert copy._commit() == f"{head}-dirty"


def test_the_readme_table_is_the_committed_records() -> None:
    """The README's performance table is what bench/table.py makes of the records in
    bench/records.jsonl, as the README says (the command is run as written there)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    command = ".venv/bin/python bench/table.py bench/records.jsonl --readme README.md --check"
    assert command in readme
    out = subprocess.run(
        [sys.executable, *command.split()[1:]],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
