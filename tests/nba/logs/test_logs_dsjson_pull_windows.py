"""Each decision's window pulls found column-wise (:class:`WindowPulls`) against the
row-at-a-time search they replaced, kept here as the reference: the same rows in
the same order for every decision, and the same ``nba.pulls`` text."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nba.logs import io
from nba.logs.dsjson import (
    PULLS_KEY,
    WindowPulls,
    _pull_json,
    _us,
    iter_dsjson,
    window_pulls,
)
from nba.logs.join import join_rewards
from nba.logs.schema import TOUCHES
from nba.reward import RewardDefinition

from .test_logs_dsjson_pulls import _touch, _touches

RD = RewardDefinition.default()
US = timedelta(microseconds=1)
WINDOW = timedelta(days=RD.window_days)


def _reference(
    touches: pa.Table, joined: pa.Table, window_days: float, as_of: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The pulls of each decision's window, one row at a time (the code before
    the column-wise search): rows as dicts sorted by time, kind, channel and
    content id, grouped by HCP, each window found by ``bisect``."""
    touches = io.conform(touches, "touches")
    pulls = touches.filter(pc.not_equal(touches.column("kind"), "contact"))
    if as_of is not None:
        pulls = pulls.filter(
            pc.less_equal(pulls.column("ts"), pa.scalar(as_of, TOUCHES.field("ts").type))
        )
    if pulls.num_rows == 0 or joined.num_rows == 0:
        return {}
    rows = pulls.to_pylist()
    rows.sort(key=lambda t: (t["ts"], t["kind"], t["channel"], t["content_id"]))
    by_hcp: dict[str, tuple[list[int], list[dict[str, Any]]]] = {}
    for t in rows:
        us, kept = by_hcp.setdefault(t["hcp_id"], ([], []))
        us.append(_us(t["ts"]))
        kept.append(t)
    window_us = round(float(window_days) * 86_400 * 1_000_000)
    out: dict[str, list[dict[str, Any]]] = {}
    for eid, ts, hcp in zip(
        joined.column("event_id").to_pylist(),
        joined.column("ts").to_pylist(),
        joined.column("hcp_id").to_pylist(),
        strict=True,
    ):
        hit = by_hcp.get(hcp)
        if hit is None:
            continue
        lo = _us(ts)
        i, j = bisect_left(hit[0], lo), bisect_right(hit[0], lo + window_us)
        if i < j:
            out[eid] = hit[1][i:j]
    return out


def _same(touches: pa.Table, joined: pa.Table, window_days: float, **kw: Any) -> Any:
    """Assert the column-wise windows equal the reference's, keys in the same
    order, and each line's ``nba.pulls`` member equals the per-row writer's."""
    want = _reference(touches, joined, window_days, **kw)
    got = window_pulls(touches, joined, window_days, **kw)
    assert list(got) == list(want)
    assert {k: got[k] for k in got} == want
    if isinstance(got, WindowPulls):
        members = got.members(joined.column("event_id").combine_chunks()).to_pylist()
        expected = [
            (
                f',"{PULLS_KEY}":[{",".join(_pull_json(t) for t in want[eid])}]'
                if eid in want
                else ""
            )
            for eid in joined.column("event_id").to_pylist()
        ]
        assert members == expected
    else:
        assert want == {}
    return got


@pytest.fixture
def joined(make_decisions: Any, make_outcomes: Any) -> pa.Table:
    # 21 decisions, 7 HCPs (h0..h6), a day apart: each HCP's windows overlap
    return join_rewards(make_decisions(21, step=timedelta(days=1)), make_outcomes([]), RD).table


def test_no_pulls_and_no_decisions_give_nothing(joined: pa.Table) -> None:
    d = joined.to_pylist()[0]
    assert _same(_touches([]), joined, RD.window_days) == {}
    contacts = _touches([_touch(d["hcp_id"], d["ts"], "contact")])
    assert _same(contacts, joined, RD.window_days) == {}
    # pulls only of HCPs without decisions, or outside every window
    far = [_touch("nobody", d["ts"]), _touch(d["hcp_id"], d["ts"] - US)]
    assert len(_same(_touches(far), joined, RD.window_days)) == 0
    assert _same(_touches(far), joined.slice(0, 0), RD.window_days) == {}


def test_the_windows_bounds_several_hcps_ties_and_nulls(joined: pa.Table) -> None:
    rows: list[dict[str, Any]] = []
    for i, d in enumerate(joined.to_pylist()):
        h, ts = d["hcp_id"], d["ts"]
        rows += [
            _touch(h, ts - US, content_id=f"before-{i}"),
            _touch(h, ts, content_id=f"at-{i}", dwell_s=None),
            _touch(h, ts + WINDOW, content_id=f"end-{i}", topics=[], content_ids=["s1", "s2"]),
            _touch(h, ts + WINDOW + US, content_id=f"after-{i}"),
            # ties at one time: ordered by kind, channel, content id, then read order
            _touch(h, ts + timedelta(hours=3), "detail_pull", channel="rep_visit", content_id="b"),
            _touch(h, ts + timedelta(hours=3), "detail_pull", channel="rep_visit", content_id="a"),
            _touch(h, ts + timedelta(hours=3), "detail_pull", channel="email", content_id="z"),
            _touch(h, ts + timedelta(hours=3), "click", channel="rep_visit", content_id="z"),
            _touch(
                h,
                ts + timedelta(hours=3),
                "click",
                channel="rep_visit",
                content_id="z",
                dwell_s=1.0,
            ),
            _touch(h, ts + timedelta(hours=3), "contact", content_id=f"contact-{i}"),
            _touch(f"{h}-other", ts + timedelta(hours=1), content_id=f"other-{i}"),
            # strings JSON escapes, and text beyond ASCII
            _touch(
                h, ts + timedelta(days=1), content_id='q"uote\\\n', topics=["é", "✓"], dwell_s=1e-05
            ),
        ]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(rows))
    touches = _touches([rows[i] for i in order.tolist()])
    got = _same(touches, joined, RD.window_days)
    assert len(got) == joined.num_rows
    assert max(len(v) for v in got.values()) > 12  # windows of one HCP overlap
    # a horizon inside the windows, a fractional window, a window beyond every pull
    t_mid = joined.column("ts")[10].as_py() + timedelta(hours=3)
    _same(touches, joined, RD.window_days, as_of=t_mid)
    _same(touches, joined, 0.125)
    _same(touches, joined, 1e12)
    # chunked inputs
    chunked = pa.concat_tables([touches.slice(0, 50), touches.slice(50)])
    _same(chunked, pa.concat_tables([joined.slice(0, 5), joined.slice(5)]), RD.window_days)


def test_a_repeated_event_keeps_its_last_window_with_pulls(joined: pa.Table) -> None:
    first = joined.to_pylist()[0]
    rows = [_touch(first["hcp_id"], first["ts"] + timedelta(hours=1))]
    later = joined.slice(0, 1)
    i = later.schema.get_field_index("ts")
    moved = later.set_column(
        i,
        later.schema.field("ts"),
        pa.array([first["ts"] - timedelta(hours=2)], later.schema.field("ts").type),
    )
    gone = later.set_column(
        i,
        later.schema.field("ts"),
        pa.array([first["ts"] + 10 * WINDOW], later.schema.field("ts").type),
    )
    rows.append(_touch(first["hcp_id"], first["ts"] - timedelta(hours=1), content_id="early"))
    touches = _touches(rows)
    got = _same(touches, pa.concat_tables([joined, moved, gone]), RD.window_days)
    assert [t["content_id"] for t in got[first["event_id"]]] == ["early", "portal:dosing"]


def test_random_logs_match_the_reference_and_the_lines_match_the_per_row_writer(
    make_decisions: Any, make_outcomes: Any
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    dec = make_decisions(60, start=start, step=timedelta(hours=7))
    table = join_rewards(dec, make_outcomes([]), RD).table
    rng = np.random.default_rng(11)
    rows = []
    for _ in range(400):
        rows.append(
            _touch(
                f"h{int(rng.integers(0, 9))}",  # h7, h8: HCPs without decisions
                start + timedelta(hours=int(rng.integers(-48, 60 * 7 + 24 * 20))),  # ties
                str(rng.choice(["portal_view", "click", "detail_pull", "contact"])),
                channel=str(rng.choice(["portal", "email", "rep_visit"])),
                content_id=str(rng.choice(["a", "b", "c"])),
                dwell_s=None if rng.random() < 0.3 else float(rng.random()),
            )
        )
    touches = _touches(rows)
    got = _same(touches, table, RD.window_days)
    assert 0 < len(got) <= table.num_rows
    columnwise = list(iter_dsjson(table, pulls=got))
    assert columnwise == list(iter_dsjson(table, pulls=dict(got)))
    assert columnwise == list(iter_dsjson(table, pulls=got, bulk=False))
    assert sum(f'"{PULLS_KEY}":' in line for line in columnwise) == len(got)


def test_a_null_topic_goes_to_the_per_row_writer_with_the_same_line(joined: pa.Table) -> None:
    d = joined.to_pylist()[0]
    rows = [_touch(d["hcp_id"], d["ts"], topics=["a", None], dwell_s=None)]
    got = window_pulls(_touches(rows), joined, RD.window_days)
    assert dict(got) == _reference(_touches(rows), joined, RD.window_days)
    # the member's text is null: its line is left to the per-row writer
    assert got.members(joined.column("event_id")).to_pylist()[:2] == [None, ""]
    lines = list(iter_dsjson(joined, pulls=got))
    assert lines == list(iter_dsjson(joined, pulls=got, bulk=False))
    assert '"topics":["a",null]' in lines[0]
