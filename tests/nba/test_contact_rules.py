"""Contact policy: every rule one by one, the rule order, the holdout, describe/version."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nba.catalog
from nba.catalog import Catalog
from nba.contact import RULE_ORDER, ContactError, ContactPolicy, Feedback, Filtered
from nba.domain import Action, HCPProfile, Touch, ValidationError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALL = frozenset({"rep_visit", "remote_call", "email", "webinar", "portal"})

RULES: dict[str, Any] = {
    "name": "test",
    "consent": {"exempt": ["portal"]},
    "no_see": {"channels": ["rep_visit"]},
    "feedback": {"dismissed_days": 30, "snooze_default_days": 10},
    "repeat": {"days": 21},
    "frequency_caps": [
        {"channel": "email", "max": 2, "days": 7},
        {"channel": "email", "max": 3, "days": 30},
        {"channel": "rep_visit", "max": 1, "days": 14},
    ],
    "min_gap": {"hours": 24},
    "holdout": {"share": 0.2, "salt": "s1"},
}


def default_catalog() -> Catalog:
    # by file path: resources.files("nba") breaks under a stale editable install
    return Catalog.load(Path(nba.catalog.__file__).resolve().parent / "data" / "catalog.toml")


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="module")
def pol() -> ContactPolicy:
    return ContactPolicy.from_dict(RULES)


def hcp(consents: frozenset[str] = ALL, market: str = "US", no_see: bool = False) -> HCPProfile:
    return HCPProfile("h1", "cardiology", 5, market, "aware", consents, no_see=no_see)


def touch(days_ago: float, channel: str = "email", content: str = "VEL-RWE-02") -> Touch:
    return Touch("h1", NOW - timedelta(days=days_ago), channel, content)


def fb(kind: str, days_ago: float, content: str, until: datetime | None = None) -> Feedback:
    return Feedback(
        "h1", content, kind, NOW - timedelta(days=days_ago), "E1", "not_relevant", until
    )


def run(
    pol: ContactPolicy,
    cat: Catalog,
    action: str,
    *,
    h: HCPProfile | None = None,
    touches: list[Touch] | None = None,
    feedback: list[Feedback] | None = None,
    now: datetime = NOW,
) -> str | None:
    """The rule that removed ``action`` (None when allowed)."""
    out = pol.filter(h or hcp(), [Action.parse(action)], now, touches or [], feedback or [], cat)
    assert len(out.allowed) + len(out.suppressed) == 1
    return out.suppressed[0].rule if out.suppressed else None


# ------------------------------------------------------------------- approval
@pytest.mark.parametrize(
    ("action", "market", "now", "expected"),
    [
        ("VEL-EFF-02@email", "US", NOW, None),
        ("VEL-NOPE-01@email", "US", NOW, "approval"),  # unknown content
        ("VEL-EFF-02@rep_visit", "US", NOW, "approval"),  # content may not travel there
        ("VEL-EFF-05@rep_visit", "US", NOW, "approval"),  # not approved in US at all
        ("VEL-EFF-05@rep_visit", "DE", NOW, None),
        ("VEL-SAF-01@email", "US", NOW, "approval"),  # expired 2025-12-31 in US
        ("VEL-SAF-01@email", "FR", NOW, None),
        ("VEL-SAF-04@webinar", "US", datetime(2026, 2, 28, 23, tzinfo=UTC), "approval"),
        ("VEL-SAF-04@webinar", "US", datetime(2026, 3, 1, 0, tzinfo=UTC), None),  # [start, ...
        ("VEL-SAF-03@webinar", "US", datetime(2026, 2, 14, 23, tzinfo=UTC), None),
        ("VEL-SAF-03@webinar", "US", datetime(2026, 2, 15, 0, tzinfo=UTC), "approval"),  # ...)
    ],
)
def test_approval(
    pol: ContactPolicy, cat: Catalog, action: str, market: str, now: datetime, expected: str | None
) -> None:
    assert run(pol, cat, action, h=hcp(market=market), now=now) == expected


# -------------------------------------------------------------------- consent
def test_consent_required_per_channel(pol: ContactPolicy, cat: Catalog) -> None:
    h = hcp(consents=frozenset({"email"}))
    assert run(pol, cat, "VEL-EFF-02@email", h=h) is None
    assert run(pol, cat, "VEL-EFF-02@remote_call", h=h) == "consent"
    assert run(pol, cat, "VEL-EFF-01@rep_visit", h=h) == "consent"


def test_consent_exempt_channel(pol: ContactPolicy, cat: Catalog) -> None:
    assert run(pol, cat, "VEL-EFF-02@portal", h=hcp(consents=frozenset())) is None
    strict = ContactPolicy.from_dict({**RULES, "consent": {}})
    assert run(strict, cat, "VEL-EFF-02@portal", h=hcp(consents=frozenset())) == "consent"


# --------------------------------------------------------------------- no-see
def test_no_see(pol: ContactPolicy, cat: Catalog) -> None:
    assert run(pol, cat, "VEL-EFF-01@rep_visit", h=hcp(no_see=True)) == "no_see"
    assert run(pol, cat, "VEL-EFF-01@remote_call", h=hcp(no_see=True)) is None
    assert run(pol, cat, "VEL-EFF-01@rep_visit", h=hcp(no_see=False)) is None


# ------------------------------------------------------------------- feedback
def test_dismissed_content_suppressed_on_every_channel_for_n_days(
    pol: ContactPolicy, cat: Catalog
) -> None:
    recent = [fb("dismissed", 10, "VEL-EFF-02")]
    assert run(pol, cat, "VEL-EFF-02@email", feedback=recent) == "dismissed"
    assert run(pol, cat, "VEL-EFF-02@portal", feedback=recent) == "dismissed"
    assert run(pol, cat, "VEL-EFF-04@email", feedback=recent) is None
    old = [fb("dismissed", 30.01, "VEL-EFF-02")]
    assert run(pol, cat, "VEL-EFF-02@email", feedback=old) is None


def test_snoozed_until_its_date_or_the_default(pol: ContactPolicy, cat: Catalog) -> None:
    running = [fb("snoozed", 1, "VEL-EFF-02", until=NOW + timedelta(hours=1))]
    assert run(pol, cat, "VEL-EFF-02@email", feedback=running) == "snoozed"
    ended = [fb("snoozed", 1, "VEL-EFF-02", until=NOW)]
    assert run(pol, cat, "VEL-EFF-02@email", feedback=ended) is None
    assert run(pol, cat, "VEL-EFF-02@email", feedback=[fb("snoozed", 9, "VEL-EFF-02")]) == (
        "snoozed"
    )
    assert run(pol, cat, "VEL-EFF-02@email", feedback=[fb("snoozed", 10, "VEL-EFF-02")]) is None


def test_feedback_and_touches_from_the_future_are_ignored(pol: ContactPolicy, cat: Catalog) -> None:
    later = [fb("dismissed", -1, "VEL-EFF-02")]
    assert run(pol, cat, "VEL-EFF-02@email", feedback=later) is None
    assert run(pol, cat, "VEL-EFF-02@email", touches=[touch(-0.5, content="VEL-EFF-02")]) is None


# --------------------------------------------------------------------- repeat
def test_repeat_same_content_any_channel(pol: ContactPolicy, cat: Catalog) -> None:
    seen = [touch(5, channel="portal", content="VEL-EFF-02")]
    assert run(pol, cat, "VEL-EFF-02@email", touches=seen) == "repeat"
    assert run(pol, cat, "VEL-EFF-04@email", touches=seen) is None
    assert run(pol, cat, "VEL-EFF-02@email", touches=[touch(21, content="VEL-EFF-02")]) is None


# ------------------------------------------------------------- frequency caps
def test_frequency_cap_rolling_window(pol: ContactPolicy, cat: Catalog) -> None:
    assert run(pol, cat, "VEL-EFF-02@email", touches=[touch(2)]) is None
    two = [touch(2), touch(6.9)]
    assert run(pol, cat, "VEL-EFF-02@email", touches=two) == "frequency_cap:email:2/7d"
    assert run(pol, cat, "VEL-EFF-02@portal", touches=two) is None  # other channel
    assert run(pol, cat, "VEL-EFF-02@email", touches=[touch(2), touch(7)]) is None


def test_several_caps_per_channel(pol: ContactPolicy, cat: Catalog) -> None:
    spaced = [touch(3), touch(10), touch(20)]  # never 2 in 7 days, but 3 in 30
    assert run(pol, cat, "VEL-EFF-02@email", touches=spaced) == "frequency_cap:email:3/30d"


def test_external_touches_count(pol: ContactPolicy, cat: Catalog) -> None:
    ext = [
        Touch("h1", NOW - timedelta(days=3), "rep_visit", "VEL-DOS-02", "external"),
    ]
    assert run(pol, cat, "VEL-EFF-01@rep_visit", touches=ext) == "frequency_cap:rep_visit:1/14d"


# -------------------------------------------------------------------- min gap
def test_min_gap_between_any_two_touches(pol: ContactPolicy, cat: Catalog) -> None:
    recent = [touch(10 / 24, channel="portal", content="VEL-MOA-01")]
    assert run(pol, cat, "VEL-EFF-01@rep_visit", touches=recent) == "min_gap"
    ok = [touch(25 / 24, channel="portal", content="VEL-MOA-01")]
    assert run(pol, cat, "VEL-EFF-01@rep_visit", touches=ok) is None


def test_switched_off_rules_do_not_fire(cat: Catalog) -> None:
    bare = ContactPolicy.from_dict({"name": "bare"})
    many = [touch(0.1), touch(0.2, content="VEL-EFF-02"), touch(0.3)]
    assert run(bare, cat, "VEL-EFF-02@email", touches=many) is None
    assert run(bare, cat, "VEL-EFF-02@email", feedback=[fb("dismissed", 1, "VEL-EFF-02")]) is None
    assert bare.rule_names == ("approval", "consent", "no_see", "snoozed")


# ----------------------------------------------------------------- rule order
def test_first_rule_in_documented_order_wins(pol: ContactPolicy, cat: Catalog) -> None:
    # an action that violates every rule at once, then one rule fewer each time
    h_bad = hcp(consents=frozenset(), no_see=True)
    t_all = [touch(0.1, channel="rep_visit", content="VEL-EFF-01")]
    f_all = [fb("dismissed", 1, "VEL-EFF-01"), fb("snoozed", 1, "VEL-EFF-01")]
    act = "VEL-EFF-01@rep_visit"
    assert (
        run(
            pol,
            cat,
            act,
            h=hcp(market="JP", consents=frozenset(), no_see=True),
            touches=t_all,
            feedback=f_all,
        )
        == "approval"
    )
    assert run(pol, cat, act, h=h_bad, touches=t_all, feedback=f_all) == "consent"
    h_ns = hcp(no_see=True)
    assert run(pol, cat, act, h=h_ns, touches=t_all, feedback=f_all) == "no_see"
    assert run(pol, cat, act, touches=t_all, feedback=f_all) == "dismissed"
    assert run(pol, cat, act, touches=t_all, feedback=f_all[1:]) == "snoozed"
    assert run(pol, cat, act, touches=t_all) == "repeat"
    other = [touch(0.1, channel="rep_visit", content="VEL-DOS-02")]
    assert run(pol, cat, act, touches=other) == "frequency_cap:rep_visit:1/14d"
    assert run(pol, cat, act, touches=[touch(0.1, channel="email")]) == "min_gap"
    assert run(pol, cat, act) is None
    assert [r.split(":")[0] for r in pol.rule_names] == [
        r for r in RULE_ORDER for n in pol.rule_names if n.split(":")[0] == r
    ]


def test_filter_keeps_input_order_and_counts(pol: ContactPolicy, cat: Catalog) -> None:
    acts = [
        Action.parse(a)
        for a in ("VEL-EFF-02@email", "VEL-EFF-05@rep_visit", "VEL-EFF-04@email", "VEL-NOPE@email")
    ]
    out = pol.filter(hcp(), acts, NOW, [], [], cat)
    assert isinstance(out, Filtered)
    assert [a.action_id for a in out.allowed] == ["VEL-EFF-02@email", "VEL-EFF-04@email"]
    assert [s.action_id for s in out.suppressed] == ["VEL-EFF-05@rep_visit", "VEL-NOPE@email"]
    assert out.counts_by_rule() == {"approval": 2}


def test_other_hcps_history_is_refused(pol: ContactPolicy, cat: Catalog) -> None:
    stranger = Touch("h2", NOW - timedelta(days=1), "email", "VEL-EFF-02")
    with pytest.raises(ContactError, match="touch of another HCP"):
        pol.filter(hcp(), [Action.parse("VEL-EFF-02@email")], NOW, [stranger], [], cat)
    other_fb = Feedback("h2", "VEL-EFF-02", "dismissed", NOW)
    with pytest.raises(ContactError, match="feedback of another HCP"):
        pol.filter(hcp(), [Action.parse("VEL-EFF-02@email")], NOW, [], [other_fb], cat)
    with pytest.raises(ValidationError, match="timezone-aware"):
        pol.filter(hcp(), [], datetime(2026, 1, 1), [], [], cat)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": "accepted"}, "field 'type'"),
        ({"content_id": ""}, "field 'content_id'"),
        ({"hcp_id": ""}, "field 'hcp_id'"),
        ({"ts": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"type": "dismissed", "until": NOW}, "only a snooze"),
    ],
)
def test_feedback_record_errors(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"hcp_id": "h1", "content_id": "c", "type": "snoozed", "ts": NOW}
    with pytest.raises(ValidationError, match=match):
        Feedback(**{**base, **kwargs})


# -------------------------------------------------------------------- holdout
def test_holdout_share_and_stability(pol: ContactPolicy) -> None:
    ids = [f"HCP-{i:06d}" for i in range(20_000)]
    mask = pol.holdout_mask(ids)
    share = float(mask.mean())
    sd = (0.2 * 0.8 / len(ids)) ** 0.5
    assert abs(share - 0.2) < 4 * sd
    assert mask.tolist() == [pol.is_holdout(i) for i in ids]
    other_salt = ContactPolicy.from_dict({**RULES, "holdout": {"share": 0.2, "salt": "s2"}})
    assert other_salt.holdout_mask(ids).tolist() != mask.tolist()
    none = ContactPolicy.from_dict({**RULES, "holdout": {"share": 0.0}})
    assert not none.holdout_mask(ids).any()


def test_holdout_is_the_same_in_another_process(pol: ContactPolicy) -> None:
    ids = [f"HCP-{i:04d}" for i in range(300)]
    code = (
        "import json,sys\n"
        "from nba.contact import ContactPolicy\n"
        f"p = ContactPolicy.from_dict(json.loads({json.dumps(json.dumps(RULES))}))\n"
        f"print(json.dumps([p.is_holdout(i) for i in {ids!r}]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert json.loads(out.stdout) == [pol.is_holdout(i) for i in ids]


# ---------------------------------------------------------- describe, version
def test_describe_lists_rules_in_order(pol: ContactPolicy) -> None:
    d = pol.describe()
    json.dumps(d)  # JSON-ready
    assert d["version"] == pol.version and len(pol.version) == 16
    assert d["order"] == list(pol.rule_names)
    assert [r["rule"] for r in d["rules"]] == list(pol.rule_names)
    assert d["holdout"] == {"share": 0.2}
    caps = [r for r in d["rules"] if r["rule"].startswith("frequency_cap")]
    assert caps[0] == {
        "rule": "frequency_cap:email:2/7d",
        "description": "at most 2 email touches in any 7 days",
        "channel": "email",
        "max": 2,
        "days": 7.0,
    }


def test_version_follows_content_not_formatting(pol: ContactPolicy, tmp_path: Any) -> None:
    again = ContactPolicy.from_dict(json.loads(json.dumps(RULES)))
    assert again.version == pol.version
    changed = ContactPolicy.from_dict({**RULES, "repeat": {"days": 22}})
    assert changed.version != pol.version
    assert ContactPolicy.from_dict(pol.to_dict()).version == pol.version
    y = tmp_path / "rules.yaml"
    import yaml

    y.write_text(yaml.safe_dump(RULES))
    assert ContactPolicy.load(y).version == pol.version


def test_default_rules_load(cat: Catalog) -> None:
    d = ContactPolicy.default()
    assert d.source.endswith("rules.toml")
    assert "frequency_cap:email:2/7d" in d.rule_names
    assert 0 < d.holdout_share < 0.5
    assert d == ContactPolicy.default() and d.version == ContactPolicy.default().version
