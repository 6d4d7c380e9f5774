"""``ContextBuilder.render`` (every decision's context joined once from one array
of pieces) against ``render_reference.render_by_map`` (each map's strings made apart,
then one f-string per decision: the way before, kept in the tests), on a simulated run's gathered
numbers and on edge cases the run does not reach."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
from render_reference import render_by_map

from simulators.hcp.history import ContextBuilder
from simulators.hcp.world import World


def test_render_equals_the_map_by_map_render_on_a_run() -> None:
    world = World(500, seed=13)
    world.run(35, policy="campaign")
    day = world.start + timedelta(days=world.history.day)
    hcp = np.r_[np.arange(0, 500, 2), [7, 7, 499]]  # repeats and the last HCP too
    g = world.builder.gather(world.history, hcp)
    profiles = world.profile_json[hcp]
    got = world.builder.render(day, profiles, g, '{"requester":"rep"}').tolist()
    want = render_by_map(world.builder, day, profiles, g, '{"requester":"rep"}').tolist()
    assert got == want
    # the run filled the maps made of cells (not only empty ones)
    joined = "".join(want)
    for key in (
        '"days_since_content":{"',
        '"days_since_touch":{"',
        '"interest":{"',
        '"topic_channel_engagements_90d":{"',
        '"touches_90d":{"',
    ):
        assert key in joined
    none = world.builder.gather(world.history, hcp[:0])
    assert world.builder.render(day, profiles[:0], none, "{}").tolist() == []


def _history(b: int, rng: np.random.Generator, n_ch: int, n_t: int, n_items: int) -> dict:
    def counts(k: int, hi: int) -> np.ndarray:
        c = rng.integers(0, hi, size=(b, k)).astype(np.int32)
        return np.where(rng.random((b, k)) < 0.6, 0, c)

    interest = np.where(rng.random((b, n_t)) < 0.5, 0.0, rng.random((b, n_t)) * 3)
    interest[0, :] = 0.0004  # rounds to zero: left out
    interest[1, 1] = 0.0006  # rounds up to 0.001 ("alpha", first in key order)
    return {
        "days_since_touch": counts(n_ch, 91).astype(np.int8),
        "engagements_30d": counts(n_ch, 4),
        "touches_7d": counts(n_ch, 3),
        "touches_30d": counts(n_ch, 200),  # beyond the 128-entry piece table
        "touches_90d": counts(n_ch, 100_000),  # beyond what packs into one key
        "topic_engagements_90d": counts(n_t, 300),
        "topic_channel_engagements_90d": counts(n_t * n_ch, 40_000),
        "days_since_content": counts(n_items, 91).astype(np.int8),
        "interest": interest,
        "topic_pulls_90d": counts(n_t, 5),
        "last_content": rng.integers(-1, n_items, size=b),
    }


def test_render_equals_the_map_by_map_render_at_the_edges() -> None:
    channels, topics = ["visit", "email", "webinar"], ["zeta", "alpha", "mid"]
    items = ["i3", "i1", "i2", "i0"]
    cb = ContextBuilder(channels, topics, items)
    rng = np.random.default_rng(5)
    b = 300
    h = _history(b, rng, len(channels), len(topics), len(items))
    h["topic_channel_engagements_90d"][2, :] = 0  # an empty map
    h["touches_90d"][3, :] = 0
    profiles = np.array([f'{{"id":"h{i}"}}' for i in range(b)], dtype=object)
    day = World(5, seed=1).start
    got = cb.render(day, profiles, h, "{}").tolist()
    want = render_by_map(cb, day, profiles, h, "{}").tolist()
    assert got == want
    assert '"touches_90d":{}' in got[3] and '"topic_channel_engagements_90d":{}' in got[2]
    assert '"interest":{}' in got[0] and '"interest":{"alpha":0.001' in got[1]
    assert any('"touches_30d":{' in g and ":1" in g for g in got)
    # a single decision with every map empty
    zero = {k: v[:1] * 0 for k, v in h.items()}
    zero["last_content"] = np.array([-1])
    one = cb.render(day, profiles[:1], zero, "{}").tolist()
    assert one == render_by_map(cb, day, profiles[:1], zero, "{}").tolist()
    assert '"days_since_touch":{},"engagements_30d":{},"interest":{}' in one[0]
    assert '"last_content_id":null' in one[0]


def test_render_column_equals_render_on_a_run_and_off_ascii() -> None:
    """The decisions process's Arrow column (one join, bounds from the pieces'
    lengths) holds ``render``'s strings; text that is not ASCII takes the
    per-decision path and still gives them."""
    world = World(400, seed=17)
    world.run(30, policy="campaign")
    day = world.start + timedelta(days=world.history.day)
    hcp = np.r_[np.arange(0, 400, 3), [4, 4, 399]]
    g = world.builder.gather(world.history, hcp)
    profiles = world.profile_json[hcp]
    want = world.builder.render(day, profiles, g, '{"requester":"rep"}').tolist()
    col = world.builder.render_column(day, profiles, g, '{"requester":"rep"}')
    assert col.type == pa.string() and col.null_count == 0
    assert col.to_pylist() == want
    # a profile with non-ASCII text: lengths in characters and bytes differ
    odd = profiles.copy()
    odd[1] = odd[1].replace('"hcp_id":"', '"hcp_id":"\u00e9\u4e2d')
    want_odd = world.builder.render(day, odd, g, "{}").tolist()
    assert "\u00e9\u4e2d" in want_odd[1]
    assert world.builder.render_column(day, odd, g, "{}").to_pylist() == want_odd
    none = world.builder.gather(world.history, hcp[:0])
    assert world.builder.render_column(day, profiles[:0], none, "{}").to_pylist() == []
