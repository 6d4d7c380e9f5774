"""The content catalog: the shipped default, its version hash, and bad files refused
with the file, the item and the field named."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from nba.catalog import Catalog, CatalogError
from nba.domain import Action

HEADER = """brand = "Testa"
channels = ["email", "rep_visit"]
topics = ["efficacy", "safety"]
formats = ["video", "detail_aid"]
"""

ITEM = """
[[items]]
id = "{id}"
title = "{title}"
topic = "{topic}"
format = "{format}"
channels = {channels}
approvals = {approvals}
"""

OK_APPROVALS = '[{ market = "US", start = 2026-01-01, expiry = 2027-01-01 }]'


def item(**over: str) -> str:
    fields = {
        "id": "T-01",
        "title": "A title",
        "topic": "efficacy",
        "format": "video",
        "channels": '["email"]',
        "approvals": OK_APPROVALS,
    }
    fields.update(over)
    return ITEM.format(**fields)


def write(tmp_path: Path, text: str, name: str = "cat.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_catalog_is_realistic() -> None:
    cat = Catalog.default()
    assert len(cat.topics) >= 8 and len(cat.channels) >= 5 and len(cat.items) >= 40
    assert len(cat.markets) >= 3
    # approvals differ between markets
    by_market = {m: {it.id for it in cat.items if m in it.markets} for m in cat.markets}
    assert len({frozenset(v) for v in by_market.values()}) == len(cat.markets)
    day = date(2026, 6, 1)
    expired = [it.id for it in cat.items if any(a.expiry <= day for a in it.approvals)]
    not_yet = [it.id for it in cat.items if any(a.start > day for a in it.approvals)]
    assert expired and not_yet
    # every item's topic, format and channels come from the declared vocabularies
    assert all(it.topic in cat.topics and it.format in cat.formats for it in cat.items)
    assert all(set(it.channels) <= set(cat.channels) for it in cat.items)


def test_version_hashes_content_not_formatting(tmp_path: Path) -> None:
    a = Catalog.load(write(tmp_path, HEADER + item(), "a.toml"))
    spaced = (HEADER + item()).replace(" = ", "   =   ")
    b = Catalog.load(write(tmp_path, "# a comment\n" + spaced, "b.toml"))
    c = Catalog.load(write(tmp_path, HEADER + item(title="Another title"), "c.toml"))
    assert a.version == b.version != c.version
    assert len(a.version) == 16


def test_snapshot_round_trip(tmp_path: Path) -> None:
    cat = Catalog.default()
    path = cat.write_snapshot(tmp_path / "catalog")
    assert path.name == f"{cat.version}.json"
    back = Catalog.read_snapshot(path)
    assert back.version == cat.version and back.items == cat.items
    # a snapshot whose content does not hash to its name is refused
    wrong = path.with_name("0000000000000000.json")
    wrong.write_text(path.read_text())
    with pytest.raises(CatalogError, match=r"0000000000000000\.json: snapshot content hashes"):
        Catalog.read_snapshot(wrong)


def test_approval_window_is_half_open(tmp_path: Path) -> None:
    cat = Catalog.load(write(tmp_path, HEADER + item()))
    it = cat.by_id["T-01"]
    assert not it.is_approved("US", date(2025, 12, 31))
    assert it.is_approved("US", date(2026, 1, 1))
    assert it.is_approved("US", date(2026, 12, 31))
    assert not it.is_approved("US", date(2027, 1, 1))
    assert not it.is_approved("DE", date(2026, 6, 1))
    assert cat.eligible_actions("US", date(2026, 6, 1)) == (Action("T-01", "email"),)
    assert cat.eligible_actions("US", date(2027, 1, 1)) == ()


BAD = [
    (
        "unknown channel",
        item(channels='["fax"]'),
        "item 'T-01'",
        "channels",
        "unknown channel 'fax'",
    ),
    ("unknown topic", item(topic="pricing"), "item 'T-01'", "topic", "unknown topic 'pricing'"),
    ("unknown format", item(format="podcast"), "item 'T-01'", "format", "unknown format 'podcast'"),
    (
        "expiry before start",
        item(approvals='[{ market = "US", start = 2026-05-01, expiry = 2026-04-01 }]'),
        "item 'T-01', approval #1",
        "expiry",
        "expiry 2026-04-01 is not after start 2026-05-01",
    ),
    (
        "expiry equals start",
        item(approvals='[{ market = "US", start = 2026-05-01, expiry = 2026-05-01 }]'),
        "item 'T-01', approval #1",
        "expiry",
        "is not after start",
    ),
    ("duplicate id", item() + item(), "item 'T-01'", "id", "duplicate id (first at item #1)"),
    ("approved nowhere", item(approvals="[]"), "item 'T-01'", "approvals", "approved in no market"),
    (
        "approvals missing",
        item().replace(f"approvals = {OK_APPROVALS}\n", ""),
        "item 'T-01'",
        "approvals",
        "approved in no market",
    ),
    (
        "market approved twice",
        item(
            approvals='[{ market = "US", start = 2026-01-01, expiry = 2027-01-01 },'
            ' { market = "US", start = 2027-01-01, expiry = 2028-01-01 }]'
        ),
        "item 'T-01', approval #2",
        "market",
        "approved twice",
    ),
    (
        "bad date",
        item(approvals='[{ market = "US", start = "soon", expiry = 2027-01-01 }]'),
        "item 'T-01', approval #1",
        "start",
        "'soon' is not a date",
    ),
    ("empty title", item(title=""), "item 'T-01'", "title", "must be a non-empty string"),
    ("no channels", item(channels="[]"), "item 'T-01'", "channels", "at least one channel"),
    ("missing id", item().replace('id = "T-01"\n', ""), "item #1", "id", "non-empty string"),
    ("id with @", item(id="T@1"), "ContentItem 'T@1'", "id", "must be non-empty and not contain"),
]


@pytest.mark.parametrize(
    ("body", "where", "fieldname", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_items_name_file_item_and_field(
    tmp_path: Path, body: str, where: str, fieldname: str, problem: str
) -> None:
    path = write(tmp_path, HEADER + body, "bad_catalog.toml")
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    msg = str(info.value)
    assert str(path) in msg
    assert where in msg
    assert f"field '{fieldname}'" in msg
    assert problem in msg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (HEADER.replace('brand = "Testa"\n', "") + item(), r"catalog: field 'brand'"),
        (
            HEADER.replace('"email", "rep_visit"', '"email", "email"') + item(),
            r"field 'channels': lists a value twice",
        ),
        (
            HEADER.replace('topics = ["efficacy", "safety"]', "topics = 3") + item(),
            r"field 'topics'",
        ),
        (HEADER, r"catalog: field 'items'"),
        (HEADER + "[[items]\n", r"not valid TOML"),
    ],
    ids=["no brand", "duplicate channel", "topics not a list", "no items", "bad toml"],
)
def test_bad_catalog_files(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text, "broken.toml")
    with pytest.raises(CatalogError, match=match) as info:
        Catalog.load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"absent\.toml: cannot read catalog"):
        Catalog.load(tmp_path / "absent.toml")


def test_item_for_unknown_content() -> None:
    cat = Catalog.default()
    with pytest.raises(CatalogError, match=r"unknown content 'NOPE'"):
        cat.item_for("NOPE@email")
    assert cat.item_for(cat.action_ids[0]).id == cat.items[0].id


def test_vectorized_views_agree_with_items() -> None:
    cat = Catalog.default()
    n = len(cat.actions)
    assert cat.action_channel_index.shape == cat.action_topic_index.shape == (n,)
    for j, a in enumerate(cat.actions):
        assert cat.channels[cat.action_channel_index[j]] == a.channel
        assert cat.topics[cat.action_topic_index[j]] == cat.by_id[a.content_id].topic
        assert cat.items[cat.action_item_index[j]].id == a.content_id
    day = date(2026, 6, 1)
    m = cat.approval_matrix(list(cat.markets), day)
    for i, market in enumerate(cat.markets):
        assert set(cat.eligible_actions(market, day)) == {
            a for j, a in enumerate(cat.actions) if m[i, j]
        }
