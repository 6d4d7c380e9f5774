"""Reasons citing the HCP's own record: each kind of evidence read back from a real
SQLite store file, with the exact sentence a rep reads; ordering by topic, then
channel, then the rest; no two suggestions of a list leading alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import Action, Decision, HCPProfile, Outcome, StatedPreference, Touch
from serving.reasons import (
    CHANNEL,
    OTHER,
    TOPIC,
    Evidence,
    candidate_reasons,
    reasons_for,
    reasons_for_list,
)
from serving.store import ActionOutcome, EventStore

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
DAY = NOW.date()
CATALOG = Catalog.default()
TOPIC_OF = {c: it.topic for c, it in CATALOG.by_id.items()}


def at(m: int, d: int, h: int = 10, y: int = 2026) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def pull(ts: datetime, kind: str, channel: str, *topics: str, hcp: str = "h1") -> Touch:
    return Touch(hcp, ts, channel, "page-1", "external", kind, topics)


def dec(eid: str, ts: datetime, actions: tuple[str, ...], hcp: str = "h1") -> Decision:
    n = len(actions)
    return Decision(
        eid,
        ts,
        hcp,
        "rep_app",
        tuple(sorted({Action.parse(a).channel for a in actions})),
        "{}",
        CATALOG.version,
        actions,
        tuple(1.0 / n for _ in actions),
        0,
        actions[0],
        1.0 / n,
        "uniform",
        "none",
    )


def profile(hcp_id: str = "h1", stage: str = "trialing") -> HCPProfile:
    return HCPProfile(
        hcp_id, "cardiology", 5, "US", stage, frozenset({"email", "rep_visit", "webinar"})
    )


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    s = EventStore(tmp_path / "events.db")
    s.upsert_hcp(profile())
    s.upsert_hcp(profile("h2"))
    s.add_touches(
        [
            pull(at(11, 12), "detail_pull", "rep_visit", "dosing", "safety"),
            pull(at(10, 1), "detail_pull", "rep_visit", "guidelines"),
            pull(at(11, 5), "detail_pull", "remote_call", "guidelines"),
            pull(at(12, 3), "portal_view", "portal", "safety"),
            pull(at(12, 8), "portal_view", "portal", "safety"),
            pull(at(11, 20), "portal_view", "portal", "efficacy"),
            pull(at(11, 28), "portal_view", "portal", "mechanism"),
            pull(at(12, 5), "portal_view", "portal", "mechanism"),
            pull(at(12, 3), "webinar_question", "webinar", "efficacy"),
            pull(at(11, 28), "email_click", "email", "dosing"),
            # 91 days before the decision day: outside the record
            pull(at(9, 10), "detail_pull", "rep_visit", "cost_savings"),
            # after the decision time (a replayed decision): not cited
            pull(NOW + timedelta(hours=1), "detail_pull", "rep_visit", "patient_support"),
            # another HCP's pull
            pull(at(12, 1), "detail_pull", "rep_visit", "access_coverage", hcp="h2"),
            # a plain contact says nothing about interest
            Touch("h1", at(12, 2), "email", "VEL-ACC-02"),
        ]
    )
    # four safety emails: three opened (one also clicked, one opened twice), one delivered only
    rows: list[tuple[Decision, list[tuple[datetime, str, str, str | None]]]] = [
        (
            dec("D1", at(11, 1), ("VEL-SAF-01@email",)),
            [(at(11, 1, 11), "delivered", "a", None), (at(11, 1, 12), "opened", "a", None),
             (at(11, 1, 13), "clicked", "a", None)],
        ),
        (
            dec("D2", at(11, 8), ("VEL-SAF-02@email",)),
            [(at(11, 8, 11), "delivered", "a", None), (at(11, 8, 12), "opened", "a", None)],
        ),
        (
            dec("D3", at(11, 15), ("VEL-SAF-01@email",)),
            [(at(11, 15, 11), "opened", "a", None), (at(11, 16, 11), "opened", "b", None)],
        ),
        (dec("D4", at(11, 22), ("VEL-SAF-02@email",)), [(at(11, 22, 11), "delivered", "a", None)]),
        # a k=2 decision: the HCP attended the second suggestion, a clinical-data webinar
        (
            dec("D5", at(11, 25), ("VEL-EFF-02@email", "VEL-CLN-01@webinar")),
            [(at(11, 26), "registered", "w", "VEL-CLN-01@webinar"),
             (at(12, 2), "attended", "w", "VEL-CLN-01@webinar")],
        ),
        (dec("D6", at(11, 30), ("VEL-DOS-02@rep_visit",)),
         [(at(11, 30, 15), "meeting_held", "m", None)]),
        (dec("D7", at(11, 2), ("VEL-MOA-01@portal",)), [(at(11, 3), "downloaded", "p", None)]),
        (dec("D8", at(11, 9), ("VEL-MOA-01@portal",)), [(at(11, 9, 12), "visited", "p", None)]),
        # rep feedback is not a response of the HCP
        (dec("D9", at(12, 4), ("VEL-ACC-02@email",)), [(at(12, 4, 12), "accepted", "r", None)]),
        # older than 90 days, and another HCP's
        (dec("D10", at(9, 1), ("VEL-GDL-01@email",)), [(at(9, 1, 12), "opened", "o", None)]),
        (dec("D11", at(12, 1), ("VEL-GDL-01@email",), hcp="h2"),
         [(at(12, 1, 12), "opened", "o", None)]),
    ]  # fmt: skip
    for d, outs in rows:
        s.add_decision(d)
        for ts, typ, src, aid in outs:
            source = "rep" if typ == "accepted" else "hcp"
            s.add_outcome(Outcome(d.event_id, ts, typ, 1.0, source, src, aid))
    s.add_stated_preference(StatedPreference("h1", at(11, 12), "rep-0042", ("dosing",), ("email",)))
    s.add_stated_preference(StatedPreference("h1", at(10, 2), "rep-0007", ("safety",), ()))
    # after the decision: not cited
    s.add_stated_preference(
        StatedPreference("h1", NOW + timedelta(days=1), "rep-9", ("mechanism",))
    )
    return s


def evidence(s: EventStore, hcp: str = "h1") -> Evidence:
    since = NOW - timedelta(days=90)
    return Evidence.build(
        DAY,
        s.recent_touches(hcp, since),
        s.action_outcomes(hcp, since, NOW),
        s.stated_preferences(hcp),
        TOPIC_OF,
        now=NOW,
    )


def texts(ev: Evidence, topic: str, channel: str = "email") -> set[str]:
    return {r.text for r in ev.topic_reasons(topic, channel)}


def test_pulls_by_topic_with_date_and_kind(store: EventStore) -> None:
    ev = evidence(store)
    assert texts(ev, "dosing") == {
        "Asked about dosing in the 12 Nov detail",
        "Clicked the dosing link in an email on 28 Nov",
        "Told rep-0042 on 12 Nov they want dosing content",
        "Held 1 visit on dosing in the last 90 days",
    }
    assert texts(ev, "efficacy") == {
        "Asked a question on efficacy in the 3 Dec webinar",
        "Viewed a portal page on efficacy on 20 Nov",
    }
    assert "Viewed 2 portal pages on safety this month" in texts(ev, "safety")
    assert "Asked about safety in the 12 Nov detail" in texts(ev, "safety")
    assert "Viewed 2 portal pages on mechanism since 28 Nov" in texts(ev, "mechanism")
    # the 1 Oct detail is inside 90 days, the 10 Sep one is not; the later one is named
    assert texts(ev, "guidelines") == {"Asked about guidelines in 2 details, last on 5 Nov"}
    assert texts(ev, "cost_savings") == set()  # only 91 days old
    assert texts(ev, "patient_support") == set()  # after the decision
    assert texts(ev, "access_coverage") == set()  # another HCP's, and a plain contact


def test_responses_per_topic_and_channel(store: EventStore) -> None:
    ev = evidence(store)
    assert "Opened 3 of 4 emails on safety" in texts(ev, "safety")
    # the outcome named the second suggestion: it counts for that action's topic and channel
    assert texts(ev, "clinical_data") == {"Attended 1 of 1 webinar on clinical data"}
    assert "Opened 2 portal items on mechanism we sent" in texts(ev, "mechanism")
    # an outcome about the chosen VEL-EFF-02@email was never reported: nothing on efficacy email
    assert not any("email" in t for t in texts(ev, "efficacy"))
    # older than 90 days, another HCP's: nothing on guidelines beyond the pulls
    assert not any("Opened" in t for t in texts(ev, "guidelines"))


def test_stated_preferences_latest_statement_before_the_decision(store: EventStore) -> None:
    ev = evidence(store)
    assert "Told rep-0007 on 2 Oct they want safety content" in texts(ev, "safety")
    assert texts(ev, "mechanism") == {
        "Viewed 2 portal pages on mechanism since 28 Nov",
        "Opened 2 portal items on mechanism we sent",
    }  # the statement made after the decision is not cited
    assert [r.text for r in ev.channel_reasons("email")] == [
        "Told rep-0042 on 12 Nov they prefer emails"
    ]
    assert [r.group for r in ev.channel_reasons("email")] == [CHANNEL]
    assert ev.channel_reasons("webinar") == []
    later = StatedPreference("h1", at(12, 6), "rep-0099", ("dosing",))
    store.add_stated_preference(later)
    assert "Told rep-0099 on 6 Dec they want dosing content" in texts(evidence(store), "dosing")


def test_action_outcomes_joins_the_action_concerned(store: EventStore) -> None:
    got = store.action_outcomes("h1", at(11, 25), at(12, 2))
    assert [(o.event_id, o.action_id, o.type) for o in got] == [
        ("D5", "VEL-CLN-01@webinar", "registered"),
        ("D6", "VEL-DOS-02@rep_visit", "meeting_held"),
        ("D5", "VEL-CLN-01@webinar", "attended"),
    ]
    # one row per (decision, action, type): D3 was opened twice, the first open is kept
    d3 = [o for o in store.action_outcomes("h1", at(11, 1), NOW) if o.event_id == "D3"]
    assert d3 == [ActionOutcome("D3", "VEL-SAF-01@email", "opened", at(11, 15, 11))]


@pytest.mark.parametrize(
    ("since", "until", "match"),
    [
        (datetime(2026, 11, 1), NOW, "action_outcomes.*since.*timezone-aware"),
        (at(11, 1), datetime(2026, 12, 1), "action_outcomes.*until.*timezone-aware"),
        (date(2026, 11, 1), NOW, "action_outcomes.*since.*expected a datetime"),
    ],
)
def test_action_outcomes_bad_bounds(
    store: EventStore, since: object, until: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.action_outcomes("h1", since, until)  # type: ignore[arg-type]


def ctx(stage: str = "trialing", history: History | None = None) -> DecisionContext:
    return DecisionContext(hcp=profile(stage=stage), day=DAY, history=history or History())


def test_topic_evidence_first_then_channel_then_the_rest(store: EventStore) -> None:
    ev = evidence(store)
    h = History(engagements_30d={"email": 4}, touches_30d={"email": 1})
    cands = candidate_reasons(ctx(history=h), Action("VEL-DOS-03", "email"), "dosing", ev)
    groups = {r.text: r.group for r in cands}
    assert groups["Told rep-0042 on 12 Nov they prefer emails"] == CHANNEL
    assert groups["Engaged with 4 emails in the last 30 days"] == CHANNEL
    assert groups["Dosing content suits an HCP at the 'trialing' stage"] == OTHER
    got = reasons_for(ctx(history=h), Action("VEL-DOS-03", "email"), "dosing", evidence=ev)
    assert got == [
        "Clicked the dosing link in an email on 28 Nov",
        "Asked about dosing in the 12 Nov detail",
        "Told rep-0042 on 12 Nov they want dosing content",
    ]
    assert all(groups[t] == TOPIC for t in got)
    # a topic with no record: the channel's evidence comes first (behaviour before words)
    got = reasons_for(ctx(history=h), Action("VEL-PSP-02", "email"), "patient_support", evidence=ev)
    assert got == [
        "Engaged with 4 emails in the last 30 days",
        "Told rep-0042 on 12 Nov they prefer emails",
        "Prefers emails",
    ]


def test_record_replaces_the_vaguer_topic_count(store: EventStore) -> None:
    h = History(topic_engagements_90d={"safety": 3, "real_world_evidence": 2})
    ev = evidence(store)
    safety = {
        r.text
        for r in candidate_reasons(ctx(history=h), Action("VEL-SAF-01", "email"), "safety", ev)
    }
    assert "Engaged with 3 safety pieces in the last 90 days" not in safety
    assert "Opened 3 of 4 emails on safety" in safety
    rwe = reasons_for(
        ctx(history=h), Action("VEL-RWE-02", "email"), "real_world_evidence", evidence=ev
    )
    assert "Engaged with 2 real world evidence pieces in the last 90 days" in rwe
    # a pull is not a response: the count of responses still has its place
    h = History(topic_engagements_90d={"guidelines": 2})
    gdl = candidate_reasons(ctx(history=h), Action("VEL-GDL-01", "email"), "guidelines", ev)
    assert {r.text for r in gdl} >= {
        "Asked about guidelines in 2 details, last on 5 Nov",
        "Engaged with 2 guidelines pieces in the last 90 days",
    }


def o(eid: str, action: str, typ: str, ts: datetime) -> ActionOutcome:
    return ActionOutcome(eid, action, typ, ts)


@pytest.mark.parametrize(
    ("touches", "outcomes", "topic", "expected"),
    [
        (
            [pull(at(11, 2), "webinar_question", "webinar", "dosing"),
             pull(at(12, 1), "webinar_question", "webinar", "dosing")],
            [], "dosing", {"Asked 2 questions on dosing in webinars, last on 1 Dec"},
        ),
        (
            [pull(at(11, 2), "email_click", "email", "access_coverage"),
             pull(at(11, 4), "email_click", "email", "access_coverage")],
            [], "access_coverage", {"Clicked 2 access coverage links in emails, last on 4 Nov"},
        ),
        (
            [pull(at(12, 20, y=2025), "portal_view", "portal", "safety"),
             pull(at(12, 1), "portal_view", "portal", "safety")],
            [], "safety", {"Viewed a portal page on safety on 1 Dec"},  # the first is too old
        ),
        (
            [pull(at(9, 20), "portal_view", "portal", "safety"),
             pull(at(12, 1), "portal_view", "portal", "safety")],
            [], "safety", {"Viewed 2 portal pages on safety since 20 Sep"},
        ),
        (
            [],
            [o("A", "VEL-CLN-01@webinar", "registered", at(11, 1)),
             o("B", "VEL-CLN-02@webinar", "registered", at(11, 2)),
             o("B", "VEL-CLN-02@webinar", "attended", at(11, 9))],
            "clinical_data", {"Attended 1 of 2 webinars on clinical data"},
        ),
        (
            [],
            [o("A", "VEL-SAF-01@email", "delivered", at(11, 1)),
             o("B", "VEL-SAF-02@email", "delivered", at(11, 2))],
            "safety", set(),  # nothing opened: not a reason to send more
        ),
        (
            [],
            [o("A", "VEL-GDL-03@remote_call", "call_held", at(11, 1)),
             o("B", "VEL-GDL-03@remote_call", "call_held", at(11, 20))],
            "guidelines", {"Held 2 remote calls on guidelines in the last 90 days"},
        ),
        (
            [],
            [o("A", "NOT-IN-CATALOG@email", "opened", at(11, 1))],
            "safety", set(),  # content the catalog does not know has no topic
        ),
    ],
)  # fmt: skip
def test_counted_sentences(
    touches: list[Touch], outcomes: list[ActionOutcome], topic: str, expected: set[str]
) -> None:
    ev = Evidence.build(DAY, touches, outcomes, [], TOPIC_OF, now=NOW)
    assert texts(ev, topic) == expected


def test_list_of_three_never_leads_alike(store: EventStore) -> None:
    ev = evidence(store)
    c = ctx(
        stage="advocate", history=History(engagements_30d={"email": 2}, touches_30d={"email": 2})
    )
    # two email items on a topic with no record, and one on dosing
    shown = [
        (Action("VEL-CST-02", "email"), "cost_savings"),
        (Action("VEL-PSP-03", "email"), "patient_support"),
        (Action("VEL-DOS-04", "email"), "dosing"),
    ]
    alone = [reasons_for(c, a, t, evidence=ev) for a, t in shown]
    assert alone[0][0] == alone[1][0] == "Told rep-0042 on 12 Nov they prefer emails"
    listed = reasons_for_list(c, shown, ev)
    assert listed[0] == alone[0]
    assert listed[1][0] != listed[0][0]
    assert listed[1] == [alone[1][1], alone[1][0], *alone[1][2:]]
    assert listed[2] == alone[2]  # its own best reason was not taken
    assert len({r[0] for r in listed}) == 3


def test_list_keeps_a_shared_reason_when_nothing_else_is_true() -> None:
    c = ctx(stage="advocate")
    shown = [
        (Action("VEL-CST-02", "email"), "cost_savings"),
        (Action("VEL-PSP-03", "email"), "patient_support"),
    ]
    listed = reasons_for_list(c, shown, Evidence(DAY))
    assert listed == [["No contact of any kind in the last 30 days"]] * 2


def test_no_record_gets_sensible_reasons(store: EventStore) -> None:
    ev = evidence(store, "nobody")
    assert ev == Evidence(DAY)
    got = reasons_for_list(
        ctx(stage="considering"),
        [(Action("VEL-SAF-01", "email"), "safety"), (Action("VEL-EFF-02", "email"), "efficacy")],
        ev,
    )
    assert got == [
        [
            "No contact of any kind in the last 30 days",
            "Safety content suits an HCP at the 'considering' stage",
        ],
        ["No contact of any kind in the last 30 days"],
    ]


def test_contributions_must_match_the_list() -> None:
    with pytest.raises(
        ValueError, match="reasons_for_list: 1 contribution mappings for 2 suggestions"
    ):
        reasons_for_list(
            ctx(),
            [
                (Action("VEL-SAF-01", "email"), "safety"),
                (Action("VEL-EFF-02", "email"), "efficacy"),
            ],
            contributions=[None],
        )
