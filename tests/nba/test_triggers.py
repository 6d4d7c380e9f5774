"""Trigger files: the packaged one loads; every bad file is refused naming the file,
the line and what is wrong; triggers that would fire themselves are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.catalog import Catalog
from nba.triggers import TriggerError, TriggerSet

CAT = Catalog.default()

GOOD = """\
[[trigger]]
name = "visit"
event = "visit_request"
within_hours = 24
notify = { channel = "rep_visit", content = "VEL-EFF-01", priority = 1 }

[[trigger]]
name = "unsub"
event = "unsubscribe"
[trigger.suppress]
channel = "email"
days = 30
"""


def test_packaged_file_loads() -> None:
    ts = TriggerSet.default()
    assert [t.event for t in ts.triggers] == [
        "visit_request",
        "safety_click",
        "webinar_attended",
        "resource_download",
        "unsubscribe",
    ]
    visit = ts.by_name["visit-request"]
    assert visit.notify is not None and visit.notify.action_id == "VEL-EFF-01@rep_visit"
    assert visit.within_hours == 24 and visit.line == 6
    unsub = ts.by_name["unsubscribed"]
    assert unsub.notify is None and unsub.suppress is not None
    assert (unsub.suppress.channel, unsub.suppress.content_id, unsub.suppress.days) == (
        "email",
        None,
        365.0,
    )


def test_good_file_from_path(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text(GOOD)
    ts = TriggerSet.load(p, CAT)
    assert [(t.name, t.line) for t in ts.triggers] == [("visit", 1), ("unsub", 7)]
    assert ts.matching("unsubscribe")[0].suppress is not None
    assert ts.matching("safety_click") == []


def _one(body: str) -> str:
    return '[[trigger]]\nname = "t1"\n' + body


BAD = [
    # (file text, expected message fragment)
    (
        _one('event = "visit_requested"\nnotify = {channel="rep_visit", content="VEL-EFF-01"}\n'),
        r"t\.toml:3: trigger 't1': event 'visit_requested' is not one of",
    ),
    (
        _one('event = "visit_request"\nnotify = {channel="fax", content="VEL-EFF-01"}\n'),
        r"t\.toml:4: trigger 't1': notify\.channel 'fax' is not one of the catalog's channels",
    ),
    (
        _one(
            'event = "visit_request"\n[trigger.notify]\nchannel = "rep_visit"\ncontent = "NOPE"\n'
        ),
        r"t\.toml:6: trigger 't1': notify\.content 'NOPE' is not an item of catalog",
    ),
    (
        _one('event = "visit_request"\nnotify = {channel="email", content="VEL-EFF-01"}\n'),
        r"t\.toml:4: .*'VEL-EFF-01' is not offered on channel 'email'",
    ),
    (
        _one(
            'event = "visit_request"\nnotify = {channel="rep_visit", content="VEL-EFF-01", '
            "priority = 0}\n"
        ),
        r"t\.toml:4: .*notify\.priority: must be a whole number 1",
    ),
    (
        _one(
            'event = "visit_request"\nwithin_hours = -2\n'
            'notify = {channel="rep_visit", content="VEL-EFF-01"}\n'
        ),
        r"t\.toml:4: trigger 't1': within_hours: must be in",
    ),
    (
        _one('event = "unsubscribe"\nsuppress = {channel="email", days = 0}\n'),
        r"t\.toml:4: trigger 't1': suppress\.days: must be in",
    ),
    (
        _one('event = "unsubscribe"\nsuppress = {channel="emial", days = 3}\n'),
        r"t\.toml:4: trigger 't1': suppress\.channel 'emial'",
    ),
    (
        _one('event = "unsubscribe"\nsuppress = {channel="email", content="X", days = 3}\n'),
        r"t\.toml:4: trigger 't1': suppress\.content 'X' is not an item",
    ),
    (_one('event = "unsubscribe"\n'), r"t\.toml:1: trigger 't1': needs a notify or a suppress"),
    (
        _one('event = "unsubscribe"\ncolour = "red"\nsuppress = {channel="email", days=1}\n'),
        r"t\.toml:4: trigger 't1': unknown key 'colour'",
    ),
    (
        _one('event = "unsubscribe"\nsuppress = {channel="email", days=1, until=3}\n'),
        r"t\.toml:4: trigger 't1': suppress: unknown key 'until'",
    ),
    (
        '[[trigger]]\nname = "has space"\nevent = "unsubscribe"\n'
        'suppress = {channel="email", days=1}\n',
        r"t\.toml:2: trigger 'has space': name: must",
    ),
    (
        GOOD + '\n[[trigger]]\nname = "visit"\nevent = "unsubscribe"\n'
        'suppress = {channel="email", days=1}\n',
        r"t\.toml:14: trigger name 'visit' is used twice \(first on line 1\)",
    ),
    ('[[trigger]\nname = "x"\n', r"t\.toml:1: not valid TOML"),
    ("version = 2\n", r"t\.toml:1: unknown key 'version'"),
    # fires itself: a portal suggestion can make the HCP download from the portal again
    (
        _one(
            'event = "resource_download"\n'
            'notify = {channel="portal", content="VEL-EFF-02", priority=3}\n'
        ),
        r"t\.toml:1: trigger 't1' fires itself: t1 --\(portal suggestion can produce "
        r"resource_download\)--> t1",
    ),
    # a safety email can be clicked again: safety_click -> email with safety content
    (
        _one('event = "safety_click"\nnotify = {channel="email", content="VEL-SAF-02"}\n'),
        r"t\.toml:1: trigger 't1' fires itself: .*safety_click",
    ),
]


@pytest.mark.parametrize(("text", "match"), BAD)
def test_bad_files_are_refused_with_the_line(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(TriggerError, match=match):
        TriggerSet.load(p, CAT)


def test_cycle_through_two_triggers_is_refused() -> None:
    text = (
        '[[trigger]]\nname = "a"\nevent = "webinar_attended"\n'
        'notify = {channel="portal", content="VEL-EFF-02"}\n\n'
        '[[trigger]]\nname = "b"\nevent = "visit_request"\n'
        'notify = {channel="webinar", content="VEL-CLN-01"}\n'
    )
    with pytest.raises(
        TriggerError,
        match=r"t\.toml:1: trigger 'a' fires itself: a --\(portal suggestion can produce "
        r"visit_request\)--> b --\(webinar suggestion can produce webinar_attended\)--> a",
    ):
        TriggerSet.from_text(text, CAT, "t.toml")


def test_safety_click_is_produced_only_by_safety_content() -> None:
    # an email about efficacy cannot produce a safety click: no cycle
    ok = _one('event = "safety_click"\nnotify = {channel="email", content="VEL-EFF-02"}\n')
    ts = TriggerSet.from_text(ok, CAT, "t.toml")
    assert ts.triggers[0].produces(CAT) == ("unsubscribe",)


def test_unreadable_file() -> None:
    with pytest.raises(TriggerError, match=r"/no/such\.toml: cannot read triggers"):
        TriggerSet.load("/no/such.toml", CAT)
