"""The outcome type -> channel table: every known type is classified, and a type
that cannot happen on a channel is named together with that channel."""

from __future__ import annotations

import pytest

from nba.domain import (
    ANY_CHANNEL_TYPES,
    CHANNELS,
    OUTCOME_CHANNELS,
    OUTCOME_TYPES,
    REP_FEEDBACK_TYPES,
    REWARD_TYPE,
    outcome_channel_problem,
)


def test_every_outcome_type_is_channel_bound_or_explicitly_any() -> None:
    bound, anywhere = set(OUTCOME_CHANNELS), set(ANY_CHANNEL_TYPES)
    assert not bound & anywhere
    assert OUTCOME_TYPES | {REWARD_TYPE} == bound | anywhere
    assert REP_FEEDBACK_TYPES <= anywhere and REWARD_TYPE in anywhere
    for typ, channels in OUTCOME_CHANNELS.items():
        assert channels and channels <= set(CHANNELS), typ


@pytest.mark.parametrize(
    ("typ", "channel", "problem"),
    [
        ("opened", "rep_visit", "outcome type 'opened' cannot happen on channel 'rep_visit'"),
        ("clicked", "portal", "type 'clicked' cannot happen on channel 'portal' (only on: email)"),
        ("meeting_held", "email", "(only on: rep_visit)"),
        ("call_held", "rep_visit", "(only on: remote_call)"),
        ("attended", "portal", "(only on: webinar)"),
        ("downloaded", "webinar", "(only on: portal)"),
    ],
)
def test_impossible_type_on_channel_names_both(typ: str, channel: str, problem: str) -> None:
    got = outcome_channel_problem(typ, channel)
    assert got is not None and problem in got


@pytest.mark.parametrize(
    ("typ", "channel"),
    [
        ("opened", "email"),
        ("meeting_held", "rep_visit"),
        ("registered", "webinar"),
        ("accepted", "email"),
        ("dismissed", "remote_call"),
        ("unsubscribed", "webinar"),
        ("reward", "portal"),
        # a channel a catalog adds is outside the table: not checked
        ("opened", "sms"),
        # types are validated where they are read, not here
        ("teleported", "email"),
    ],
)
def test_possible_or_unchecked(typ: str, channel: str) -> None:
    assert outcome_channel_problem(typ, channel) is None
