"""Reasons: 1-3 short rep-readable reasons from the HCP's features and history,
never the action's own label alone."""

from __future__ import annotations

from datetime import date

import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import Action, HCPProfile
from serving.reasons import candidate_reasons, reasons_for

DAY = date(2026, 3, 2)


def ctx(history: History | None = None, **profile: object) -> DecisionContext:
    base: dict[str, object] = {
        "hcp_id": "R1",
        "specialty": "cardiology",
        "decile": 5,
        "market": "US",
        "adoption_stage": "considering",
        "consents": frozenset({"email", "webinar", "rep_visit"}),
        "digital_affinity": 0.5,
    }
    base.update(profile)
    return DecisionContext(hcp=HCPProfile(**base), day=DAY, history=history or History())  # type: ignore[arg-type]


def test_history_reasons_name_counts_and_windows() -> None:
    h = History(
        engagements_30d={"email": 2},
        topic_engagements_90d={"efficacy": 2},
        touches_30d={"email": 3},
        touches_90d={"email": 3, "rep_visit": 1},
        days_since_touch={"rep_visit": 45, "email": 3},
    )
    email = reasons_for(ctx(h), Action("VEL-EFF-02", "email"), "efficacy")
    assert email[0] == "Engaged with 2 emails in the last 30 days"
    assert "Prefers emails" in email
    assert "Engaged with 2 efficacy pieces in the last 90 days" in email
    visit = reasons_for(ctx(h), Action("VEL-EFF-01", "rep_visit"), "safety")
    assert visit[0] == "No visit for 45 days"


@pytest.mark.parametrize("seed", range(20))
def test_one_to_three_reasons_never_the_label_alone(seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    cat = Catalog.default()
    channels = list(cat.channels)
    h = History(
        engagements_30d={c: int(rng.integers(0, 3)) for c in channels},
        topic_engagements_90d={t: int(rng.integers(0, 3)) for t in cat.topics},
        touches_30d={c: int(rng.integers(0, 2)) for c in channels},
        days_since_touch={c: int(rng.integers(1, 90)) for c in channels if rng.random() < 0.5},
    )
    c = ctx(h, decile=int(rng.integers(1, 11)), digital_affinity=float(rng.random()))
    for action in cat.actions[::7]:
        item = cat.by_id[action.content_id]
        rs = reasons_for(c, action, item.topic)
        assert 1 <= len(rs) <= 3 and len(set(rs)) == len(rs)
        for r in rs:
            assert item.title not in r and action.action_id not in r and action.content_id not in r
            assert len(r) <= 80


def test_fallback_reason_speaks_about_the_hcp() -> None:
    c = ctx(
        History(
            touches_7d={"email": 1},
            touches_30d={"email": 1},
            touches_90d={"email": 1},
            days_since_touch={"email": 2},
        ),
        adoption_stage="advocate",
    )
    assert candidate_reasons(c, Action("VEL-SAF-01", "email"), "safety") == []
    assert reasons_for(c, Action("VEL-SAF-01", "email"), "safety") == [
        "Consents to emails and is within the contact limits"
    ]


def test_contributions_reorder_reasons() -> None:
    h = History(engagements_30d={"webinar": 1}, topic_engagements_90d={"dosing": 3})
    a = Action("VEL-DOS-01", "webinar")
    plain = reasons_for(ctx(h), a, "dosing")
    assert plain[0].startswith("Engaged with 3 dosing")
    boosted = reasons_for(ctx(h), a, "dosing", contributions={"eng30:webinar": 2.0})
    assert set(boosted[:2]) == {"Engaged with 1 webinar in the last 30 days", "Prefers webinars"}
    assert boosted[2].startswith("Engaged with 3 dosing")
    assert reasons_for(ctx(h), a, "dosing", max_reasons=1) == plain[:1]
