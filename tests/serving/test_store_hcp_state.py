"""One round trip for an HCP's state: EventStore.hcp_state equals the separate reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from nba.catalog import Catalog
from nba.domain import Decision, HCPProfile, Outcome, StatedPreference, Touch
from serving.store import EventStore, _to_us

NOW = datetime(2026, 5, 20, 15, 30, tzinfo=UTC)
TYPES_BY_CHANNEL = {
    "email": ("delivered", "opened", "clicked"),
    "portal": ("visited", "downloaded"),
    "webinar": ("registered", "attended"),
    "rep_visit": ("meeting_held", "sample_requested"),
    "remote_call": ("call_held",),
}


def _populate(store: EventStore, catalog: Catalog, seed: int) -> None:
    """Three HCPs with 120 days of touches, decisions, outcomes, feedback,
    statements and trigger suppressions, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    actions = [a.action_id for a in catalog.actions]
    topics = sorted({it.topic for it in catalog.items})
    for h in ("h1", "h2", "h3"):
        store.upsert_hcp(
            HCPProfile(h, "cardiology", 5, "US", "aware", frozenset({"email"}), False, 0.5),
            {"tier": h},
        )
        touches = []
        for _ in range(40):
            ts = NOW - timedelta(days=float(rng.uniform(0, 120)))
            a = actions[int(rng.integers(len(actions)))]
            content, channel = a.split("@")
            if rng.random() < 0.3:
                picked = tuple(topics[i] for i in rng.choice(len(topics), 2, replace=False))
                touches.append(
                    Touch(
                        h,
                        ts,
                        "portal",
                        content,
                        "external",
                        "portal_view",
                        picked,
                        (content,),
                        12.5,
                    )
                )
            else:
                touches.append(Touch(h, ts, channel, content, "ours"))
        store.add_touches(touches)
        for i in range(25):
            ts = NOW - timedelta(days=float(rng.uniform(1, 110)))
            ids = tuple(actions[j] for j in rng.choice(len(actions), 3, replace=False))
            d = Decision(
                f"{h}-E{i}", ts, h, "rep_app", ("email",), "{}", "c1", ids,
                (0.2, 0.3, 0.5), 2, ids[2], 0.5, "vw", "m1",
            )  # fmt: skip
            store.add_decision(d)
            for target in ids[:2] if rng.random() < 0.5 else ids[2:]:
                channel = target.split("@")[1]
                for typ in TYPES_BY_CHANNEL[channel]:
                    if rng.random() < 0.6:
                        late = timedelta(hours=float(rng.uniform(1, 200)))
                        store.add_outcome(
                            Outcome(d.event_id, ts + late, typ, 1.0, "crm", "s1", target)
                        )
            if rng.random() < 0.3:
                fb = "snoozed" if rng.random() < 0.5 else "dismissed"
                until = ts + timedelta(days=60) if fb == "snoozed" else None
                store.add_outcome(
                    Outcome(d.event_id, ts + timedelta(hours=1), fb, 1.0, "rep", "r1", ids[2]),
                    reason_code="not_relevant" if fb == "dismissed" else None,
                    snooze_until=until,
                )
        for j in range(4):
            store.add_stated_preference(
                StatedPreference(
                    h,
                    NOW - timedelta(days=float(rng.uniform(0, 200))),
                    "rep",
                    (topics[j % len(topics)],) if j % 2 else (),
                    ("email",) if j != 1 else (),
                )
            )
        # an override touch, and trigger suppressions (one in force, one ended)
        first = f"{h}-E0"
        with store._write() as c:
            c.execute(
                "INSERT INTO touches (hcp_id, ts_us, channel, content_id, origin, kind, topics,"
                " content_ids, overrides_event_id, overrides_hcp_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (h, _to_us(NOW - timedelta(days=2)), "rep_visit", "VEL-EFF-01", "external",
                 "contact", "[]", "[]", first, h),
            )  # fmt: skip
            for k, (lo, hi) in enumerate(((-5, 5), (-20, -10))):
                c.execute(
                    "INSERT INTO trigger_suppressions (event_key, trigger, hcp_id, channel,"
                    " content_id, since_us, until_us) VALUES (?,?,?,?,?,?,?)",
                    (f"{h}-k{k}", "t1", h, "email", None if k else "VEL-EFF-02",
                     _to_us(NOW + timedelta(days=lo)), _to_us(NOW + timedelta(days=hi))),
                )  # fmt: skip


@pytest.mark.parametrize("seed", [3, 11])
def test_the_one_query_state_equals_the_separate_reads(
    store_at: Callable[..., str | Path], seed: int
) -> None:
    from serving.store_triggers import active_suppressions

    catalog = Catalog.default()
    store = EventStore(store_at(f"s{seed}.db"))
    _populate(store, catalog, seed)
    since = NOW - timedelta(days=30)
    checked = 0
    for h in ("h1", "h2", "h3", "nobody"):
        state = store.hcp_state(h, NOW, since, catalog)
        assert state.profile == store.get_hcp(h)
        assert state.touches == store.recent_touches(h, since)
        assert state.feedback == store.recent_feedback(h, NOW)
        assert state.history == store.history(h, NOW.date(), catalog)
        assert state.extras == store.context_extras(h, NOW.date())
        assert state.action_outcomes == store.action_outcomes(h, since, NOW)
        assert state.stated_preferences == store.stated_preferences(h)
        assert [tuple(vars_of(s)) for s in active_suppressions(store, h, NOW)] == [
            tuple(r) for r in state.trigger_suppressions
        ]
        if h != "nobody":
            # the populated store gives each part something to compare
            assert state.touches and state.history.touches_90d and state.extras
            assert state.action_outcomes and state.stated_preferences
            assert state.history.overrides_90d == 1 and len(state.trigger_suppressions) == 1
            checked += bool(state.feedback) + bool(state.history.topic_engagements_90d)
        else:
            assert state.profile is None and state.extras is None and state.touches == []
    assert checked >= 3
    lean = store.hcp_state("h1", NOW, since, catalog, evidence=False)
    assert lean.action_outcomes is None and lean.stated_preferences is None
    assert lean.history == store.history("h1", NOW.date(), catalog)


def vars_of(s: object) -> tuple[object, ...]:
    return (s.trigger, s.channel, s.content_id, s.since, s.until)  # type: ignore[attr-defined]


def test_state_refuses_naive_times(store_at: Callable[..., str | Path]) -> None:
    from nba.domain import ValidationError

    store = EventStore(store_at())
    with pytest.raises(ValidationError, match="timezone"):
        store.hcp_state("h1", NOW.replace(tzinfo=None), NOW - timedelta(days=1), Catalog.default())
