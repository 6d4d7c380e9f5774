"""The bulk featurizer's shared namespaces as DSJSON (``FeaturizedBatch.shared_json``),
written from its own token tables, are the bytes of converting its VW shared
line (``json.dumps(line_to_namespaces(line))``, left open for ``_multi``), and
it declines (None) where a name could repeat within a namespace, so the
caller converts the line instead."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from nba.features import Featurizer, FeaturizerConfig
from nba.features.batch import FeaturizedBatch
from nba.features.dsjson import line_to_namespaces

from .test_features_parity import CATALOG, random_table


def _head(shared_line: str) -> str:
    """What the DSJSON writer makes of a VW shared line: ``c`` left open."""
    ns = line_to_namespaces(shared_line[len("shared ") :])
    text = json.dumps(ns, separators=(",", ":"), ensure_ascii=False)
    return text[:-1] + "," if ns else "{"


def _check(fb: FeaturizedBatch) -> None:
    assert fb.shared_json is not None
    heads = fb.shared_json.to_pylist()
    lines = fb.shared.to_pylist()
    assert len(heads) == len(lines)
    for line, head in zip(lines, heads, strict=True):
        assert head == _head(line), line


@pytest.mark.parametrize(
    "config",
    [
        FeaturizerConfig(),
        FeaturizerConfig(namespaces=("p", "c", "K", "x"), interactions=("pK",)),
        FeaturizerConfig(namespaces=("h", "r", "x"), interactions=()),
        FeaturizerConfig(namespaces=("T", "x"), interactions=()),
        FeaturizerConfig(namespaces=("r", "T"), interactions=()),
    ],
    ids=["default", "partial", "crosses-only", "no-shared-namespace", "no-x"],
)
@pytest.mark.parametrize("seed", [11, 12])
def test_shared_json_is_the_converted_shared_line(config: FeaturizerConfig, seed: int) -> None:
    table, _ctxs, _actions = random_table(300, seed=seed)
    fb = Featurizer(CATALOG, config).featurize_table(table, action_json=True)
    _check(fb)
    if "p" not in config.namespaces and "h" not in config.namespaces:
        assert set(fb.shared_json.to_pylist()) <= {"{", '{"r":{},'} | {
            h for h in fb.shared_json.to_pylist() if h.startswith('{"r":{')
        }
    assert Featurizer(CATALOG, config).featurize_table(table).shared_json is None  # not asked


def _contexts(table: pa.Table, change: Any) -> pa.Table:
    """``table`` with ``change(i, context dict)`` applied to every context."""
    texts = []
    for i, text in enumerate(table.column("context").to_pylist()):
        d = json.loads(text)
        change(i, d)
        texts.append(json.dumps(d, separators=(",", ":"), ensure_ascii=False))
    return table.set_column(table.column_names.index("context"), "context", pa.array(texts))


def test_awkward_names_are_written_as_the_conversion_writes_them() -> None:
    """A quote, a backslash, non-ASCII, a no-break space (``str.split`` splits
    there, so the token is two features) and U+2028 in the profile's values:
    the same bytes as converting the line."""
    table, _ctxs, _actions = random_table(40, seed=5)
    odd = ['car"dio', "back\\slash", "kardiología", "a\u00a0b", "line\u2028sep"]

    def change(i: int, d: dict[str, Any]) -> None:
        d["hcp"]["specialty"] = odd[i % len(odd)]
        d["request"]["note"] = odd[(i + 1) % len(odd)]

    fb = Featurizer(CATALOG).featurize_table(_contexts(table, change), action_json=True)
    _check(fb)
    assert any('"spec=a":1.0,"b":1.0' in h for h in fb.shared_json.to_pylist())


@pytest.mark.parametrize(
    "where",
    ["consents", "request", "history", "attribute-list"],
)
def test_a_name_that_may_repeat_in_a_namespace_is_declined(where: str) -> None:
    """Two values that clean to the same feature name (``rep visit`` and
    ``rep_visit``) make one name twice in a namespace, which a dict merges:
    the featurizer declines and the caller converts the line; the VW text is
    unchanged."""
    table, _ctxs, _actions = random_table(30, seed=7)

    def change(i: int, d: dict[str, Any]) -> None:
        if i != 3:
            return
        if where == "consents":
            d["hcp"]["consents"] = ["rep visit", "rep_visit"]
        elif where == "request":
            d["request"] = {"rep visit": 1, "rep_visit": 2}
        elif where == "history":
            d["history"]["touches_7d"] = {"rep visit": 1, "rep_visit": 2}
        else:
            d["attributes"] = {"affiliations": ["academic center", "academic_center"]}

    changed = _contexts(table, change)
    fb = Featurizer(CATALOG).featurize_table(changed, action_json=True)
    assert fb.shared_json is None
    line = fb.shared.to_pylist()[3]
    assert line == Featurizer(CATALOG).featurize_table(changed).shared.to_pylist()[3]
    # the conversion merges the repeat, so the pieces would not have given it
    ns = line_to_namespaces(line[len("shared ") :])
    assert sum(len(v) for v in ns.values()) < len(line.split()) - 1 - len(ns)
