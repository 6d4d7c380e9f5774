"""Bad inputs to the featurizer fail with errors that say what and where."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, HCPProfile
from nba.features import FeaturizeError, Featurizer, FeaturizerConfig

CATALOG = Catalog.default()
F = Featurizer(CATALOG)
HCP = HCPProfile("h1", "cardiology", 5, "US", "aware", frozenset({"email"}))
GOOD = DecisionContext(HCP, date(2026, 1, 5)).to_dict()
AID = CATALOG.action_ids[0]


def _table(ctx: Any, actions: Any = (AID,)) -> pa.Table:
    text = ctx if isinstance(ctx, str) else json.dumps(ctx)
    return pa.table(
        {
            "event_id": ["ev-bad", "ev-ok"],
            "context": [text, json.dumps(GOOD)],
            "action_ids": [list(actions), [AID]],
        }
    )


def _with(path: str, value: Any) -> dict[str, Any]:
    d = json.loads(json.dumps(GOOD))
    *head, last = path.split(".")
    node = d
    for k in head:
        node = node[k]
    if value is _DROP:
        del node[last]
    else:
        node[last] = value
    return d


_DROP = object()


@pytest.mark.parametrize(
    ("ctx", "actions", "match"),
    [
        (_with("hcp.adoption_stage", "bored"), (AID,), r"ev-bad.*hcp.adoption_stage.*not one of"),
        (_with("hcp.decile", 11), (AID,), r"ev-bad.*hcp.decile.*1-10"),
        (_with("hcp.digital_affinity", 1.5), (AID,), r"ev-bad.*digital_affinity.*\[0, 1\]"),
        (_with("hcp.specialty", ""), (AID,), r"ev-bad.*hcp.specialty.*empty"),
        (_with("history", {"touches_7d": {"email": -2}}), (AID,), r"ev-bad.*touches_7d.*negative"),
        (_with("history", {"touches_7d": {"email": 1.5}}), (AID,), r"touches_7d.email.*count"),
        (_with("v", 7), (AID,), r"ev-bad.*'v'.*unsupported"),
        (_with("v", "2"), (AID,), r"ev-bad.*'v'.*unsupported version '2'"),
        (
            _with("history", {"topic_channel_engagements_90d": {"safety": 1}}),
            (AID,),
            r"'history.topic_channel_engagements_90d.safety': key must be 'topic@channel'",
        ),
        (
            _with("history", {"topic_channel_engagements_90d": {"safety@email": -1}}),
            (AID,),
            r"ev-bad.*'history.topic_channel_engagements_90d.safety@email'.*negative",
        ),
        (
            _with("history", {"days_since_content": {"c1": 0}}),
            (AID,),
            r"ev-bad.*'history.days_since_content.c1'.*1..90",
        ),
        (
            _with("history", {"days_since_content": {"c1": 120}}),
            (AID,),
            r"ev-bad.*'history.days_since_content.c1'.*1..90",
        ),
        (
            _with("history", {"days_since_content": {"c1": 1.5}}),
            (AID,),
            r"'history.days_since_content.c1' is double, not a whole-number",
        ),
        (GOOD, ("NOPE@email",), r"ev-bad.*'NOPE@email' is not in catalog"),
        (GOOD, (), r"ev-bad.*no eligible actions"),
        ({"dsjson": {"_multi": [{"a": {"x": 1}}, {"a": {"x": 2}}]}}, (AID,), r"has 2 actions.*1"),
        ({"dsjson": {"_multi": 3}}, (AID,), r"'_multi' must be a list"),
    ],
    ids=[
        "stage",
        "decile",
        "affinity",
        "empty-specialty",
        "negative-count",
        "fractional-count",
        "version",
        "version-type",
        "topic-channel-key",
        "topic-channel-negative",
        "content-days-zero",
        "content-days-old",
        "content-days-fraction",
        "unknown-action",
        "no-actions",
        "dsjson-count",
        "dsjson-multi",
    ],
)
def test_bad_table_rows_are_refused_naming_the_event(ctx: Any, actions: Any, match: str) -> None:
    with pytest.raises(FeaturizeError, match=match):
        F.featurize_table(_table(ctx, actions))


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({"context": ["{}"]}), r"missing column 'action_ids'"),
        (pa.table({"context": [1], "action_ids": [[AID]]}), r"'context' is int64, not string"),
        (pa.table({"context": ['{"hcp": {}}'], "action_ids": [[AID]]}), r"field 'hcp.specialty'"),
        (
            pa.table({"context": [None, "{}"], "action_ids": [[AID], [AID]]}),
            r"row 0.*context or action_ids is null",
        ),
    ],
    ids=["no-actions-column", "context-type", "missing-field", "null-context"],
)
def test_bad_tables_are_refused(table: pa.Table, match: str) -> None:
    with pytest.raises(FeaturizeError, match=match):
        F.featurize_table(table)


def test_one_path_refuses_unknown_actions_and_empty_sets() -> None:
    ctx = DecisionContext(HCP, date(2026, 1, 5))
    with pytest.raises(FeaturizeError, match=r"'VEL-EFF-01@fax' is not in catalog"):
        F.featurize_one(ctx, [Action("VEL-EFF-01", "fax")])
    with pytest.raises(FeaturizeError, match="no actions"):
        F.featurize_one(ctx, [])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespaces": ("p", "Q")}, r"'namespaces'.*unknown namespace 'Q'"),
        ({"namespaces": ("p", "p", "T")}, r"lists a namespace twice"),
        ({"namespaces": ("p", "h")}, r"at least one action namespace"),
        ({"interactions": ("pTK",)}, r"'pTK' is not a pair"),
        ({"interactions": ("pT", "pT")}, r"lists a pair twice"),
        ({"namespaces": ("p", "T"), "interactions": ("hT",)}, r"'hT' names namespace 'h'"),
        ({"version": 9}, r"'version'.*not supported"),
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(FeaturizeError, match=match):
        FeaturizerConfig(**kwargs)


def test_config_round_trips_and_hash_tracks_content() -> None:
    cfg = FeaturizerConfig(interactions=("pT",))
    assert FeaturizerConfig.from_dict(cfg.to_dict()) == cfg
    assert FeaturizerConfig.from_dict(cfg.to_dict()).content_hash == cfg.content_hash
    assert cfg.content_hash != FeaturizerConfig().content_hash
    with pytest.raises(FeaturizeError, match="field 'colour': unknown field"):
        FeaturizerConfig.from_dict({"colour": 1})
