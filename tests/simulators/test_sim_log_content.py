"""The simulator's logs stay what they were as its hot paths are rewritten.

Two guards:

- the contexts of the fast builder (``ContextBuilder.build``: history maps
  de-duplicated, rendered from cached pieces) equal a plain per-decision
  reference kept here, each map written row by row from its non-zero cells;
- the values of every row of every log table of two small seeded runs hash to
  the digests recorded with the code before the throughput work on the log
  writer (the digests cover values, not Parquet bytes, so a new pyarrow that
  encodes pages differently does not move them).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from render_reference import joined_cells

from nba.contact import ContactPolicy
from nba.context import CONTEXT_VERSION
from nba.logs import io as logio
from simulators.hcp.history import LONGEST, ContextBuilder, HistoryTracker
from simulators.hcp.world import World

TABLES = ("decisions", "outcomes", "touches", "ground_truth")


def _map_json(names: tuple[str, ...], row: list[int]) -> str:
    """A count map as the context writes it: keys sorted, zero counts left out."""
    cells = sorted((names[i], v) for i, v in enumerate(row) if v)
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in cells) + "}"


def _interest_json(topics: tuple[str, ...], row: list[float]) -> str:
    cells = []
    for i in sorted(range(len(topics)), key=lambda i: topics[i]):
        v = round(row[i], 3)
        if v:
            cells.append(f"{json.dumps(topics[i])}:{v!r}")
    return "{" + ",".join(cells) + "}"


def _contexts_by_row(
    cb: ContextBuilder,
    item_ids: list[str],
    day: date,
    profile_json: np.ndarray,
    tr: HistoryTracker,
    hcp: np.ndarray,
    request_json: str,
) -> list[str]:
    """Each decision's context written on its own, map by map, from the tracker."""
    chans, topics = cb.channels, cb.topics
    tc_names = cb._topic_channel_map.names
    dst = tr.days_since_touch(hcp).tolist()
    eng = tr.eng_win[hcp].tolist()
    t7, t30, t90 = (tr.touch_win[w][hcp].tolist() for w in (7, 30, 90))
    teng = tr.topic_win[hcp].tolist()
    tceng = tr.topic_channel_engagements(hcp).tolist()
    dsc = tr.days_since_content(hcp).tolist()
    inter = tr.interest(hcp).tolist()
    tpull = tr.topic_pulls(hcp).tolist()
    last = tr.last_content[hcp].tolist()
    out = []
    for i, h in enumerate(hcp.tolist()):
        lc = "null" if last[i] < 0 else json.dumps(item_ids[last[i]])
        out.append(
            f'{{"day":"{day.isoformat()}","hcp":{profile_json[h]},"history":{{'
            f'"days_since_content":{_map_json(tuple(item_ids), dsc[i])},'
            f'"days_since_touch":{_map_json(chans, dst[i])},'
            f'"engagements_30d":{_map_json(chans, eng[i])},'
            f'"interest":{_interest_json(topics, inter[i])},'
            f'"last_content_id":{lc},'
            f'"topic_channel_engagements_90d":{_map_json(tc_names, tceng[i])},'
            f'"topic_engagements_90d":{_map_json(topics, teng[i])},'
            f'"topic_pulls_90d":{_map_json(topics, tpull[i])},'
            f'"touches_30d":{_map_json(chans, t30[i])},'
            f'"touches_7d":{_map_json(chans, t7[i])},'
            f'"touches_90d":{_map_json(chans, t90[i])}'
            f'}},"request":{request_json},"v":{CONTEXT_VERSION}}}'
        )
    return out


def test_built_contexts_equal_the_per_decision_assembly() -> None:
    world = World(400, seed=21)
    world.run(40, policy="campaign")  # 40 days of touches, engagements and pulls
    cat = world.catalog
    item_ids = [it.id for it in cat.items]
    cb = ContextBuilder(world.channels, cat.topics, item_ids)
    day = world.start + timedelta(days=40)
    hcp = np.r_[np.arange(0, 400, 3), [5, 5, 399]]  # repeats and the last HCP too
    got = cb.build(day, world.profile_json, world.history, hcp, '{"requester":"rep"}')
    want = _contexts_by_row(
        cb, item_ids, day, world.profile_json, world.history, hcp, '{"requester":"rep"}'
    )
    assert got.tolist() == want
    # the run did fill the maps these strings are made of
    joined = "".join(want)
    for key in ('"days_since_content":{"', '"interest":{"', '"touches_90d":{"'):
        assert key in joined
    assert cb.build(day, world.profile_json, world.history, hcp[:0], "{}").tolist() == []


def test_counts_beyond_the_piece_tables_are_written_in_full() -> None:
    """Counts of 128 and more (and negative ones) have no piece in the renderers'
    table: they are written from the number itself."""
    cb = ContextBuilder(["email", "visit"], ["b", "a"], ["i1", "i2"])
    m = cb._topic_channel_map
    rows = np.zeros((3, len(m.names)), dtype=np.int64)
    rows[0, 0], rows[0, 3], rows[2, 1] = 128, 7, 100_000
    assert joined_cells(3, *m.cells(rows)) == [_map_json(m.names, r) for r in rows.tolist()]
    small = np.array([[0, LONGEST + 5], [3, 0], [-2, 128]])
    assert joined_cells(3, *cb._channel_map.cells(small)) == [
        '{"visit":95}',
        '{"email":3}',
        '{"email":-2,"visit":128}',
    ]


def _log_digest(root: Path) -> dict[str, str]:
    """sha256 per table over its part paths and every row's values, in file order."""
    out = {}
    for name in TABLES:
        h = hashlib.sha256()
        for part in logio.part_files(root, name):
            h.update(str(part.relative_to(root)).encode())
            for row in pq.read_table(part).to_pylist():
                h.update(json.dumps(row, sort_keys=True, default=str).encode())
        out[name] = h.hexdigest()
    return out


def _digest_runs() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {
        "campaign": ({"hcps": 300, "seed": 31}, {"days": 20, "policy": "campaign"}),
        "uniform-slates-rules": (
            {"hcps": 250, "seed": 32, "slate_size": 3, "rules": ContactPolicy.default()},
            {"days": 15, "policy": "uniform"},
        ),
    }


#: recorded with the code before the log writer's throughput work (parts taken row
#: by row, profiles dumped one by one); regenerate with ``_log_digest`` only for a
#: deliberate change of what the simulator logs
DIGESTS = {
    "campaign": {
        "decisions": "f6966bda3acadd64d910563f17803e673c3c7caee5e1b28f011287bd33c523e9",
        "outcomes": "c558f756f6bac1a43e10252b7455e96d98ccfbf07d04633ef4e8f674b87f8ecd",
        "touches": "58ef91dac6dcea94773c91b2dce58240ecffd66a7b34546e61bf9c95e3413d81",
        "ground_truth": "09643232e850f7a62d327b6a0d1f20cbe1608ad7f9048c29b0206a8e16439c44",
    },
    "uniform-slates-rules": {
        "decisions": "f44d2c71e3554d4f2f32b45c17f8e53f26ef257b81a50ea506f2a1b294138879",
        "outcomes": "8a02de379dff218705dae68c8e8c5bae63d3dc44aab3998a7d7b2b2a6461a4c0",
        "touches": "dafeaf03574dd0b57af8add76b57eba0a4feda1fec9e3c675ac9f4fb3b537ea5",
        "ground_truth": "898907a79c3dfe97f7f9d02de74a9cff7886f380db3eb3b4d2c838385ac5906d",
    },
}


@pytest.mark.parametrize("run", sorted(_digest_runs()))
def test_small_runs_log_the_recorded_rows(run: str, tmp_path: Path) -> None:
    world_kw, run_kw = _digest_runs()[run]
    World(**world_kw).run(out=tmp_path / "logs", **run_kw)
    assert _log_digest(tmp_path / "logs") == DIGESTS[run]
