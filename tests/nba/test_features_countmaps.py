"""The history count maps read apart from Arrow's JSON reader
(:mod:`nba.features.countmaps`) give the bulk featurizer exactly what the
general parse gives it: the same lines, DSJSON objects and errors, on the
compact form the contexts are logged in and on every awkward variant of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import nba.features.bulk as bulk
from nba.features import FeaturizeError, Featurizer
from nba.features.batch import concat_buffer
from nba.features.countmaps import _PROBE, _tokens_before, maps_check_out, split_count_maps

from .test_features_parity import CATALOG, random_table


def _compact(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _outcome(table: pa.Table, general: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    """What ``featurize_table`` gives (lines and DSJSON objects) or the error it
    raises, read apart where it can be (``general`` False) or the general way."""
    with monkeypatch.context() as m:
        if general:
            m.setattr(bulk, "split_count_maps", lambda *a: None)
        try:
            got = Featurizer(CATALOG).featurize_table(table, action_json=True)
        except FeaturizeError as exc:
            return ("error", str(exc))
    objs = None if got.actions_json is None else got.actions_json.to_pylist()
    return (got.shared.to_pylist(), got.actions.to_pylist(), objs)


def _with_contexts(table: pa.Table, texts: list[str]) -> pa.Table:
    return table.set_column(table.column_names.index("context"), "context", pa.array(texts))


def _read_apart(table: pa.Table) -> bool:
    """Whether the batch's maps are read apart (not parsed by Arrow)."""
    ctx = table.column("context").combine_chunks()
    blob = concat_buffer(pa.compute.binary_join_element_wise(ctx, "\n", ""))
    got = bulk._parse_contexts(blob, ctx)
    return got is not None and got[1] is not None


def _spy_general(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, per parse, whether the maps were read apart."""
    calls: list[bool] = []
    real = bulk._parse_contexts

    def spy(blob: Any, ctx: Any, read_apart: bool = True) -> Any:
        got = real(blob, ctx, read_apart)
        calls.append(got is not None and got[1] is not None)
        return got

    monkeypatch.setattr(bulk, "_parse_contexts", spy)
    return calls


def test_logged_contexts_are_read_apart_with_the_same_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, _ctxs, _actions = random_table(300, seed=11)
    assert _read_apart(table)
    assert _outcome(table, False, monkeypatch) == _outcome(table, True, monkeypatch)


def test_the_maps_read_equal_the_json() -> None:
    table, _ctxs, _actions = random_table(50, seed=3)
    texts = table.column("context").to_pylist()
    blob = pa.py_buffer("".join(t + "\n" for t in texts).encode())
    starts = np.cumsum([0] + [len(t.encode()) + 1 for t in texts])
    got = split_count_maps(blob, starts, bulk.COUNT_MAPS)
    assert got is not None
    emptied, maps = got
    for i, text in enumerate(texts):
        hist = json.loads(text)["history"]
        for name, m in maps.items():
            row = {k: int(m.values[i, j]) for j, k in enumerate(m.keys) if m.present[i, j]}
            assert row == hist.get(name, {}), (i, name)
    assert maps_check_out(bulk._read_json(emptied), maps)
    # the text left for Arrow is the contexts with those maps written {}
    left = [json.loads(line) for line in emptied.to_pybytes().decode().splitlines()]
    for text, d in zip(texts, left, strict=True):
        want = json.loads(text)
        for name in bulk.COUNT_MAPS:
            if name in want["history"]:
                want["history"][name] = {}
        assert d == want


def test_maps_with_more_keys_than_the_probe_are_read_whole() -> None:
    """Maps of 0 to 3 x ``_PROBE`` keys (the probe's fallback search included), in
    rows of different lengths, read as ``json.loads`` reads them."""
    rng = np.random.default_rng(5)
    table, _ctxs, _actions = random_table(30, seed=4)
    texts = []
    for i, text in enumerate(table.column("context").to_pylist()):
        d = json.loads(text)
        k = int(rng.integers(0, 3 * _PROBE + 1)) if i else 3 * _PROBE
        d["history"]["touches_30d"] = {f"ch{j:02d}": int(rng.integers(1, 99)) for j in range(k)}
        texts.append(_compact(d))
    blob = pa.py_buffer("".join(t + "\n" for t in texts).encode())
    starts = np.cumsum([0] + [len(t.encode()) + 1 for t in texts])
    got = split_count_maps(blob, starts, bulk.COUNT_MAPS)
    assert got is not None
    m = got[1]["touches_30d"]
    for i, text in enumerate(texts):
        row = {k: int(m.values[i, j]) for j, k in enumerate(m.keys) if m.present[i, j]}
        assert row == json.loads(text)["history"]["touches_30d"], i


def test_tokens_before_is_the_binary_search() -> None:
    """``_tokens_before`` equals ``np.searchsorted`` for maps of 0 to 3 x
    ``_PROBE`` tokens, up to the last token of the batch."""
    rng = np.random.default_rng(8)
    s = np.cumsum(rng.integers(2, 9, size=400)).astype(np.int64)
    first = np.sort(rng.choice(np.arange(1, len(s)), size=60, replace=False)).astype(np.int64)
    span = rng.integers(0, 3 * _PROBE + 1, size=len(first))
    last = np.minimum(first + span, len(s))
    # the closing brace: after the last token before it, at or before the next one
    ends = np.where(last < len(s), s[np.minimum(last, len(s) - 1)], s[-1] + 3)
    ends = ends - (rng.random(len(first)) < 0.5)
    ends = np.maximum(ends, s[first - 1] + 1)
    assert np.array_equal(_tokens_before(s, first, ends), np.searchsorted(s, ends))
    edge = np.array([len(s)], dtype=np.int64)  # the map after the last token
    assert np.array_equal(_tokens_before(s, edge, s[-1:] + 5), [len(s)])


def test_tokens_before_at_the_probe_boundary() -> None:
    """Maps of every size from 0 to ``_PROBE + 2`` tokens, side by side (the probe
    covers ``_PROBE`` tokens, then falls back to the search), and maps running
    to the last token of the batch."""
    sizes = np.arange(_PROBE + 3)
    # tokens two bytes apart; map i: a name token, then sizes[i] key tokens
    s = np.arange(0, 2 * int((sizes + 1).sum()), 2, dtype=np.int64)
    first = np.cumsum(np.r_[0, sizes[:-1] + 1]) + 1
    ends = s[first - 1 + sizes] + 1  # between the last key and the next name
    assert np.array_equal(_tokens_before(s, first, ends), np.searchsorted(s, ends))
    # the same sizes, each map's keys the batch's last tokens
    for k in sizes:
        tail = np.array([len(s) - k], dtype=np.int64)
        assert np.array_equal(_tokens_before(s, tail, s[-1:] + 1), [len(s)])


def _variant(fn: Callable[[dict[str, Any]], str | None]) -> Callable[[pa.Table], pa.Table]:
    """A table whose second row's context is ``fn`` of its dict (a JSON text)."""

    def make(table: pa.Table) -> pa.Table:
        texts = table.column("context").to_pylist()
        d = json.loads(texts[1])
        out = fn(d)
        texts[1] = out if out is not None else _compact(d)
        return _with_contexts(table, texts)

    return make


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(d: dict[str, Any]) -> None:
        node = d
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    return fn


def _text(old: str, new: str) -> Callable[[dict[str, Any]], str]:
    def fn(d: dict[str, Any]) -> str:
        text = _compact(d)
        assert old in text, (old, text)
        return text.replace(old, new, 1)

    return fn


def _base(d: dict[str, Any]) -> None:
    d["history"]["touches_7d"] = {"email": 2, "webinar": 1}
    d["history"]["days_since_content"] = {"VEL-EFF-02": 5}
    d["history"]["topic_channel_engagements_90d"] = {"efficacy@email": 2}


def _then(*fns: Callable[[dict[str, Any]], str | None]) -> Callable[[dict[str, Any]], str | None]:
    def fn(d: dict[str, Any]) -> str | None:
        _base(d)
        out = None
        for f in fns:
            got = f(d)
            if got is not None:
                out = got
        return out

    return fn


#: (id, variant, read apart?): None where either way is allowed
VARIANTS: list[tuple[str, Callable[[dict[str, Any]], str | None], bool | None]] = [
    ("compact", _then(), True),
    ("escaped quote in a key", _then(_text('"email":2', '"em\\"ail":2')), False),
    ("escaped unicode key", _then(_text('"email":2', '"\\u00e9mail":2')), False),
    ("raw unicode key", _then(_set("history.touches_7d", {"émail": 2, "webinar": 1})), True),
    ("raw non-BMP key", _then(_set("history.touches_7d", {"e\U0001f600": 3})), True),
    ("escaped map name", _then(_text('"touches_7d":', '"touches\\u005f7d":')), False),
    ("empty maps", _then(_set("history.touches_7d", {}), _set("history.touches_30d", {})), True),
    ("null map", _then(_set("history.touches_7d", None)), None),
    ("list for a map", _then(_set("history.touches_7d", [1, 2])), None),
    ("nested object value", _then(_set("history.touches_7d", {"email": {"a": 1}})), None),
    ("space after colon", _then(_text('"touches_7d":{', '"touches_7d": {')), None),
    ("space before colon", _then(_text('"touches_7d":{', '"touches_7d" :{')), None),
    ("spaces inside a map", _then(_text('{"email":2,', '{ "email" : 2 , ')), None),
    ("newlines inside a map", _then(_text('{"email":2,', '{\n"email":\n2,\n')), None),
    ("count 1001", _then(_set("history.touches_7d", {"email": 1001})), True),
    ("count 10**17", _then(_set("history.touches_30d", {"email": 10**17})), True),
    ("count 10**19", _then(_set("history.touches_30d", {"email": 10**19})), False),
    ("count 2.0", _then(_set("history.touches_7d", {"email": 2.0})), False),
    ("count 2.5", _then(_set("history.touches_7d", {"email": 2.5})), False),
    ("count 1e3", _then(_text('"email":2,', '"email":1e3,')), False),
    ("count true", _then(_set("history.touches_7d", {"email": True})), False),
    ("count null", _then(_set("history.touches_7d", {"email": None})), False),
    ("count as string", _then(_set("history.touches_7d", {"email": "2"})), False),
    ("negative count", _then(_set("history.touches_7d", {"email": -1})), False),
    ("count 0", _then(_set("history.touches_7d", {"email": 0})), True),
    ("leading zero", _then(_text('"email":2,', '"email":02,')), False),
    ("days 0", _then(_set("history.days_since_content", {"VEL-EFF-02": 0})), None),
    ("days 91", _then(_set("history.days_since_content", {"VEL-EFF-02": 91})), None),
    ("pair key without @", _then(_set("history.topic_channel_engagements_90d", {"x": 1})), None),
    ("pair key @email", _then(_set("history.topic_channel_engagements_90d", {"@email": 1})), None),
    ("a key twice", _then(_text('"email":2,', '"email":2,"email":3,')), False),
    ("keys out of order", _then(_set("history.touches_7d", {"webinar": 1, "email": 2})), True),
    ("a map twice", _then(_text('"touches_7d":{', '"touches_7d":{},"touches_7d":{')), False),
    ("empty key", _then(_set("history.touches_7d", {"": 2})), False),
    ("key with a brace", _then(_set("history.touches_7d", {"a}b": 2, "c{": 1})), False),
    ("key with comma and colon", _then(_set("history.touches_7d", {"a,b:c": 2})), True),
    ("map name as a value", _then(_set("request.requester", "touches_7d")), False),
    ("map nested in hcp", _then(_set("hcp.extra", {"touches_7d": {"fax": 9}})), False),
    (
        "history nested in hcp",
        _then(_set("hcp.history", {"touches_90d": {"fax": 9}}), _set("history.touches_90d", {})),
        None,
    ),
    (
        "nested map, spaced empty one at the top",
        _then(
            _set("hcp.extra", {"touches_90d": {"fax": 9}}),
            _set("history.touches_90d", {}),
            _text('"touches_90d":{}', '"touches_90d" : {}'),
        ),
        False,
    ),
    ("no history", _then(lambda d: d.pop("history") and None), None),
    ("history null", _then(_set("history", None)), None),
    ("unknown map beside", _then(_set("history.foo_7d", {"email": 1.5})), True),
    ("context over lines", _then(lambda d: json.dumps(d, indent=1)), False),
    ("not JSON", _then(lambda d: _compact(d)[:-1]), None),
]


@pytest.mark.parametrize(("name", "fn", "apart"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variants_give_what_the_general_parse_gives(
    name: str,
    fn: Callable[[dict[str, Any]], str | None],
    apart: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, _ctxs, _actions = random_table(4, seed=5)
    bad = _variant(fn)(table)
    general = _outcome(bad, True, monkeypatch)
    calls = _spy_general(monkeypatch)
    fast = _outcome(bad, False, monkeypatch)
    assert fast == general
    if apart is not None:
        assert calls[0] is apart, calls


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"touches_7d": {"email": -1}}, "event 'ev00001': field 'history.touches_7d.email'"),
        ({"days_since_content": {"VEL-EFF-02": 0}}, "event 'ev00001': field 'history.days_sin"),
        ({"touches_7d": {"email": 2.5}}, "'history.touches_7d.email' is double, not a whole"),
        ({"topic_channel_engagements_90d": {"x": 1}}, "key must be 'topic@channel'"),
    ],
)
def test_bad_counts_get_the_general_error(patch: dict[str, Any], match: str) -> None:
    table, _ctxs, _actions = random_table(4, seed=5)
    texts = table.column("context").to_pylist()
    d = json.loads(texts[1])
    d["history"].update(patch)
    texts[1] = _compact(d)
    with pytest.raises(FeaturizeError, match="featurize_table: ") as info:
        Featurizer(CATALOG).featurize_table(_with_contexts(table, texts))
    assert match in str(info.value)


def test_rows_sliced_from_a_larger_array_are_read_apart_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, _ctxs, _actions = random_table(40, seed=9)
    part = table.slice(7, 20)
    assert _read_apart(part)
    assert _outcome(part, False, monkeypatch) == _outcome(part, True, monkeypatch)
