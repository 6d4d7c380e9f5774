"""Per-market rule sets: validation with line numbers, and the same answers from
``filter()`` (service) and ``mask_batch()`` (simulator)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_contact_batch import batch_inputs, default_catalog, random_case

from nba.contact import GLOBAL_MARKET, ContactError, ContactPolicy, RulesError, key_lines
from nba.domain import HCPProfile, Touch

MARKET_RULES = """\
name = "with-markets"

[repeat]
days = 14

[[frequency_caps]]
channel = "email"
max = 2
days = 7

[min_gap]
hours = 24

[markets.DE]
# stricter email cap, and no remote calls in Germany
allowed_channels = ["email", "rep_visit", "webinar", "portal"]

[[markets.DE.frequency_caps]]
channel = "email"
max = 1
days = 7

[[markets.DE.frequency_caps]]
channel = "rep_visit"
max = 1
days = 30

[markets.FR.min_gap]
hours = 72

[markets.FR.consent]
exempt = ["portal"]
"""

POLICY = ContactPolicy.loads(MARKET_RULES, source="markets.toml")
NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)
ALL = frozenset({"email", "rep_visit", "remote_call", "webinar", "portal"})


def hcp(market: str, consents: frozenset[str] = ALL) -> HCPProfile:
    return HCPProfile("h1", "cardiology", 5, market, "aware", consents)


def test_a_market_section_replaces_only_the_sections_it_sets() -> None:
    de, fr = POLICY.markets["DE"], POLICY.markets["FR"]
    assert [c.rule for c in de.frequency_caps] == [
        "frequency_cap:email:1/7d",
        "frequency_cap:rep_visit:1/30d",
    ]
    assert de.min_gap_days == 1.0 and de.repeat_days == 14  # inherited
    assert fr.min_gap_days == 3.0 and [c.rule for c in fr.frequency_caps] == [
        "frequency_cap:email:2/7d"
    ]
    assert fr.consent_exempt == {"portal"} and POLICY.consent_exempt == frozenset()
    assert POLICY.for_market("US") is POLICY and POLICY.market_of("US") == GLOBAL_MARKET
    assert POLICY.market_of("DE") == "DE" and de.version == POLICY.version
    # every rule any market uses, in checking order
    assert POLICY.rule_names == (
        "approval",
        "market_channel",
        "consent",
        "no_see",
        "snoozed",
        "repeat",
        "frequency_cap:email:2/7d",
        "frequency_cap:email:1/7d",
        "frequency_cap:rep_visit:1/30d",
        "min_gap",
    )
    assert POLICY.cap_windows == (7.0, 30.0)


def test_normalized_rules_read_back_to_the_same_version() -> None:
    again = ContactPolicy.from_dict(POLICY.to_dict())
    assert again == POLICY and again.version == POLICY.version
    assert ContactPolicy.default().markets == {}
    # and as TOML text, including a market with no caps at all
    no_caps = ContactPolicy.loads(MARKET_RULES + "\n[markets.GB]\nfrequency_caps = []\n")
    assert no_caps.markets["GB"].frequency_caps == ()
    for pol in (POLICY, no_caps, ContactPolicy.default()):
        back = ContactPolicy.loads(pol.to_toml())
        assert back == pol and back.version == pol.version


def test_per_market_cap_channel_and_gap_in_filter() -> None:
    cat = default_catalog()
    sent = [Touch("h1", NOW - timedelta(days=3), "email", "VEL-RWE-02")]
    email = [a for a in cat.actions if a.channel == "email" and a.content_id != "VEL-RWE-02"][:1]
    calls = [a for a in cat.actions if a.channel == "remote_call"][:1]
    # one email 3 days ago: DE's 1/7d cap is full, the global 2/7d cap is not
    de = POLICY.filter(hcp("DE"), email + calls, NOW, sent, [], cat)
    assert [(s.rule) for s in de.suppressed] == ["frequency_cap:email:1/7d", "market_channel"]
    us = POLICY.filter(hcp("US"), email + calls, NOW, sent, [], cat)
    assert us.suppressed == () and len(us.allowed) == 2
    # FR keeps the global cap but waits 72 h between touches
    recent = [Touch("h1", NOW - timedelta(hours=48), "email", "VEL-RWE-02")]
    assert [s.rule for s in POLICY.filter(hcp("FR"), email, NOW, recent, [], cat).suppressed] == [
        "min_gap"
    ]
    assert POLICY.filter(hcp("US"), email, NOW, recent, [], cat).suppressed == ()


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_mask_equals_filter_per_market(seed: int) -> None:
    cat = default_catalog()
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, cat, i) for i in range(200)]
    args = batch_inputs(cases, cat, POLICY)
    markets = np.array([h.market for h, *_ in cases])
    mask = POLICY.mask_batch(**args, markets=markets)
    fired: set[str] = set()
    for i, (h, now, touches, feedback) in enumerate(cases):
        out = POLICY.filter(h, cat.actions, now, touches, feedback, cat)
        expected = {s.action_id: s.rule for s in out.suppressed}
        got = {
            aid: mask.rule_names[mask.rule[i, j]]
            for j, aid in enumerate(cat.action_ids)
            if not mask.allowed[i, j]
        }
        assert got == expected, f"case {i} ({h.market})"
        fired |= set(expected.values())
    assert {"market_channel", "frequency_cap:email:1/7d", "frequency_cap:email:2/7d"} <= fired
    with pytest.raises(ContactError, match="pass each HCP's 'markets'"):
        POLICY.mask_batch(**args)
    with pytest.raises(ContactError, match="'markets' must have shape"):
        POLICY.mask_batch(**args, markets=markets[:3])


@pytest.mark.parametrize(
    ("text", "match", "line", "key"),
    [
        (
            "[markets.JP]\nallowed_channels = ['email']\n",
            r"line 1: rule 'markets.JP': unknown market 'JP' \(known: US, DE",
            1,
            "markets.JP",
        ),
        (
            "name = 'x'\n\n[markets.DE]\nallowed_channels = ['fax']\n",
            r"line 4: rule 'markets.DE.allowed_channels': unknown channel 'fax'",
            4,
            "markets.DE.allowed_channels",
        ),
        (
            "[markets.DE]\nallowed_channels = []\n",
            r"line 2: rule 'markets.DE.allowed_channels': must name at least one channel",
            2,
            "markets.DE.allowed_channels",
        ),
        (
            "[markets.DE]\nholdout = 0.1\n",
            r"line 2: rule 'markets.DE': unknown key 'holdout' \(a market may set:",
            2,
            "markets.DE.holdout",
        ),
        (
            "[markets.DE.min_gap]\nhours = 1\nhourz = 3\n",
            r"line 3: rule 'markets.DE.min_gap': unknown key 'hourz'",
            3,
            "markets.DE.min_gap.hourz",
        ),
        (
            "[markets.FR]\n[[markets.FR.frequency_caps]]\nchannel = 'email'\nmax = 1\ndays = 7\n"
            "[[markets.FR.frequency_caps]]\nchannel = 'email'\nmax = -1\ndays = 30\n",
            r"line 8: rule 'markets.FR.frequency_caps\[2\] \(email\)': 'max' must not be neg",
            8,
            "markets.FR.frequency_caps.1.max",
        ),
        (
            "[markets.FR]\n[[markets.FR.frequency_caps]]\nchannel = 'pigeon'\nmax = 1\ndays = 7\n",
            r"line 3: rule 'markets.FR.frequency_caps\[1\] \(pigeon\)': unknown channel",
            3,
            "markets.FR.frequency_caps.0.channel",
        ),
        ("markets = 3\n", r"line 1: rule 'markets': must be a table", 1, "markets"),
        ("[markets]\nDE = 3\n", r"line 2: rule 'markets.DE': must be a table", 2, "markets.DE"),
        (
            "# comment\n[min_gap]\nhours = 1\n\n[repeat]\ndays = -1\n",
            r"line 6: rule 'repeat': 'days' must not be negative",
            6,
            "repeat.days",
        ),
        ("[consent]\nexempt = [\n  'email',\n  'fax',\n]\n", r"line 2: rule 'consent'", 2, None),
        ("name = 'x\n", r"edit.toml, line 1: not valid TOML", 1, None),
        ("a = 1\n[b\n", r"edit.toml, line 2: not valid TOML", 2, None),
    ],
)
def test_bad_rules_name_key_and_line(text: str, match: str, line: int, key: str | None) -> None:
    with pytest.raises(RulesError, match=match) as info:
        ContactPolicy.loads(text, source="edit.toml")
    assert str(info.value).startswith("edit.toml")
    assert info.value.line == line
    if key is not None:
        assert info.value.key == key


def test_market_vocabulary_can_be_given() -> None:
    text = "[markets.JP.min_gap]\nhours = 1\n"
    assert ContactPolicy.loads(text, markets=("JP",)).markets["JP"].min_gap_days == 1 / 24
    with pytest.raises(RulesError, match="unknown market 'JP' \\(known: US\\)"):
        ContactPolicy.loads(text, markets=("US",))


def test_key_lines_skips_multiline_values() -> None:
    text = 'a = """\nb = 1\n"""\nc = [\n  1,\n]\n[t]\nd = 2\n'
    lines = key_lines(text)
    assert lines == {("a",): 1, ("c",): 4, ("t",): 7, ("t", "d"): 8}
