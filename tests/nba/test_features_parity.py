"""The bulk (training) and one-at-a-time (serving) featurizer paths agree byte for byte."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import ADOPTION_STAGES, Action, HCPProfile
from nba.features import FeaturizedBatch, FeaturizeError, Featurizer, FeaturizerConfig

CATALOG = Catalog.default()
SPECIALTIES = ("cardiology", "internal medicine", "endo|crine", "general:practice")


def random_context(rng: np.random.Generator, i: int) -> DecisionContext:
    chans = [*list(CATALOG.channels), "fax"]
    topics = list(CATALOG.topics)

    def counts(keys: list[str]) -> dict[str, int]:
        return {k: int(rng.integers(0, 5)) for k in keys if rng.random() < 0.4}

    hist = History(
        touches_7d=counts(chans),
        touches_30d=counts(chans),
        touches_90d=counts(chans),
        engagements_30d=counts(chans),
        topic_engagements_90d=counts(topics),
        days_since_touch={c: int(rng.integers(0, 90)) for c in chans if rng.random() < 0.3},
        last_content_id=str(rng.choice([it.id for it in CATALOG.items]))
        if rng.random() < 0.6
        else None,
        topic_channel_engagements_90d=counts(
            [f"{t}@{c}" for t in [*topics, "gossip"] for c in chans if rng.random() < 0.3]
        ),
        days_since_content={
            it.id: int(rng.integers(1, 91)) for it in CATALOG.items if rng.random() < 0.3
        }
        | ({"EXTERNAL-9": 4} if rng.random() < 0.2 else {}),
    )
    request: dict[str, str | int | float | bool] = {}
    if rng.random() < 0.7:
        request["requester"] = str(rng.choice(["rep app", "email_platform"]))
    if rng.random() < 0.5:
        request["k"] = int(rng.integers(1, 4))
    if rng.random() < 0.5:
        request["score"] = float(rng.normal())
    if rng.random() < 0.5:
        request["urgent"] = bool(rng.random() < 0.5)
    hcp = HCPProfile(
        hcp_id=f"h{i}",
        specialty=str(rng.choice(SPECIALTIES)),
        decile=int(rng.integers(1, 11)),
        market=str(rng.choice(CATALOG.markets)),
        adoption_stage=str(rng.choice(ADOPTION_STAGES)),
        consents=frozenset(c for c in chans if rng.random() < 0.5),
        no_see=bool(rng.random() < 0.3),
        digital_affinity=float(rng.random()) if rng.random() < 0.9 else 1.0,
    )
    day = date(2026, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
    # context version 3: interest (ties, values that round to 0, a topic outside the
    # catalog), stated topics and channels, declared attributes of every value type
    interest = {
        t: float(rng.choice([0.0004, 0.5, 0.5, 1.2345, float(rng.exponential(2.0))]))
        for t in [*topics, "gossip"]
        if rng.random() < 0.4
    }
    # context version 4: pulls per topic (one outside the catalog)
    pulls = counts([*topics, "gossip"])
    # context version 5: decisions a rep overrode (mostly none; from the row number, so
    # the generator's stream, and every other field, stays what it was)
    ovr = (i * 7) % 5 if i % 3 == 0 else 0
    hist = History.from_dict(
        {**hist.to_dict(), "interest": interest, "topic_pulls_90d": pulls, "overrides_90d": ovr}
    )
    stated_t = [str(t) for t in topics if rng.random() < 0.2]
    stated_c = [str(c) for c in chans if rng.random() < 0.2]
    attrs: dict[str, object] = {}
    if rng.random() < 0.6:
        attrs["rx_volume_decile"] = str(rng.choice(["lt4", "4to8", "ge8"]))
    if rng.random() < 0.6:
        attrs["payer_mix_commercial"] = float(rng.random())
    if rng.random() < 0.5:
        attrs["kol"] = bool(rng.random() < 0.5)
    if rng.random() < 0.5:
        attrs["affiliations"] = [
            str(a) for a in ["idn", "aco", "academic center"] if rng.random() < 0.6
        ]
    return DecisionContext(
        hcp=hcp,
        day=day,
        history=hist,
        request=request,
        stated_topics=tuple(stated_t),
        stated_channels=tuple(stated_c),
        attributes=attrs,
    )


def random_table(n: int, seed: int) -> tuple[pa.Table, list[DecisionContext], list[list[Action]]]:
    rng = np.random.default_rng(seed)
    ctxs, actions = [], []
    for i in range(n):
        ctx = random_context(rng, i)
        k = int(rng.integers(1, 12))
        picks = rng.choice(len(CATALOG.actions), size=k, replace=False)
        ctxs.append(ctx)
        actions.append([CATALOG.actions[j] for j in picks])
    table = pa.table(
        {
            "event_id": [f"ev{i:05d}" for i in range(n)],
            "context": [c.to_json() for c in ctxs],
            "action_ids": [[a.action_id for a in acts] for acts in actions],
        }
    )
    return table, ctxs, actions


@pytest.mark.parametrize(
    "config",
    [
        FeaturizerConfig(),
        FeaturizerConfig(namespaces=("p", "c", "K", "x"), interactions=("pK",)),
        FeaturizerConfig(namespaces=("h", "r", "x"), interactions=()),
    ],
    ids=["default", "partial", "crosses-only"],
)
def test_bulk_lines_equal_one_at_a_time(config: FeaturizerConfig) -> None:
    table, ctxs, actions = random_table(300, seed=11)
    f = Featurizer(CATALOG, config)
    batch = f.featurize_table(table)
    assert len(batch) == 300
    for i, (ctx, acts) in enumerate(zip(ctxs, actions, strict=True)):
        one = f.featurize_one(ctx, acts)
        assert batch.lines(i) == one, f"row {i}"
        assert f.featurize_json(ctx.to_json(), [a.action_id for a in acts]) == one


def test_text_is_the_examples_separated_by_blank_lines() -> None:
    table, ctxs, actions = random_table(50, seed=3)
    f = Featurizer(CATALOG)
    text = f.featurize_table(table).text().decode()
    expected = "".join(
        "\n".join(f.featurize_one(c, a)) + "\n\n" for c, a in zip(ctxs, actions, strict=True)
    )
    assert text == expected


def test_text_with_prefixes_labels_the_right_lines() -> None:
    table, ctxs, actions = random_table(20, seed=5)
    f = Featurizer(CATALOG)
    batch = f.featurize_table(table)
    n_lines = int(batch.offsets[-1])
    prefix = [None] * n_lines
    prefix[int(batch.offsets[1])] = "0:-1:0.5 "  # first action of the second decision
    text = batch.text(pa.array(prefix, pa.string())).decode()
    second = text.split("\n\n")[1].split("\n")
    assert second[1] == "0:-1:0.5 " + f.featurize_one(ctxs[1], actions[1])[1]


def test_unsorted_or_duplicate_consents_in_foreign_json_match_the_record() -> None:
    table, _ctxs, _actions = random_table(5, seed=9)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for d in raw:
        d["hcp"]["consents"] = ["portal", "email", "email"]
    t2 = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    f = Featurizer(CATALOG)
    batch = f.featurize_table(t2)
    for i, d in enumerate(raw):
        assert batch.lines(i) == f.featurize_json(json.dumps(d), table["action_ids"][i].as_py())


def test_mixed_request_types_fall_back_to_row_by_row_with_same_output() -> None:
    table, _ctxs, _actions = random_table(6, seed=2)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for j, d in enumerate(raw):
        d["request"]["flag"] = "yes" if j % 2 else 3  # string in some rows, number in others
    t2 = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    f = Featurizer(CATALOG)
    batch = f.featurize_table(t2)
    for i, d in enumerate(raw):
        assert batch.lines(i) == f.featurize_json(json.dumps(d), table["action_ids"][i].as_py())


def test_dsjson_contexts_pass_their_namespaces_through_in_bulk_and_one() -> None:
    table, ctxs, actions = random_table(4, seed=4)
    c = {"User": {"age": 31, "tier": "gold"}, "_multi": []}
    n = len(table["action_ids"][2].as_py())
    c["_multi"] = [{"Action": {"id": f"a{j}", "len": j + 0.5}} for j in range(n)]
    contexts = table.column("context").to_pylist()
    contexts[2] = json.dumps({"dsjson": c})
    t2 = table.set_column(1, "context", pa.array(contexts))
    f = Featurizer(CATALOG)
    batch = f.featurize_table(t2)
    lines = batch.lines(2)
    assert lines[0] == "shared |User age:31.000 tier=gold"
    assert lines[1] == "|Action id=a0 len:0.500"
    assert len(lines) == n + 1
    for i in (0, 1, 3):
        assert batch.lines(i) == f.featurize_one(ctxs[i], actions[i])


def test_dsjson_c_object_carries_the_same_features() -> None:
    _table, ctxs, actions = random_table(3, seed=8)
    f = Featurizer(CATALOG)
    c = f.dsjson_c(ctxs[0], actions[0])
    assert set(c) == {"p", "h", "r", "c", "_multi"}
    assert len(c["_multi"]) == len(actions[0])
    assert c["p"]["aff"] == pytest.approx(ctxs[0].hcp.digital_affinity, abs=5e-4)
    assert c["_multi"][0]["K"] == {actions[0][0].channel: 1.0}


def test_imported_dsjson_form_with_per_action_features() -> None:
    f = Featurizer(CATALOG)
    ctx = json.dumps(
        {"dsjson": {"User": {"tier": "gold"}}, "dsjson_actions": {"x@email": {"A": {"n": 2}}}}
    )
    lines = f.featurize_json(ctx, ["x@email", "y@portal"])
    assert lines == ["shared |User tier=gold", "|A n:2.000", "|action id=y@portal"]


def test_history_crosses_reach_the_action_lines_of_both_paths() -> None:
    hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
    hist = History(
        days_since_touch={"email": 3},
        topic_channel_engagements_90d={"efficacy@email": 2, "safety@portal": 1},
        days_since_content={"VEL-EFF-02": 5, "EXTERNAL-9": 40},
    )
    ctx = DecisionContext(hcp, date(2026, 1, 5), hist)
    seen, other = Action("VEL-EFF-02", "email"), Action("VEL-EFF-02", "portal")
    assert CATALOG.by_id["VEL-EFF-02"].topic == "efficacy"
    f = Featurizer(CATALOG)
    lines = f.featurize_one(ctx, [seen, other])
    assert "efficacy@email" not in lines[0]  # the map is featurized per action only
    assert " ch_dst:3 ch_dstb=3d " in lines[1]
    assert lines[1].endswith(" tc_e90:2 it_ago=1w")
    # same item on another channel: seen all the same; no touch or engagement there
    assert " ch_dst_none " in lines[2] and "ch_dstb" not in lines[2]
    assert "tc_e90" not in lines[2] and lines[2].endswith(" it_ago=1w")
    table = pa.table(
        {"context": [ctx.to_json()], "action_ids": [[seen.action_id, other.action_id]]}
    )
    assert f.featurize_table(table).lines(0) == lines


def test_random_contexts_exercise_every_history_cross() -> None:
    table, _ctxs, _actions = random_table(300, seed=11)
    text = Featurizer(CATALOG).featurize_table(table).text().decode()
    for token in (" ch_dstb=", " tc_e90:", " it_ago="):
        assert token in text, token
    # context version 3
    for token in (
        " int_gossip:",
        " top_int=",
        " it_int:",
        " sp_top",
        " sp_ch",
        " a_rx_volume_decile=4to8",
        " a_payer_mix_commercial:",
        " a_kol=false",
        " a_affiliations=academic_center",
    ):
        assert token in text, token
    # an interest that rounds to 0 (0.0004 here) is written nowhere
    assert re.search(r" (int_\w+|it_int):0\.000", text) is None


def test_interest_stated_and_attributes_reach_both_paths() -> None:
    hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
    hist = History(interest={"safety": 0.5, "efficacy": 1.25, "dosing": 1.25, "gossip": 0.0004})
    ctx = DecisionContext(
        hcp,
        date(2026, 1, 5),
        hist,
        stated_topics=("efficacy",),
        stated_channels=("portal",),
        attributes={"rx_volume_decile": "ge8", "kol": True, "share": 0.25, "aff": ["b", "a"]},
    )
    eff_email, eff_portal = Action("VEL-EFF-02", "email"), Action("VEL-EFF-02", "portal")
    f = Featurizer(CATALOG)
    lines = f.featurize_one(ctx, [eff_email, eff_portal])
    # profile: attributes in name order after the consents
    assert lines[0].startswith(
        "shared |p spec=cardiology mkt=US stage=aware dec=7 aff:0.650 cons=email"
        " a_aff=a a_aff=b a_kol=true a_rx_volume_decile=ge8 a_share:0.250 |h"
    )
    # history: interest per topic (0.0004 rounds to 0: left out), the first top among ties
    assert lines[0].endswith(
        "|h int_dosing:1.250 int_efficacy:1.250 int_safety:0.500 top_int=dosing |r |c dow=mon mon=1"
    )
    assert lines[1].endswith(" it_int:1.250 sp_top")
    assert lines[2].endswith(" it_int:1.250 sp_top sp_ch")
    table = pa.table(
        {"context": [ctx.to_json()], "action_ids": [[eff_email.action_id, eff_portal.action_id]]}
    )
    assert f.featurize_table(table).lines(0) == lines


def test_topic_pulls_reach_both_paths_for_the_action_topic_and_channel() -> None:
    hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
    hist = History(topic_pulls_90d={"efficacy": 3, "safety": 0, "gossip": 2})
    ctx = DecisionContext(hcp, date(2026, 1, 5), hist)
    acts = [Action("VEL-EFF-02", "email"), Action("VEL-EFF-02", "portal")]
    acts.append(Action("VEL-SAF-01", "email"))
    f = Featurizer(CATALOG)
    lines = f.featurize_one(ctx, acts)
    assert lines[1].endswith(" it_pull:3 it_pull_email:3")
    assert lines[2].endswith(" it_pull:3 it_pull_portal:3")
    assert "it_pull" not in lines[3]  # a zero count is written nowhere
    assert ctx.to_dict()["history"]["topic_pulls_90d"] == {"efficacy": 3, "gossip": 2}
    assert ctx.to_dict()["v"] == 5
    table = pa.table({"context": [ctx.to_json()], "action_ids": [[a.action_id for a in acts]]})
    assert f.featurize_table(table).lines(0) == lines


def test_override_count_reaches_both_paths_in_h_and_only_when_above_zero() -> None:
    hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
    acts = [Action("VEL-EFF-02", "email")]
    f = Featurizer(CATALOG)
    for n in (0, 2):
        ctx = DecisionContext(hcp, date(2026, 1, 5), History(overrides_90d=n))
        lines = f.featurize_one(ctx, acts)
        shared = lines[0]
        assert (" ovr90:2" in shared) is (n == 2) and "ovr90:0" not in shared
        assert ("overrides_90d" in ctx.to_dict()["history"]) is (n > 0)
        table = pa.table({"context": [ctx.to_json()], "action_ids": [["VEL-EFF-02@email"]]})
        assert f.featurize_table(table).lines(0) == lines
    # a version 4 context (no such field) featurizes like a version 5 one with none
    d = json.loads(DecisionContext(hcp, date(2026, 1, 5)).to_json())
    d["v"] = 4
    v4 = f.featurize_json(json.dumps(d), ["VEL-EFF-02@email"])
    assert v4 == f.featurize_one(DecisionContext(hcp, date(2026, 1, 5)), acts)


def test_version_3_contexts_featurize_like_version_4_without_pulls() -> None:
    table, ctxs, _actions = random_table(40, seed=9)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for d in raw:
        d["v"] = 3
        del d["history"]["topic_pulls_90d"]
    v3 = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    f = Featurizer(CATALOG)
    got = f.featurize_table(v3)
    for i, ctx in enumerate(ctxs):
        hist = {**ctx.history.to_dict(), "topic_pulls_90d": {}}
        same = DecisionContext(
            ctx.hcp,
            ctx.day,
            History.from_dict(hist),
            ctx.request,
            ctx.stated_topics,
            ctx.stated_channels,
            ctx.attributes,
        )
        aids = table["action_ids"][i].as_py()
        expected = f.featurize_json(same.to_json(), aids)
        assert got.lines(i) == expected == f.featurize_json(json.dumps(raw[i]), aids)
        assert " it_pull" not in "".join(expected)


BAD_V3 = [
    (
        {"history": {"topic_pulls_90d": {"safety": -1}}},
        "'history.topic_pulls_90d.safety': negative count",
    ),
    (
        {"history": {"topic_pulls_90d": {"safety": 1.5}}},
        "'history.topic_pulls_90d.safety' is double, not a whole-number count",
    ),
    ({"history": {"interest": {"safety": -1.0}}}, "'history.interest.safety': negative interest"),
    ({"history": {"overrides_90d": -1}}, "'history.overrides_90d': negative count"),
    (
        {"history": {"overrides_90d": 1.5}},
        "'history.overrides_90d' is double, not a whole-number count",
    ),
    ({"history": {"interest": {"safety": "x"}}}, "'history.interest.safety' is string, not a"),
    ({"stated": {"topics": [""]}}, "field 'stated.topics': empty or null name"),
    # types that change between rows go row by row: the per-decision message
    ({"stated": {"topics": "safety"}}, "field 'stated.topics': expected a list of names"),
    ({"attributes": {"kol": ""}}, "field 'attributes.kol': empty value"),
    ({"attributes": {"kol": {"a": 1}}}, "field 'attributes.kol': dict is not a string"),
    ({"attributes": {"Kol": 1}}, "'Kol' is not an attribute name"),
]


@pytest.mark.parametrize(("patch", "match"), BAD_V3, ids=[m for _, m in BAD_V3])
def test_bad_v3_fields_are_refused_by_the_bulk_path(patch: dict, match: str) -> None:
    table, _ctxs, _actions = random_table(3, seed=6)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for k, v in patch.items():
        if k == "history":
            raw[1]["history"].update(v)
        else:
            raw[1][k] = v
    bad = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    with pytest.raises(FeaturizeError, match="featurize_table: ") as info:
        Featurizer(CATALOG).featurize_table(bad)
    assert match in str(info.value)


def test_interest_with_more_than_three_decimals_goes_row_by_row_alike() -> None:
    table, _ctxs, _actions = random_table(5, seed=7)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    raw[2]["history"]["interest"] = {"safety": 0.12351, "dosing": 0.0004}
    texts = [json.dumps(d) for d in raw]
    f = Featurizer(CATALOG)
    got = f.featurize_table(table.set_column(1, "context", pa.array(texts)))
    for i in range(5):
        aids = table["action_ids"][i].as_py()
        assert got.lines(i) == f.featurize_json(texts[i], aids)
    assert " int_safety:0.124" in got.lines(2)[0] and "int_dosing" not in got.lines(2)[0]


def test_version_1_contexts_featurize_like_the_same_history_in_version_2() -> None:
    table, ctxs, _actions = random_table(40, seed=8)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for d in raw:
        d["v"] = 1
        del d["history"]["topic_channel_engagements_90d"], d["history"]["days_since_content"]
        del d["history"]["interest"], d["history"]["topic_pulls_90d"]
        d.pop("stated", None), d.pop("attributes", None)
    v1 = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    f = Featurizer(CATALOG)
    got = f.featurize_table(v1)
    for i, ctx in enumerate(ctxs):
        hist = ctx.history.to_dict()
        hist.update(
            topic_channel_engagements_90d={}, days_since_content={}, interest={}, topic_pulls_90d={}
        )
        same = DecisionContext(ctx.hcp, ctx.day, History.from_dict(hist), ctx.request)
        aids = table["action_ids"][i].as_py()
        expected = f.featurize_json(same.to_json(), aids)
        assert got.lines(i) == expected == f.featurize_json(json.dumps(raw[i]), aids)
        assert " it_ago=" not in "".join(expected) and " tc_e90:" not in "".join(expected)


def test_huge_topic_channel_counts_take_the_plain_path_with_the_same_lines() -> None:
    table, ctxs, actions = random_table(20, seed=6)
    big = []
    for ctx, acts in zip(ctxs, actions, strict=True):
        topic = CATALOG.by_id[acts[0].content_id].topic
        hist = ctx.history.to_dict()
        hist["topic_channel_engagements_90d"] = {f"{topic}@{acts[0].channel}": 123_456}
        hist["topic_pulls_90d"] = {topic: 654_321}
        big.append(DecisionContext(ctx.hcp, ctx.day, History.from_dict(hist), ctx.request))
    t2 = table.set_column(1, "context", pa.array([c.to_json() for c in big]))
    f = Featurizer(CATALOG)
    batch = f.featurize_table(t2)
    for i, (ctx, acts) in enumerate(zip(big, actions, strict=True)):
        lines = f.featurize_one(ctx, acts)
        assert batch.lines(i) == lines
        assert " tc_e90:123456" in lines[1]
        assert f" it_pull:654321 it_pull_{acts[0].channel}:654321" in lines[1]


def test_date_like_request_values_go_row_by_row_with_the_same_output() -> None:
    # Arrow's JSON reader reads ISO-looking strings as timestamps; their text is
    # not recoverable, so such tables are featurized row by row
    table, _ctxs, _actions = random_table(6, seed=12)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    for d in raw:
        d["request"]["due"] = "2026-01-09"
    t2 = table.set_column(1, "context", pa.array([json.dumps(d) for d in raw]))
    f = Featurizer(CATALOG)
    batch = f.featurize_table(t2)
    for i, d in enumerate(raw):
        lines = f.featurize_json(json.dumps(d), table["action_ids"][i].as_py())
        assert batch.lines(i) == lines
        assert " due=2026-01-09" in lines[0]


def test_implausibly_large_values_take_the_untabled_paths_alike() -> None:
    # The bulk path writes small counts, days and interest values through lookup
    # tables of token strings; values beyond those tables are formatted one by one.
    table, _ctxs, _actions = random_table(30, seed=12)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    big = {
        "touches_7d": {"email": 5000},
        "touches_30d": {"portal": 1234},
        "touches_90d": {"email": 100_001},
        "engagements_30d": {"email": 2001},
        "topic_engagements_90d": {"efficacy": 1500, "safety": 3},
        "days_since_touch": {"email": 4000, "portal": 0},
        "topic_channel_engagements_90d": {"efficacy@email": 2500},
        "topic_pulls_90d": {"efficacy": 3000},
        "interest": {"efficacy": 123.456, "safety": 0.25},
    }
    for j in (1, 4, 7):
        raw[j]["history"].update(big)
    texts = [json.dumps(d) for d in raw]
    f = Featurizer(CATALOG)
    got = f.featurize_table(table.set_column(1, "context", pa.array(texts)))
    for i in range(len(texts)):
        assert got.lines(i) == f.featurize_json(texts[i], table["action_ids"][i].as_py())
    shared = got.lines(4)[0]
    for token in (" t7_email:5000", " t90_email:100001", " dst_email:4000", " dst_portal:0"):
        assert token in shared, token
    assert " int_efficacy:123.456" in shared and " top_int=efficacy" in shared


def test_text_of_a_batch_with_a_decision_without_action_lines() -> None:
    batch = FeaturizedBatch(
        pa.array(["shared |a x", "shared |a y", "shared |a z"], pa.string()),
        pa.array(["|b 1", "|b 2", "|b 3"], pa.string()),
        np.array([0, 2, 2, 3], dtype=np.int64),
    )
    text = batch.text(
        label_positions=np.array([1, 2], dtype=np.int64),
        label_prefixes=pa.array(["0:1:0.5 ", "0:-1:0.25 "], pa.string()),
    )
    assert text == (
        b"shared |a x\n|b 1\n0:1:0.5 |b 2\n\nshared |a y\n\nshared |a z\n0:-1:0.25 |b 3\n\n"
    )
    # the same lines with every decision owning one: the single-join path
    one = FeaturizedBatch(batch.shared, batch.actions, np.array([0, 1, 2, 3], dtype=np.int64))
    assert one.text(
        label_positions=np.array([2], dtype=np.int64),
        label_prefixes=pa.array(["0:1:1 "], pa.string()),
    ) == (b"shared |a x\n|b 1\n\nshared |a y\n|b 2\n\nshared |a z\n0:1:1 |b 3\n\n")


def test_contexts_written_over_several_lines_featurize_alike() -> None:
    table, _ctxs, _actions = random_table(12, seed=13)
    raw = [json.loads(c) for c in table.column("context").to_pylist()]
    texts = [json.dumps(d, indent=2) if i % 3 else json.dumps(d) for i, d in enumerate(raw)]
    assert "\n" in texts[1]
    f = Featurizer(CATALOG)
    got = f.featurize_table(table.set_column(1, "context", pa.array(texts)))
    for i in range(len(texts)):
        assert got.lines(i) == f.featurize_json(texts[i], table["action_ids"][i].as_py())


def test_channel_tokens_kept_per_decision_give_the_same_action_lines() -> None:
    """featurize_one computes each channel's crosses once per decision; every line
    equals the line of the action on its own (no tokens kept), on several channels."""
    _table, ctxs, actions = random_table(200, seed=5)
    f = Featurizer(CATALOG)
    channels = set()
    for ctx, acts in zip(ctxs, actions, strict=True):
        assert f.featurize_one(ctx, acts)[1:] == [f.action_line(ctx, a) for a in acts]
        channels.update(a.channel for a in acts)
    assert len(channels) > 1


@pytest.mark.parametrize(
    "config",
    [
        FeaturizerConfig(),
        FeaturizerConfig(namespaces=("p", "c", "K", "x"), interactions=("pK",)),
        FeaturizerConfig(namespaces=("h", "r", "x"), interactions=()),
        FeaturizerConfig(namespaces=("p", "T", "K"), interactions=("pT",)),
    ],
    ids=["default", "partial", "crosses-only", "no-crosses"],
)
def test_one_decision_lines_equal_each_action_line_on_its_own(config: FeaturizerConfig) -> None:
    """featurize_one writes each action's x tokens from what it knows of the action
    ahead; the lines must be those of action_line (cross_tokens) one action at a time,
    whatever the history, the stated preferences and the channels mixed."""
    _, ctxs, actions = random_table(400, seed=23)
    f = Featurizer(CATALOG, config)
    crossed = 0
    for ctx, acts in zip(ctxs, actions, strict=True):
        want = [f.shared_line(ctx), *(f.action_line(ctx, a) for a in acts)]
        assert f.featurize_one(ctx, acts) == want
        crossed += sum(" same_last" in line or " sp_" in line for line in want)
    if "x" in config.namespaces:
        assert crossed > 50  # the context-dependent tokens were exercised


def test_one_decision_refuses_an_action_outside_the_catalog() -> None:
    f = Featurizer(CATALOG)
    ctx = random_context(np.random.default_rng(3), 0)
    with pytest.raises(FeaturizeError, match="NOPE@email"):
        f.featurize_one(ctx, [CATALOG.actions[0], Action("NOPE", "email")])


def test_clean_is_the_pattern_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from nba.features import config as cfg

    monkeypatch.setattr(cfg, "_CLEANED", {})
    monkeypatch.setattr(cfg, "_CLEANED_MAX", 4)
    names = ["a b", "x|y:z", "tab\there", "ok", "new\nline", "a b", "v\x0bw", "plain"]
    for name in names * 2:
        assert cfg.clean(name) == re.sub(cfg.CLEAN_PATTERN, "_", name)
    assert len(cfg._CLEANED) == 4
