"""Journeys: the file format and its errors, the schema, and the step logic."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from nba.domain import HCPProfile
from nba.journeys import (
    JourneyEvent,
    JourneysError,
    JourneySet,
    json_schema,
    schema_path,
    schema_text,
)

HCP = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email", "webinar", "portal"}))
T0 = datetime(2026, 1, 5, 18, 30, tzinfo=UTC)  # a Monday evening webinar

FOLLOWUP = """\
name = "t"

[[journeys]]
name = "followup"
priority = 5

[journeys.entry]
event = "attended"
channels = ["webinar"]

[journeys.exit]
max_days = 30

[[journeys.steps]]
name = "email"
channels = ["email"]
topic = "same"
after_days = [2, 5]
hold = true
"""


def at(days: float, hour: int = 7) -> datetime:
    base = datetime(2026, 1, 5, hour, tzinfo=UTC)
    return base + timedelta(days=days)


def attended(ts: datetime = T0, topic: str = "efficacy") -> list[JourneyEvent]:
    return [
        JourneyEvent(ts, "decision", "webinar", "VEL-EFF-05", topic),
        JourneyEvent(ts, "attended", "webinar", "VEL-EFF-05", topic),
    ]


def test_the_packaged_example_is_valid_and_ordered_by_priority() -> None:
    js = JourneySet.default()
    assert [j.name for j in js.journeys] == ["webinar-followup", "safety-nurture"]
    assert len(js.version) == 16
    assert "journey:webinar-followup/1" in js.rule_names


def test_the_published_schema_is_the_validators_schema() -> None:
    assert schema_path().read_text(encoding="utf-8") == schema_text()
    schema = json_schema()
    journey = schema["properties"]["journeys"]["items"]
    # the schema names exactly the keys the validator accepts
    assert set(journey["properties"]) == {
        "name",
        "description",
        "priority",
        "entry",
        "exit",
        "exclude",
        "steps",
    }
    assert journey["properties"]["entry"]["properties"]["event"]["enum"][0] == "attended"
    step = journey["properties"]["steps"]["items"]
    assert step["required"] == ["channels", "after_days"]
    assert json.loads(schema_text()) == schema


# ------------------------------------------------------------------ bad files
BAD = [
    (
        FOLLOWUP.replace('event = "attended"', 'event = "atended"'),
        "journeys.0.entry.event",
        8,
        "'atended' is not an HCP response",
    ),
    (
        FOLLOWUP.replace("after_days = [2, 5]", "after_days = [5, 2]"),
        "journeys.0.steps.0.after_days",
        18,
        "0 <= min <= max",
    ),
    (
        FOLLOWUP.replace("after_days = [2, 5]", "after_days = 3"),
        "journeys.0.steps.0.after_days",
        18,
        "must be \\[min, max\\]",
    ),
    (
        FOLLOWUP.replace('channels = ["email"]', 'channels = ["fax"]'),
        "journeys.0.steps.0.channels",
        16,
        "unknown channel 'fax'",
    ),
    (
        FOLLOWUP.replace('topic = "same"', 'topics = ["effcacy"]'),
        "journeys.0.steps.0.topics",
        17,
        "unknown topic 'effcacy'",
    ),
    (
        FOLLOWUP.replace('topic = "same"', 'topic = "other"'),
        "journeys.0.steps.0.topic",
        17,
        "must be 'same' or 'any'",
    ),
    (
        FOLLOWUP.replace("hold = true", "hold = true\nwait = 3"),
        "journeys.0.steps.0.wait",
        20,
        "unknown key",
    ),
    (
        FOLLOWUP.replace("max_days = 30", "max_days = 4"),
        "journeys.0.exit.max_days",
        12,
        "beyond max_days = 4",
    ),
    (
        FOLLOWUP.replace("priority = 5", 'priority = "high"'),
        "journeys.0.priority",
        5,
        "must be an integer",
    ),
    (
        FOLLOWUP.replace("hold = true", "max_attempts = 2"),
        "journeys.0.steps.0.max_attempts",
        19,
        "only a step with until_engaged",
    ),
    (
        FOLLOWUP + FOLLOWUP.split("\n", 2)[2],
        "journeys.1.name",
        21,
        "defined twice",
    ),
    (
        FOLLOWUP.replace(
            "[journeys.exit]\nmax_days = 30\n", "[journeys.exclude]\nmarkets = ['XX']\n"
        ),
        "journeys.0.exclude.markets",
        12,
        "unknown market 'XX'",
    ),
    (
        FOLLOWUP.replace('name = "followup"', 'name = "Follow Up"'),
        "journeys.0.name",
        4,
        "must be 1-64 of a-z",
    ),
    (
        FOLLOWUP.replace(
            "[journeys.exit]\nmax_days = 30\n", "[journeys.exit]\nevents = ['attended']\n"
        ),
        "journeys.0.exit.events",
        12,
        "is the entry event",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "match"), BAD)
def test_a_bad_file_names_the_key_and_the_line(text: str, key: str, line: int, match: str) -> None:
    with pytest.raises(JourneysError, match=match) as info:
        JourneySet.loads(text, source="j.toml")
    assert info.value.key == key
    assert info.value.line == line
    assert str(info.value).startswith(f"j.toml, line {line}: key '{key}':")


def test_invalid_toml_names_its_line() -> None:
    with pytest.raises(JourneysError, match=r"j.toml, line 3: not valid TOML") as info:
        JourneySet.loads('name = "x"\n\n[[journeys]\n', source="j.toml")
    assert info.value.line == 3


def test_the_line_of_a_second_journeys_step() -> None:
    text = FOLLOWUP + '\n[[journeys.steps]]\nchannels = ["portal"]\nafter_days = [1, 2, 3]\n'
    with pytest.raises(JourneysError) as info:
        JourneySet.loads(text, source="j.toml")
    assert (info.value.key, info.value.line) == ("journeys.0.steps.1.after_days", 23)


# ------------------------------------------------------------------ the steps
def followup() -> JourneySet:
    return JourneySet.loads(FOLLOWUP)


def email(ts: datetime, topic: str = "efficacy") -> JourneyEvent:
    content = {"efficacy": "VEL-EFF-02", "safety": "VEL-SAF-01"}[topic]
    return JourneyEvent(ts, "decision", "email", content, topic)


def test_the_followup_is_due_only_within_its_window() -> None:
    js = followup()
    seen = {}
    for d in range(0, 8):
        st = js.states(HCP, attended(), at(d))[0]
        seen[d] = (st.status, st.holding)
    # entered on Jan 5 (day 0): held on days 1 (and 0, after the webinar), due on days 2-5
    assert seen[1] == ("waiting", True)
    assert [seen[d][0] for d in (2, 3, 4, 5)] == ["due"] * 4
    assert seen[6][0] == "ended" and seen[7][0] == "ended"
    st = js.states(HCP, attended(), at(3))[0]
    assert st.label == "followup/1" and st.window == ("2026-01-07", "2026-01-10")
    assert st.topics == ("efficacy",) and st.channels == ("email",)
    assert "window" in js.states(HCP, attended(), at(6))[0].reason


def test_a_followup_in_the_window_completes_the_journey() -> None:
    js = followup()
    ev = [*attended(), email(at(3))]
    st = js.states(HCP, ev, at(4))[0]
    assert st.status == "completed" and st.label is None
    # an email on another topic does not count as the follow-up
    other = js.states(HCP, [*attended(), email(at(3), "safety")], at(4))[0]
    assert other.status == "due"


def test_the_gate_keeps_what_the_due_step_allows() -> None:
    js = followup()
    states = js.states(HCP, attended(), at(3))
    cands = [("email", "efficacy"), ("email", "safety"), ("portal", "efficacy")]
    gate = js.gate(states, cands)
    assert gate.label == "followup/1"
    assert gate.keep == (True, False, False)
    assert gate.rules == (None, "journey:followup/1", "journey:followup/1")
    # a request without the step's channels is not governed by it
    assert js.gate(states, [("portal", "efficacy")]).label is None
    # before the window: email is held, other channels pass, nothing governs
    held = js.gate(js.states(HCP, attended(), at(1)), cands)
    assert held.label is None
    assert held.keep == (False, False, True)
    assert held.rules[0] == "journey_hold:followup/1"


def test_events_are_read_in_time_order_whatever_their_input_order() -> None:
    js = JourneySet.default()
    ev = [*attended(), email(at(1)), email(at(3)), *attended(at(10, 18), "safety")]
    expect = [s.to_dict() for s in js.states(HCP, ev, at(12))]
    rnd = random.Random(4)
    for _ in range(5):
        shuffled = ev[:]
        rnd.shuffle(shuffled)
        assert [s.to_dict() for s in js.states(HCP, shuffled, at(12))] == expect


def test_events_after_now_are_ignored() -> None:
    js = followup()
    # the webinar's outcome is stamped after the decision time: not known yet
    assert js.states(HCP, attended(), T0 - timedelta(hours=1))[0].status == "not_entered"


def test_an_entry_while_running_is_ignored_and_a_new_one_after_the_end_starts_again() -> None:
    js = followup()
    ev = [*attended(), *attended(at(2, 18), "safety")]
    st = js.states(HCP, ev, at(3))[0]
    assert st.topic == "efficacy"
    ev.append(email(at(3)))
    ev += attended(at(8, 18), "safety")
    st = js.states(HCP, ev, at(10))[0]
    assert (st.status, st.topic, st.window) == ("due", "safety", ("2026-01-15", "2026-01-18"))


NURTURE = """\
[[journeys]]
name = "nurture"
[journeys.entry]
event = "clicked"
topics = ["safety"]
[journeys.exit]
max_days = 40
[[journeys.steps]]
channels = ["email", "portal"]
after_days = [3, 10]
until_engaged = true
max_attempts = 2
[[journeys.steps]]
name = "thanks"
channels = ["email"]
topic = "any"
after_days = [1, 3]
"""


def clicked(ts: datetime) -> list[JourneyEvent]:
    return [
        JourneyEvent(ts, "decision", "email", "VEL-SAF-01", "safety"),
        JourneyEvent(ts + timedelta(hours=2), "clicked", "email", "VEL-SAF-01", "safety"),
    ]


def test_stay_on_topic_until_engaged() -> None:
    js = JourneySet.loads(NURTURE)
    ev = clicked(at(0))
    st = js.states(HCP, ev, at(3))[0]
    assert (st.status, st.label, st.attempts) == ("due", "nurture/1", 0)
    ev.append(email(at(4), "safety"))  # attempt 1, no engagement
    st = js.states(HCP, ev, at(5))[0]
    assert (st.status, st.attempts, st.window) == ("waiting", 1, ("2026-01-12", "2026-01-19"))
    ev.append(email(at(8), "safety"))  # attempt 2 (the last)
    st = js.states(HCP, ev, at(9))[0]
    assert st.status == "waiting" and "waiting for engagement" in st.reason
    # no engagement within the last window: the journey ends
    assert js.states(HCP, ev, at(19))[0].reason.endswith("no engagement after the last attempt")
    # an open on safety after an attempt: step 1 done, step 2 due 1-3 days later on any topic
    ev.append(JourneyEvent(at(9, 12), "opened", "email", "VEL-SAF-01", "safety"))
    st = js.states(HCP, ev, at(10))[0]
    assert (st.status, st.label, st.topics) == ("due", "nurture/2", None)
    # an engagement on another topic does not end step 1
    other = [*clicked(at(0)), email(at(4), "safety")]
    other.append(JourneyEvent(at(5), "opened", "email", "VEL-EFF-02", "efficacy"))
    assert js.states(HCP, other, at(6))[0].label == "nurture/1"


def test_exit_events_exclusions_and_priorities() -> None:
    js = JourneySet.default()
    ev = [*attended(), *clicked(at(1))]
    states = js.states(HCP, ev, at(4))
    assert [s.journey for s in states] == ["webinar-followup", "safety-nurture"]
    assert [s.status for s in states] == ["due", "due"]
    gate = js.gate(states, [("email", "efficacy"), ("email", "safety"), ("portal", "safety")])
    # the higher priority governs while it allows a candidate
    assert gate.label == "webinar-followup/1" and gate.keep == (True, False, False)
    # ... and the next due journey when it allows none
    gate = js.gate(states, [("email", "safety"), ("portal", "safety")])
    assert gate.label == "safety-nurture/1" and gate.keep == (True, True)
    # an unsubscribe ends both
    ev.append(JourneyEvent(at(4, 3), "unsubscribed", "email", "VEL-SAF-01", "safety"))
    assert [s.reason.split(": ")[-1] for s in js.states(HCP, ev, at(4))] == [
        "exit event 'unsubscribed'"
    ] * 2
    advocate = HCPProfile("h2", "cardiology", 7, "US", "advocate", frozenset({"email"}))
    st = js.states(advocate, attended(), at(3))[0]
    assert (st.status, st.reason) == ("excluded", "adoption stage advocate is excluded")


def test_history_older_than_max_days_is_not_read() -> None:
    js = followup()
    # an entry 31 days ago (max_days = 30) is out of sight
    assert js.states(HCP, attended(), at(31))[0].status == "not_entered"


def test_an_empty_set_gates_nothing() -> None:
    js = JourneySet.empty()
    assert not js
    gate = js.gate(js.states(HCP, attended(), at(3)), [("email", "efficacy")])
    assert gate == type(gate)(None, (True,), (None,))
