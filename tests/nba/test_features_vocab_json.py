"""The bulk featurizer writes a large token table's DSJSON pieces column-wise
(``_vocab_json_columns``) with the bytes of writing each value on its own
(``_fragment_json``: ``json.dumps`` of each name and of ``float(value)``), and
declines (None) every table of another form, which then goes value by value."""

from __future__ import annotations

import json
import random

import pytest

from nba.features import bulk


def _by_value(vocab: list[str]) -> tuple[list[str], frozenset[str]] | None:
    """Each value through ``_fragment_json`` (its cache emptied first), or None
    where it refuses the table."""
    bulk._FRAGMENTS.clear()
    names: set[str] = set()
    try:
        return [bulk._fragment_json(v, names) for v in vocab], frozenset(names)
    except bulk._NotJson:
        return None


def _by_hand(vocab: list[str]) -> list[str]:
    """The pieces written from their definition: ``"name":value,`` per token."""
    out = []
    for value in vocab:
        text = ""
        for tok in value.split():
            name, sep, num = tok.partition(":")
            text += json.dumps(name, ensure_ascii=False) + ":"
            text += json.dumps(float(num)) if sep else "1.0"
            text += ","
        out.append(text)
    return out


def test_awkward_numbers_are_written_as_float_repr() -> None:
    vocab = [
        "",
        " a:0.001",
        " a:0.500",
        " a:1.000",
        " a:-0.000",
        " a:-0",
        " a:0",
        " a:123456789012",
        " a:-123456789012.345",
        " a:999999999999.999",
        " a:12.30",
        " a:1.2",
        " a:10",
        " b",
        " b c:2 d:0.250",
        " é=ü:3",
        " x.y:7",
    ]
    got = bulk._vocab_json_columns(vocab)
    assert got is not None
    assert got == _by_value(vocab)
    assert got[0] == _by_hand(vocab)
    assert got[0][4] == '"a":-0.0,' and got[0][9] == '"a":999999999999.999,'
    assert got[1] == frozenset({"a", "b", "c", "d", "é=ü", "x.y"})


@pytest.mark.parametrize(
    "value",
    [
        " a a:1",  # a name twice: _fragment_json refuses it
        " a  b",  # two spaces
        "a",  # no leading space
        " a:1e5",
        " a:01",
        " a:1.2345",
        " a:.5",
        " a:",
        " a:1234567890123",  # 13 digits
        ' a"b',
        " a\\b",
        " a\u00a0b",  # a space str.split() splits on
        " a\u2028b",
        " a|b",
        " a\tb",
    ],
)
def test_other_forms_are_declined(value: str) -> None:
    vocab = ["", " z:1", value]
    assert bulk._vocab_json_columns(vocab) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_tables_match_value_by_value(seed: int) -> None:
    rng = random.Random(seed)
    pool = ["a", "b", "cc", "d_e", "f=g", "ü", "t7_email", "x.y", "aff_rep_visit"]
    numbers = [
        lambda: "",
        lambda: f":{rng.randint(-5, 10 ** rng.randint(1, 12) - 1)}",
        lambda: f":{rng.randint(-3, 10 ** rng.randint(1, 12) - 1)}.{rng.randint(0, 999):03d}",
        lambda: f":{rng.uniform(-9, 9):.1f}",
        lambda: f":{rng.uniform(-99, 99):.2f}",
        lambda: rng.choice([":-0", ":-0.000", ":0.0", ":12.10", ":0.100", ":-0.50"]),
    ]
    for _ in range(60):
        vocab = []
        for _ in range(rng.randint(1, 120)):
            names = rng.sample(pool, rng.randint(0, 4))
            vocab.append("".join(f" {name}{rng.choice(numbers)()}" for name in names))
        got = bulk._vocab_json_columns(vocab)
        assert got is not None
        assert got == _by_value(vocab)
        assert got[0] == _by_hand(vocab)


def test_vocab_json_goes_column_wise_only_for_large_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = bulk._vocab_json_columns

    def spy(vocab: list[str]) -> tuple[list[str], frozenset[str]] | None:
        calls.append(len(vocab))
        return real(vocab)

    monkeypatch.setattr(bulk, "_vocab_json_columns", spy)
    monkeypatch.setattr(bulk, "_VOCABS", {})
    # no longer table kept from an earlier test: this one would be cut from it
    monkeypatch.setattr(bulk, "_LONGEST", {})
    large = [""] + [f" it_int:{k / 1000:.3f}" for k in range(1, 200)]
    small = [" mkt=GB", " mkt=US"]
    assert bulk._vocab_json(large) == _by_value(large)
    assert bulk._vocab_json(small) == _by_value(small)
    assert calls == [len(large)]
    assert bulk._vocab_json(large) == _by_value(large)  # kept: not written again
    assert calls == [len(large)]
    # a large table of another form still goes value by value, and is refused
    # where a value is
    refused = [*large, " a a:1"]
    with pytest.raises(bulk._NotJson):
        bulk._vocab_json(refused)


def test_a_shorter_interest_table_is_cut_from_the_longer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "_VOCABS", {})
    monkeypatch.setattr(bulk, "_LONGEST", {})
    written: list[int] = []
    real = bulk._vocab_json_columns

    def spy(vocab: list[str]) -> tuple[list[str], frozenset[str]] | None:
        written.append(len(vocab))
        return real(vocab)

    monkeypatch.setattr(bulk, "_vocab_json_columns", spy)
    table = [""] + [f" int_dosing:{k / 1000:.3f}" for k in range(1, 500)]
    assert bulk._vocab_json(table[:300]) == _by_value(table[:300])
    assert bulk._vocab_json(table) == _by_value(table)  # longer: written
    for k in (64, 100, 299, 450):  # shorter than the longest: cut from it
        assert bulk._vocab_json(table[:k]) == _by_value(table[:k])
    assert written == [300, 500]
    # a start of only empty values names nothing
    empties = [""] * 80
    longer = [*empties, " int_x:0.001"]
    assert bulk._vocab_json(longer) == _by_value(longer)
    assert bulk._vocab_json(empties) == ([""] * 80, frozenset())
    # a table of several names is never cut: its start may name fewer
    mixed = ["", " a:1", *(f" b:{k}" for k in range(100))]
    assert bulk._vocab_json(mixed) == _by_value(mixed)
    written.clear()
    assert bulk._vocab_json(mixed[:70]) == _by_value(mixed[:70])
    assert written == [70]
    # the same first values, then others: written, not cut
    other = [*table[:100], " int_dosing:9.000"]
    assert bulk._vocab_json(other) == _by_value(other)
    assert written == [70, 101]
