"""The eighth round's shortcuts on the single decision give what the code they replace
gave: the logged context's JSON from kept parts, the shared line from kept tokens,
the slate's conditional probabilities (drawn and checked) without rebuilding the
actions left per slot, and the uniform holdout's probabilities."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_features_parity import CATALOG, random_context

from nba.context import ContextJSON, DecisionContext, History
from nba.domain import PROBABILITY_TOLERANCE, Decision, SlateSlot, ValidationError, slot_probability
from nba.features import Featurizer, FeaturizerConfig
from nba.features.tokens import (
    attribute_tokens,
    calendar_tokens,
    history_tokens,
    profile_tokens,
    request_tokens,
)
from nba.policies.base import _slate_listed, sample_slate
from nba.policies.baselines import UniformPolicy, uniform_probabilities


def _contexts(n: int, seed: int) -> list[DecisionContext]:
    rng = np.random.default_rng(seed)
    out = [random_context(rng, i) for i in range(n)]
    # names and values that JSON escapes (quotes, backslashes, control and non-ASCII
    # characters), stated topics and channels alone, an empty history
    odd = out[0]
    out.append(
        replace(
            odd,
            hcp=replace(odd.hcp, hcp_id='h"\\\x01é☃', specialty="ñ\u2028x"),
            request={"requester": 'a"b\\c\nd', "ratio": 1e-7, "big": 1e300, "neg": -0.0},
            attributes={"affiliations": ["aço", "b\x7f"], "kol": True},
        )
    )
    out.append(replace(odd, stated_topics=("efficacy",), stated_channels=(), attributes={}))
    out.append(replace(odd, stated_topics=(), stated_channels=("email",), history=History()))
    out.append(replace(odd, request={}, attributes={}, stated_topics=(), stated_channels=()))
    return out


def test_context_json_equals_to_json() -> None:
    encode = ContextJSON()
    ctxs = _contexts(300, seed=8)
    for ctx in ctxs:
        text = encode(ctx)
        assert text == ctx.to_json()
        assert json.loads(text) == json.loads(ctx.to_json())
    # the parts kept per object are given again for the same objects, and a context
    # sharing a profile and a history with another still gets its own day and request
    for ctx in ctxs:
        assert encode(ctx) == ctx.to_json()
    a, b = ctxs[1], ctxs[2]
    mixed = replace(b, hcp=a.hcp, history=a.history)
    assert encode(mixed) == mixed.to_json()


def test_context_json_keeps_at_most_max_entries_and_matches_by_identity() -> None:
    encode = ContextJSON(max_entries=3)
    ctxs = _contexts(40, seed=9)
    for ctx in ctxs:
        assert encode(ctx) == ctx.to_json()
        assert len(encode._parts._kept) <= 3
    # an equal profile built anew is another object: its own text, the same bytes
    ctx = ctxs[5]
    again = replace(ctx, hcp=replace(ctx.hcp), history=History.from_dict(ctx.history.to_dict()))
    assert again.hcp is not ctx.hcp
    assert encode(again) == ctx.to_json()
    with pytest.raises(ValueError, match="max_entries"):
        ContextJSON(max_entries=0)


@pytest.mark.parametrize(
    "config",
    [
        FeaturizerConfig(),
        FeaturizerConfig(namespaces=("p", "c", "K", "x"), interactions=("pK",)),
        FeaturizerConfig(namespaces=("h", "r", "x"), interactions=()),
    ],
)
def test_shared_line_from_kept_tokens(config: FeaturizerConfig) -> None:
    feat = Featurizer(CATALOG, config)
    feat._tokens_of.max_entries = 7  # fill and empty the kept tokens several times
    ctxs = _contexts(120, seed=10)
    for ctx in [*ctxs, *ctxs]:
        parts = ["shared"]
        for ns in config.shared:
            if ns == "p":
                parts.append("|p" + profile_tokens(ctx.hcp) + attribute_tokens(ctx.attributes))
            elif ns == "h":
                parts.append("|h" + history_tokens(ctx.history))
            elif ns == "r":
                parts.append("|r" + request_tokens(ctx.request))
            else:
                parts.append("|c" + calendar_tokens(ctx.day))
        assert feat.shared_line(ctx) == " ".join(parts)
        assert len(feat._tokens_of._kept) <= 7
    # another profile object with other values is not given the kept tokens
    ctx = ctxs[0]
    other = replace(ctx, hcp=replace(ctx.hcp, decile=11 - ctx.hcp.decile))
    if "p" in config.shared:
        assert feat.shared_line(other) != feat.shared_line(ctx)
        assert profile_tokens(other.hcp) in feat.shared_line(other)


def _vectors(seed: int, count: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    out: list[list[float]] = []
    for _ in range(count):
        n = int(rng.integers(1, 16))
        p = rng.dirichlet(np.full(n, float(rng.choice([0.05, 0.5, 1.0, 5.0]))))
        if rng.random() < 0.3:  # zeros, and sometimes all the mass on one action
            p[rng.random(n) < 0.4] = 0.0
            if p.sum() == 0:
                p[int(rng.integers(0, n))] = 1.0
            p = p / p.sum()
        if rng.random() < 0.1:  # mass below the floor once the chosen one is taken
            p = np.zeros(n)
            p[int(rng.integers(0, n))] = 1.0
        out.append([float(x) for x in p])
    return out


def _reference_slate(p: list[float], chosen: int, k: int, seed: int, eid: str) -> list[float]:
    idx, _ = _slate_listed(p, chosen, k, seed, eid)
    return [p[chosen]] + [slot_probability(p, idx[:j], idx[j]) for j in range(1, len(idx))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slate_conditionals_equal_slot_probability(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for i, p in enumerate(_vectors(seed, 600)):
        chosen = int(rng.choice(len(p), p=np.asarray(p) / sum(p)))
        k = int(rng.integers(1, 5))
        idx, cond = sample_slate(np.asarray(p), chosen, k, seed, f"e{i}")
        assert cond == _reference_slate(p, chosen, k, seed, f"e{i}")  # bit for bit
        assert idx[0] == chosen


def _decision(p: list[float], idx: list[int], cond: list[float]) -> Decision:
    ids = tuple(f"C{j}@email" for j in range(len(p)))
    return Decision(
        event_id="e1",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        hcp_id="h1",
        requester="t",
        channels_requested=("email",),
        context="{}",
        catalog_version="v",
        action_ids=ids,
        probabilities=tuple(p),
        chosen_index=idx[0],
        chosen_action_id=ids[idx[0]],
        propensity=p[idx[0]],
        policy="t",
        model_version="t",
        slate=tuple(SlateSlot(ids[i], q) for i, q in zip(idx, cond, strict=True)),
    )


def test_slate_check_accepts_and_refuses_as_slot_probability_says() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for i, p in enumerate(_vectors(7, 500)):
        positive = [j for j, x in enumerate(p) if x > 0]
        chosen = int(rng.choice(positive))
        idx, cond = sample_slate(np.asarray(p), chosen, 4, 7, f"e{i}")
        if len(idx) < 2:
            continue
        _decision(p, idx, cond)  # the drawn slate passes
        # a slot off by more than the tolerance of slot_probability's value is refused,
        # one within it is accepted (the check's expected value is slot_probability's)
        j = int(rng.integers(1, len(idx)))
        expected = slot_probability(p, idx[:j], idx[j])
        tol = PROBABILITY_TOLERANCE * max(1.0, expected)
        near = [*cond]
        near[j] = expected + tol * 0.5
        if 0.0 < near[j] <= 1.0:
            _decision(p, idx, near)
        far = [*cond]
        far[j] = expected - tol * 4
        if 0.0 < far[j] <= 1.0:
            with pytest.raises(ValidationError, match=f"slot {j + 1} probability"):
                _decision(p, idx, far)
        checked += 1
    assert checked > 300


def test_slate_check_still_refuses_bad_slots() -> None:
    p = [0.5, 0.3, 0.2]
    idx, cond = sample_slate(np.asarray(p), 0, 3, 1, "e1")
    with pytest.raises(ValidationError, match="repeats action"):
        _decision(p, [idx[0], idx[1], idx[1]], [cond[0], cond[1], cond[1]])
    with pytest.raises(ValidationError, match="not the chosen action"):
        d = _decision(p, idx, cond)
        replace(d, slate=(d.slate[1], d.slate[0], d.slate[2]))


def test_uniform_policy_probabilities_equal_the_vectorized_ones() -> None:
    pol = UniformPolicy(seed=0, catalog=CATALOG)
    ctx = _contexts(1, seed=3)[0]
    acts = list(CATALOG.actions)
    for n in range(1, len(acts) + 1):
        got = pol.probabilities(ctx, acts[:n])
        want = uniform_probabilities(np.array([0, n]))
        assert got.dtype == want.dtype == np.float64
        assert got.tobytes() == want.tobytes()
    # many decisions' offsets at once still agree entry by entry
    sizes = list(itertools.islice(itertools.cycle(range(1, 30)), 200))
    off = np.concatenate([[0], np.cumsum(sizes)])
    flat = uniform_probabilities(off)
    for i, n in enumerate(sizes):
        assert flat[off[i] : off[i + 1]].tobytes() == np.full(n, 1.0 / n).tobytes()


def test_reasons_without_contributions_rank_as_with_unmatched_ones() -> None:
    # the sort key without contributions against the general key, whose contributions
    # here back no reason's feature: the same texts in the same order
    from serving.reasons import reasons_for, reasons_for_list

    ctxs = _contexts(200, seed=11)
    rng = np.random.default_rng(12)
    unmatched = {"no-such-feature": 3.0}
    for ctx in ctxs:
        picks = rng.choice(len(CATALOG.actions), size=3, replace=False)
        shown = [
            (CATALOG.actions[int(j)], CATALOG.by_id[CATALOG.actions[int(j)].content_id].topic)
            for j in picks
        ]
        for action, topic in shown:
            assert reasons_for(ctx, action, topic, max_reasons=9) == reasons_for(
                ctx, action, topic, unmatched, max_reasons=9
            )
        assert reasons_for_list(ctx, shown) == reasons_for_list(ctx, shown, None, [unmatched] * 3)


def test_action_id_written_once_is_the_joined_name() -> None:
    import copy
    import pickle

    from nba.domain import Action

    for a in CATALOG.actions:
        assert a.action_id == f"{a.content_id}@{a.channel}"
        assert Action.parse(a.action_id) == a
        assert Action.parse(a.action_id).action_id == a.action_id
        again = pickle.loads(pickle.dumps(a))
        assert again == a and again.action_id == a.action_id
        assert copy.deepcopy(a).action_id == a.action_id
        moved = replace(a, channel="fax")
        assert moved.action_id == f"{a.content_id}@fax"
        # equality, order, hash and repr are the pair's alone, as before
        assert hash(a) == hash(Action(a.content_id, a.channel))
        assert repr(a) == f"Action(content_id={a.content_id!r}, channel={a.channel!r})"
    pairs = [(a.content_id, a.channel) for a in CATALOG.actions]
    assert [(a.content_id, a.channel) for a in sorted(CATALOG.actions)] == sorted(pairs)
    with pytest.raises(TypeError):
        Action("X-1", "email", "X-1@email")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="channel"):
        Action("X-1", "e@mail")
