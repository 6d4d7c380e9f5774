"""HistoryTracker's topic x channel engagements and days since each content item,
against histories built by hand, day by day."""

from __future__ import annotations

from datetime import date

import numpy as np

from nba.context import DecisionContext
from simulators.hcp.history import ContextBuilder, HistoryTracker

CHANNELS = ("email", "portal")
TOPICS = ("efficacy", "safety")
ITEMS = ("A", "B", "C")


def _a(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def _tracker() -> HistoryTracker:
    return HistoryTracker(2, len(CHANNELS), len(TOPICS), horizon_days=15, n_items=len(ITEMS))


def _advance_to(tr: HistoryTracker, day: int) -> None:
    while tr.day < day:
        tr.advance(tr.day + 1)


def test_days_since_content_is_the_latest_receipt_within_90_days() -> None:
    tr = _tracker()
    # day 0: HCP 0 gets A by email; HCP 1 gets C on the portal
    tr.record_touches(0, _a(0, 1), _a(0, 1), _a(0, 2), _a(1000, 2000))
    assert tr.days_since_content(_a(0, 1)).tolist() == [[0, 0, 0], [0, 0, 0]]  # not before tomorrow
    _advance_to(tr, 1)
    assert tr.days_since_content(_a(0, 1)).tolist() == [[1, 0, 0], [0, 0, 1]]
    _advance_to(tr, 5)
    tr.record_touches(5, _a(0), _a(1), _a(0), _a(5000))  # A again, on another channel
    _advance_to(tr, 7)
    assert tr.days_since_content(_a(0, 1)).tolist() == [[2, 0, 0], [0, 0, 7]]
    _advance_to(tr, 90)
    assert tr.days_since_content(_a(0, 1)).tolist() == [[85, 0, 0], [0, 0, 90]]
    _advance_to(tr, 91)  # C was received 91 days ago: out of the window
    assert tr.days_since_content(_a(0, 1)).tolist() == [[86, 0, 0], [0, 0, 0]]


def test_topic_channel_engagements_count_the_90_days_before_by_outcome_day() -> None:
    tr = _tracker()
    # outcomes of day-0 touches land on days 0, 0, 3 and 20 (delays); HCP 1 once on day 2
    tr.record_engagements(_a(0, 0, 3, 20), _a(0, 0, 0, 0), _a(0, 0, 1, 0), _a(1, 1, 0, 1))
    tr.record_engagements(_a(2), _a(1), _a(1), _a(0))
    # columns: efficacy@email, efficacy@portal, safety@email, safety@portal
    _advance_to(tr, 1)
    assert tr.topic_channel_engagements(_a(0, 1)).tolist() == [[0, 0, 2, 0], [0, 0, 0, 0]]
    _advance_to(tr, 4)
    assert tr.topic_channel_engagements(_a(0, 1)).tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    _advance_to(tr, 21)
    assert tr.topic_channel_engagements(_a(0))[0].tolist() == [0, 1, 3, 0]
    _advance_to(tr, 91)  # day 0 leaves the window
    assert tr.topic_channel_engagements(_a(0, 1)).tolist() == [[0, 1, 1, 0], [0, 1, 0, 0]]
    _advance_to(tr, 111)  # and so does everything else
    assert tr.topic_channel_engagements(_a(0, 1)).sum() == 0


def test_context_builder_writes_the_new_maps_as_to_json_does() -> None:
    tr = _tracker()
    tr.record_touches(0, _a(0), _a(1), _a(2), _a(1000))
    tr.record_engagements(_a(0), _a(0), _a(1), _a(0))
    _advance_to(tr, 3)
    profile = (
        '{"adoption_stage":"aware","consents":["email"],"decile":5,"digital_affinity":0.5,'
        '"hcp_id":"h0","market":"US","no_see":false,"specialty":"cardiology"}'
    )
    profiles = np.array([profile, profile.replace('"h0"', '"h1"')], dtype=object)
    b = ContextBuilder(CHANNELS, TOPICS, ITEMS)
    rows = b.build(date(2026, 1, 4), profiles, tr, _a(0, 1), '{"requester":"x"}')
    ctx = DecisionContext.from_json(rows[0])
    assert ctx.to_json() == rows[0]
    assert ctx.history.days_since_content == {"C": 3}
    assert ctx.history.topic_channel_engagements_90d == {"efficacy@portal": 1}
    empty = DecisionContext.from_json(rows[1])
    assert empty.to_json() == rows[1] and empty.history.days_since_content == {}
