"""The vectorized batch mask applies exactly the rules of ``filter()``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nba.catalog
from nba.catalog import Catalog
from nba.contact import ContactError, ContactPolicy, Feedback
from nba.domain import CHANNELS, HCPProfile, Touch

DAY = timedelta(days=1)


def default_catalog() -> Catalog:
    return Catalog.load(Path(nba.catalog.__file__).resolve().parent / "data" / "catalog.toml")


POLICY = ContactPolicy.from_dict(
    {
        "consent": {"exempt": ["portal"]},
        "feedback": {"dismissed_days": 20, "snooze_default_days": 5},
        "repeat": {"days": 14},
        "frequency_caps": [
            {"channel": "email", "max": 2, "days": 7},
            {"channel": "email", "max": 4, "days": 30},
            {"channel": "rep_visit", "max": 1, "days": 10},
            {"channel": "webinar", "max": 1, "days": 7},
        ],
        "min_gap": {"hours": 30},
    }
)


def random_case(
    rng: np.random.Generator, cat: Catalog, i: int
) -> tuple[HCPProfile, datetime, list[Touch], list[Feedback]]:
    market = str(rng.choice(["US", "DE", "FR", "GB", "JP"]))
    consents = frozenset(c for c in CHANNELS if rng.random() < 0.7)
    h = HCPProfile(f"h{i}", "cardiology", 5, market, "aware", consents, no_see=rng.random() < 0.3)
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=int(rng.integers(0, 400 * 86400)))
    items = [it.id for it in cat.items]
    touches = []
    for _ in range(int(rng.integers(0, 10))):
        secs = int(rng.integers(-2 * 86400, 40 * 86400))  # some in the future: ignored
        ch = str(rng.choice(CHANNELS, p=[0.15, 0.15, 0.4, 0.15, 0.15]))
        touches.append(Touch(h.hcp_id, now - timedelta(seconds=secs), ch, str(rng.choice(items))))
    feedback = []
    for _ in range(int(rng.integers(0, 4))):
        secs = int(rng.integers(-86400, 30 * 86400))
        ts = now - timedelta(seconds=secs)
        kind = str(rng.choice(["dismissed", "snoozed"]))
        until = None
        if kind == "snoozed" and rng.random() < 0.6:
            until = ts + timedelta(seconds=int(rng.integers(1, 10 * 86400)))
        feedback.append(Feedback(h.hcp_id, str(rng.choice(items)), kind, ts, until=until))
    return h, now, touches, feedback


def batch_inputs(
    cases: list[tuple[HCPProfile, datetime, list[Touch], list[Feedback]]],
    cat: Catalog,
    policy: ContactPolicy = POLICY,
) -> dict[str, Any]:
    """What a simulator would keep in its arrays, computed here from the same records."""
    n, n_ch, n_it = len(cases), len(cat.channels), len(cat.items)
    ch_pos = {c: k for k, c in enumerate(cat.channels)}
    it_pos = {it.id: k for k, it in enumerate(cat.items)}
    windows = policy.cap_windows
    approved = np.zeros((n, len(cat.actions)), dtype=bool)
    consents = np.zeros((n, n_ch), dtype=bool)
    no_see = np.zeros(n, dtype=bool)
    counts = np.zeros((n, n_ch, len(windows)), dtype=np.int64)
    last = np.full(n, math.inf)
    content = np.full((n, n_it), math.inf)
    dismissed = np.full((n, n_it), math.inf)
    snoozed = np.zeros((n, n_it), dtype=bool)
    for i, (h, now, touches, feedback) in enumerate(cases):
        approved[i] = cat.approval_matrix([h.market], now.date())[0]
        consents[i] = [c in h.consents for c in cat.channels]
        no_see[i] = h.no_see
        for t in touches:
            if t.ts > now:
                continue
            age = (now - t.ts) / DAY
            last[i] = min(last[i], age)
            content[i, it_pos[t.content_id]] = min(content[i, it_pos[t.content_id]], age)
            for w, days in enumerate(windows):
                counts[i, ch_pos[t.channel], w] += age < days
        for f in feedback:
            if f.ts > now:
                continue
            k = it_pos[f.content_id]
            if f.type == "dismissed":
                dismissed[i, k] = min(dismissed[i, k], (now - f.ts) / DAY)
            elif now < policy.for_market(h.market).snooze_end(f):
                snoozed[i, k] = True
    return {
        "action_channel": cat.action_channel_index,
        "action_content": cat.action_item_index,
        "channels": cat.channels,
        "approved": approved,
        "consents": consents,
        "no_see": no_see,
        "touch_counts": counts,
        "days_since_touch": last,
        "days_since_content": content,
        "days_since_dismissed": dismissed,
        "snoozed": snoozed,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_mask_equals_filter_on_random_cases(seed: int) -> None:
    cat = default_catalog()
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, cat, i) for i in range(150)]
    mask = POLICY.mask_batch(**batch_inputs(cases, cat))
    assert mask.allowed.shape == (150, len(cat.actions))
    fired: set[str] = set()
    for i, (h, now, touches, feedback) in enumerate(cases):
        out = POLICY.filter(h, cat.actions, now, touches, feedback, cat)
        expected = {s.action_id: s.rule for s in out.suppressed}
        got = {
            aid: mask.rule_names[mask.rule[i, j]]
            for j, aid in enumerate(cat.action_ids)
            if not mask.allowed[i, j]
        }
        assert got == expected, f"case {i}"
        assert [a.action_id for a in out.allowed] == [
            aid for j, aid in enumerate(cat.action_ids) if mask.allowed[i, j]
        ]
        fired |= set(expected.values())
    # the random cases exercise every rule, so the equality covers all of them
    assert fired == set(POLICY.rule_names)


def test_batch_mask_without_feedback_arrays() -> None:
    cat = default_catalog()
    rng = np.random.default_rng(5)
    cases: list[tuple[HCPProfile, datetime, list[Touch], list[Feedback]]] = [
        (h, now, t, []) for h, now, t, _ in (random_case(rng, cat, i) for i in range(50))
    ]
    args = batch_inputs(cases, cat)
    del args["days_since_dismissed"], args["snoozed"]
    mask = POLICY.mask_batch(**args)
    for i, (h, now, touches, _) in enumerate(cases):
        out = POLICY.filter(h, cat.actions, now, touches, [], cat)
        assert int((~mask.allowed[i]).sum()) == len(out.suppressed)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"approved": np.ones((3, 2), dtype=bool)}, "'approved' must have shape"),
        ({"consents": np.ones((3, 2), dtype=bool)}, "'consents' must have shape"),
        ({"no_see": np.zeros(4, dtype=bool)}, "'no_see' must have shape"),
        ({"touch_counts": np.zeros((3, 5, 1))}, "'touch_counts' must have shape"),
        ({"days_since_touch": np.zeros((3, 1))}, "'days_since_touch' must have shape"),
        ({"days_since_content": np.zeros(3)}, "'days_since_content' must have shape"),
        ({"snoozed": np.zeros((3, 7), dtype=bool)}, "'snoozed' must have shape"),
        ({"action_channel": np.array([0, 9, 1])}, "'action_channel' has indices outside"),
        ({"action_content": np.array([0, 1])}, "must be 1-d of one length"),
        ({"action_content": np.array([0, 1, 40])}, "'action_content' has indices outside"),
    ],
)
def test_batch_mask_bad_inputs(change: dict[str, Any], match: str) -> None:
    n, n_act, n_ch, n_it = 3, 3, 5, 4
    args: dict[str, Any] = {
        "action_channel": np.array([0, 1, 2]),
        "action_content": np.array([0, 1, 3]),
        "channels": CHANNELS,
        "approved": np.ones((n, n_act), dtype=bool),
        "consents": np.ones((n, n_ch), dtype=bool),
        "no_see": np.zeros(n, dtype=bool),
        "touch_counts": np.zeros((n, n_ch, len(POLICY.cap_windows))),
        "days_since_touch": np.full(n, np.inf),
        "days_since_content": np.full((n, n_it), np.inf),
    }
    POLICY.mask_batch(**args)  # the base case is valid
    with pytest.raises(ContactError, match=match):
        POLICY.mask_batch(**{**args, **change})
