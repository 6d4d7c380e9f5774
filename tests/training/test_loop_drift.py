"""The loop's drift check flattens only the drift features' parts of the contexts
(training/loop.py, ``_drift_features``) and dumps each categorical value's JSON
once (``_value_texts``): the results must be those of the full flattening it
replaced, bit for bit, on simulated contexts and on hand-made edge cases."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nba.logs import io as logio
from simulators.hcp.world import simulate
from training.loop import (
    _FEATURE_PRESENCE,
    DRIFT_PREFIXES,
    _drift_features,
    _value_texts,
    context_features,
    feature_drift,
    psi,
)


def _old_psi(reference: Sequence[Any], current: Sequence[Any], bins: int = 10) -> float:
    """``psi`` as it was before the JSON texts were cached (the reference)."""
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) and v is not None
        for v in (*reference, *current)
    )
    if numeric and len(set(reference)) > bins:
        r = np.asarray(reference, dtype=float)
        c = np.asarray(current, dtype=float)
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
        rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=edges.size + 1)
        cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=edges.size + 1)
    else:
        cats = sorted({json.dumps(v) for v in (*reference, *current)})
        index = {k: i for i, k in enumerate(cats)}
        rc = np.bincount([index[json.dumps(v)] for v in reference], minlength=len(cats))
        cc = np.bincount([index[json.dumps(v)] for v in current], minlength=len(cats))
    rs = np.maximum(rc / max(rc.sum(), 1), 1e-4)
    cs = np.maximum(cc / max(cc.sum(), 1), 1e-4)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


def _old_feature_drift(reference: Sequence[str], current: Sequence[str]) -> list[tuple[str, float]]:
    """``feature_drift`` as it was: every context flattened whole, then filtered."""
    if not reference or not current:
        return []
    ref = context_features(reference)
    cur = context_features(current)
    out = []
    for k, col in ref.items():
        if not k.startswith(DRIFT_PREFIXES) or k.endswith("_id"):
            continue
        if sum(v is not None for v in col) < _FEATURE_PRESENCE * len(col):
            continue
        other = cur.get(k, [None] * len(current))
        out.append((k, _old_psi(col, other)))
    return sorted(out, key=lambda kv: -kv[1])


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Equal names in the same order and bit-equal values (NaN equal to NaN)."""
    return len(a) == len(b) and all(
        ka == kb and (va == vb or (math.isnan(va) and math.isnan(vb)))
        for (ka, va), (kb, vb) in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def sim_contexts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("sim") / "logs"
    simulate(hcps=150, days=21, policy="uniform", seed=11, out=out)
    ctx = logio.read(Path(out), "decisions", columns=["context"]).column("context").to_pylist()
    assert len(ctx) > 200
    return [str(c) for c in ctx]


def test_simulated_contexts_drift_as_before(sim_contexts: list[str]) -> None:
    half = len(sim_contexts) // 2
    ref, cur = sim_contexts[:half], sim_contexts[half:]
    new = feature_drift(ref, cur)
    assert {k for k, _ in new} >= {"hcp.decile", "hcp.specialty", "request.requester"}
    assert _same(new, _old_feature_drift(ref, cur))
    # a moved profile: the same, and the move is seen
    shifted = []
    for c in cur:
        obj = json.loads(c)
        obj["hcp"]["decile"] = 9
        shifted.append(json.dumps(obj))
    new = feature_drift(ref, shifted)
    assert new[0][0] == "hcp.decile" and new[0][1] > 1.0
    assert _same(new, _old_feature_drift(ref, shifted))


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {
            rng.choice(["a", "b", "", "hcp", "x_id", "hcp.q", "request", "c.d"]): _random_value(
                rng, depth + 1
            )
            for _ in range(rng.randint(0, 3))
        }
    if roll < 0.35:
        return [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
    return rng.choice(
        [0, 1, 2, True, False, None, 0.0, -0.0, 1.0, 0.5, "1", "a", "b", float("nan"), 10**30]
        + [rng.random() for _ in range(3)]
    )


def _random_context(rng: random.Random) -> str:
    obj: dict[str, Any] = {}
    for key in rng.sample(
        ["hcp", "request", "attributes", "history", "", "hcp.decile", "hcpx", "req", "day"],
        k=rng.randint(1, 7),
    ):
        obj[key] = _random_value(rng, 0)
    if rng.random() < 0.3:  # the same dotted key twice: the later one counts
        obj["hcp"] = {"decile": rng.randint(0, 9)}
        obj["hcp.decile"] = rng.choice([1, "1", 1.0, True])
    return json.dumps(obj)


@pytest.mark.parametrize("seed", range(6))
def test_edge_case_contexts_drift_as_before(seed: int) -> None:
    rng = random.Random(seed)
    ref = [_random_context(rng) for _ in range(rng.randint(40, 120))]
    cur = [_random_context(rng) for _ in range(rng.randint(40, 120))]
    assert _same(feature_drift(ref, cur), _old_feature_drift(ref, cur))
    # and the columns themselves: context_features' drift columns, nothing else
    full = context_features(ref)
    wanted = {k: v for k, v in full.items() if k.startswith(DRIFT_PREFIXES)}
    got = _drift_features(ref)
    assert list(got) == list(wanted)
    assert json.dumps(got) == json.dumps(wanted)  # NaN too, and -0.0 apart from 0.0


def test_keys_under_an_empty_key_and_literal_dots_are_kept() -> None:
    # {"": {...}} flattens its children without a prefix; "hcp.x" is a key of its own
    ctx = [
        json.dumps({"": {"hcp": {"decile": i % 3}}, "hcp.tier": i % 2, "history": {"n": i}})
        for i in range(20)
    ]
    got = _drift_features(ctx)
    assert list(got) == ["hcp.decile", "hcp.tier"]
    assert got == {k: v for k, v in context_features(ctx).items() if k in got}
    assert _same(feature_drift(ctx, ctx[:5]), _old_feature_drift(ctx, ctx[:5]))


def test_value_texts_are_the_json_texts() -> None:
    values = ["a", 1, True, 1.0, -0.0, 0.0, None, 1, "1", False, 0, float("nan"), "a", 10**30]
    assert _value_texts(values) == [json.dumps(v) for v in values]
    assert psi(values, values[::-1]) == _old_psi(values, values[::-1])
