"""The DSJSON writer's text helpers against :func:`json.dumps`: orjson's strings,
the pull objects, the escape test on the strings' bytes and the lists of
strings joined in one kernel (nba.logs.dsjson)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pytest

from nba.logs.dsjson import (
    _needs_escape,
    _pull_entries,
    _pull_json,
    _str_list_parts,
    _str_parts,
    _str_texts,
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _code_points() -> list[str]:
    """Every code point but the surrogates, in strings of 512."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    return ["".join(map(chr, cps[i : i + 512])) for i in range(0, len(cps), 512)]


def test_orjson_writes_every_code_point_as_json_dumps() -> None:
    # what _pull_json relies on: the same escapes (quote, backslash, control
    # characters, their short forms), non-ASCII kept (U+2028 included)
    for s in _code_points():
        assert orjson.dumps(s).decode() == _dumps(s)


_AWKWARD = [
    "",
    "plain",
    'quote " and backslash \\',
    "new\nline\ttab\r\x00\x1f\x7f",
    "caf\u00e9 \u2028 \u2029 \ufeff \U0001f600",
    "\u00a0no-break",
]


def _pull(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "hcp_id": "h1",
        "ts": datetime(2026, 1, 5, 10, 0, 1, 250, tzinfo=UTC),
        "channel": "portal",
        "content_id": "VEL-EFF-02",
        "origin": "external",
        "kind": "portal_view",
        "topics": ["efficacy"],
        "content_ids": [],
        "dwell_s": 54.9,
    }
    row.update(over)
    return row


@pytest.mark.parametrize(
    "dwell", [None, 0.0, -0.0, 1e-05, 1.5e-07, 1e16, 123456789.125, 54.9, 3, math.inf, math.nan]
)
def test_pull_json_floats(dwell: Any) -> None:
    pull = _pull(dwell_s=dwell)
    assert _pull_json(pull) == _dumps(_pull_entries([pull])[0])


@pytest.mark.parametrize("text", [*_AWKWARD, "lone \ud800 surrogate"])
def test_pull_json_strings(text: str) -> None:
    pull = _pull(channel=text, content_id=text, topics=[text, "b"], content_ids=[text])
    assert _pull_json(pull) == _dumps(_pull_entries([pull])[0])


def test_needs_escape_is_exact_per_character() -> None:
    for c in map(chr, range(0x300)):
        arr = pa.array(["ab", f"x{c}y", "cd"])
        assert _needs_escape(arr) == (_dumps(c) != f'"{c}"'), repr(c)
        assert not _needs_escape(arr.slice(2))  # only the bytes of the slice count
        assert _needs_escape(arr.slice(1, 1)) == (_dumps(c) != f'"{c}"')
    assert not _needs_escape(pa.array([], pa.string()))
    assert _needs_escape(pa.array(['"'], pa.large_string()))


def test_string_texts_and_parts() -> None:
    for values in (["a", "b\u00e9"], _AWKWARD):
        arr = pa.array(values, pa.string())
        want = [_dumps(v) for v in values]
        assert _str_texts(arr).to_pylist() == want
        joined = pa.compute.binary_join_element_wise(*_str_parts(arr), "")
        assert joined.to_pylist() == want


@pytest.mark.parametrize(
    "lists",
    [
        [["a", "b"], ["c"], ["d", "e", "f"]],  # no empty list: quote pieces around the join
        [["a"], [], ["b", "c"], []],  # an empty list writes nothing
        [[], []],
        [["x"], ['q"uote'], []],  # a string to escape: element by element
        [["caf\u00e9", "\u2028"], ["\U0001f600"]],
        [],
    ],
)
def test_string_list_parts(lists: list[list[str]]) -> None:
    arr = pa.array(lists, pa.list_(pa.string()))
    for column in (arr, arr.slice(1) if len(arr) > 1 else arr):
        want = [_dumps(v)[1:-1] for v in column.to_pylist()]
        got = pa.compute.binary_join_element_wise("", *_str_list_parts(column), "")
        assert got.to_pylist() == want
