"""The DSJSON export split between two processes (``export_dsjson(...,
workers=2)``: the rows' second half written by a forked child) writes the bytes
of the export in one process, raises the same error for a bad row wherever it
is, and leaves no part file behind; and the quick test for imported contexts
(:func:`nba.logs.dsjson._mentions`) never misses one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import nba.logs.dsjson as dsjson_mod
from nba.logs import io
from nba.logs.dsjson import (
    DsjsonError,
    _mentions,
    _span,
    export_dsjson,
    load_catalogs,
    window_pulls,
)
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from nba_cli.main import main as nba

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Any, pa.Table, Any]:
    out = tmp_path_factory.mktemp("sim") / "logs"
    args = ["simulate", "--hcps", "120", "--days", "14", "--slate-size", "3", "--seed", "11"]
    res = CliRunner().invoke(nba, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = load_joined(out, RD)
    table = result.table
    catalogs = load_catalogs(out, table.column("catalog_version").unique().to_pylist())
    outcomes = io.read(out, "outcomes")
    pulls = window_pulls(io.read(out, "touches"), table, RD.window_days, result.as_of)
    assert table.num_rows > 200 and pulls
    return table, catalogs, outcomes, pulls


def _with_context(table: pa.Table, changes: dict[int, str]) -> pa.Table:
    ctx = table.column("context").to_pylist()
    for i, text in changes.items():
        ctx[i] = text
    at = table.schema.get_field_index("context")
    return table.set_column(at, "context", pa.array(ctx, pa.string()))


def _export(
    table: pa.Table, inputs: tuple[Any, ...], path: Path, workers: int, bulk: bool = True
) -> bytes:
    _, catalogs, outcomes, pulls = inputs
    n = export_dsjson(
        table, path, catalogs, outcomes=outcomes, pulls=pulls, bulk=bulk, workers=workers
    )
    assert n == table.num_rows
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no part left
    return path.read_bytes()


def test_two_processes_write_the_bytes_of_one(inputs: tuple[Any, ...], tmp_path: Path) -> None:
    table = inputs[0]
    one = _export(table, inputs, tmp_path / "a" / "one.dsjson", workers=1)
    rowwise = _export(table, inputs, tmp_path / "r" / "rowwise.dsjson", workers=1, bulk=False)
    two = _export(table, inputs, tmp_path / "b" / "two.dsjson", workers=2)
    assert one == two == rowwise
    assert two.count(b"\n") == table.num_rows
    # odd row counts and tables of a few rows split too (the halves differ by one)
    for rows in (2, 3, 101):
        part = table.slice(7, rows)
        assert _export(part, inputs, tmp_path / f"o{rows}" / "x.dsjson", workers=1) == _export(
            part, inputs, tmp_path / f"t{rows}" / "x.dsjson", workers=2
        )


def test_foreign_rows_in_either_half_keep_their_place(
    inputs: tuple[Any, ...], tmp_path: Path
) -> None:
    table = inputs[0]
    n = table.num_rows
    foreign = json.dumps({"dsjson": {"u": {"age": 3}}, "dsjson_actions": {}})
    cut = max(1, n * dsjson_mod._PARENT_SHARE // 100)  # the child's first row
    # one in each part, and on both sides of the cut
    mixed = _with_context(table, {3: foreign, cut - 1: foreign, cut: foreign, n - 2: foreign})
    one = _export(mixed, inputs, tmp_path / "a" / "one.dsjson", workers=1)
    two = _export(mixed, inputs, tmp_path / "b" / "two.dsjson", workers=2)
    assert one == two
    lines = two.decode().splitlines()
    assert '"dsjson"' not in lines[0] and json.loads(lines[3])["c"]["u"] == {"age": 3}


@pytest.mark.parametrize("where", ["second", "both", "first"])
def test_a_bad_row_fails_with_the_same_error_in_either_half(
    inputs: tuple[Any, ...], tmp_path: Path, where: str
) -> None:
    table = inputs[0]
    n = table.num_rows
    bad_rows = {"second": [n - 5], "both": [4, n - 5], "first": [4]}[where]
    bad = _with_context(table, dict.fromkeys(bad_rows, '{"hcp": 1}'))
    errors = []
    for workers, bulk in ((1, False), (1, True), (2, True)):
        out = tmp_path / f"{workers}{bulk}" / "x.dsjson"
        with pytest.raises(DsjsonError) as info:
            export_dsjson(bad, out, inputs[1], outcomes=inputs[2], pulls=inputs[3], bulk=bulk,
                          workers=workers)  # fmt: skip
        errors.append(str(info.value))
        assert not out.exists() and list(out.parent.iterdir()) == []  # nothing half-written
    assert errors[0] == errors[1] == errors[2]
    assert table.column("event_id")[bad_rows[0]].as_py() in errors[0]


def test_a_failing_child_leaves_its_half_to_the_parent(
    inputs: tuple[Any, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = inputs[0]
    parent = os.getpid()
    write = dsjson_mod._write_lines

    def failing_in_the_child(fh: Any, bar: Any, lines: Any) -> int:
        if os.getpid() != parent:
            raise OSError("disk full (the child's only)")
        return write(fh, bar, lines)

    monkeypatch.setattr(dsjson_mod, "_write_lines", failing_in_the_child)
    two = _export(table, inputs, tmp_path / "b" / "two.dsjson", workers=2)
    monkeypatch.setattr(dsjson_mod, "_write_lines", write)
    assert two == _export(table, inputs, tmp_path / "a" / "one.dsjson", workers=1)


def test_the_default_splits_only_tables_large_enough(
    inputs: tuple[Any, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = inputs[0]
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(dsjson_mod.os, "fork", counting_fork)
    small = table.slice(0, 50)
    _export(small, inputs, tmp_path / "s" / "x.dsjson", workers=None)  # type: ignore[arg-type]
    assert forks == []
    monkeypatch.setattr(dsjson_mod, "_PARALLEL_ROWS", 40)
    monkeypatch.setattr(dsjson_mod, "_idle_core", lambda: True)
    _export(small, inputs, tmp_path / "l" / "x.dsjson", workers=None)  # type: ignore[arg-type]
    assert forks == [1]
    monkeypatch.setattr(dsjson_mod, "_idle_core", lambda: False)
    _export(small, inputs, tmp_path / "c" / "x.dsjson", workers=None)  # type: ignore[arg-type]
    assert forks == [1]  # no idle core: no child


@pytest.mark.parametrize(
    ("cores", "load", "idle"),
    [(1, 0.0, False), (2, 0.2, True), (2, 1.5, True), (2, 1.6, False), (2, 9.0, False),
     (8, 7.0, True), (8, 7.6, False)],
)  # fmt: skip
def test_a_second_process_only_where_a_core_is_idle(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, idle: bool
) -> None:
    monkeypatch.setattr(dsjson_mod.os, "sched_getaffinity", lambda _: set(range(cores)))
    monkeypatch.setattr(dsjson_mod.os, "getloadavg", lambda: (load, load, load))
    assert dsjson_mod._idle_core() is idle


@pytest.mark.parametrize("large", [False, True])
def test_mentions_finds_the_key_wherever_it_is(large: bool) -> None:
    kind = pa.large_string() if large else pa.string()
    texts = ['{"a":1}', "", '{"hcp":{"x":"\\"dsjson"}}', '{"b":"é"}', '  {"dsjson":{}}']
    arr = pa.array(texts, kind)
    needle = b'"dsjson'
    assert _mentions(arr, needle)
    assert not _mentions(arr.slice(0, 2), needle)
    assert _mentions(arr.slice(2, 1), needle)
    assert not _mentions(arr.slice(3, 1), needle)  # the match after the slice is not seen
    assert _mentions(arr.slice(4), needle)
    assert not _mentions(pa.array([], kind), needle)
    assert not _mentions(pa.array(["", ""], kind), needle)
    # a needle spread over two strings: "maybe" (the caller then tests row by row)
    assert _mentions(pa.array(['x"ds', "json"], kind), needle)


def test_mentions_says_maybe_for_string_views_and_span_reads_them() -> None:
    views = pa.array(['{"a":1}', "é"], pa.string_view())
    assert _mentions(views, b'"dsjson')  # not searched: "maybe"
    assert _span(views).tobytes() == '{"a":1}é'.encode()
    assert _span(pa.array(["ab", "c", "de"]).slice(1, 2)).tobytes() == b"cde"
