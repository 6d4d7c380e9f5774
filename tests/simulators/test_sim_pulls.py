"""Pull signals: the simulated HCP shows its hidden interest as touches of the new
kinds (detail pulls, email clicks, portal views, webinar questions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nba.catalog import Catalog
from nba.domain import Action
from nba.logs import io as logio
from nba.logs.schema import TOUCH_KINDS, TOUCHES
from simulators.hcp.config import SimulatorConfigError, WorldConfig
from simulators.hcp.history import HistoryTracker
from simulators.hcp.world import World

PULL_KINDS = [k for k in TOUCH_KINDS if k != "contact"]


def _hcp_index(ids: pd.Series) -> np.ndarray:
    return ids.str[4:].astype(int).to_numpy() - 1  # "hcp-000001" -> 0


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory):
    """A 1500-HCP world run for 30 days, with its hidden state at the start."""
    out = tmp_path_factory.mktemp("pulls") / "logs"
    world = World(1500, seed=21)
    interest = world.population.topic_interest.copy()
    summary = world.run(30, policy="uniform", out=out)
    return world, interest, summary, out


def test_touch_log_has_valid_values_in_every_new_column(seeded):
    cat = Catalog.default()
    table = logio.read(seeded[3], "touches")
    assert table.schema.equals(TOUCHES)
    t = table.to_pandas()
    assert set(t.kind) == set(TOUCH_KINDS)  # every kind occurs
    assert t.channel.isin(cat.channels).all()
    assert (t.content_id.str.len() > 0).all()
    items = {it.id for it in cat.items}
    portal_pages = {f"portal:{topic}" for topic in cat.topics}
    assert t.content_id.isin(items | portal_pages).all()
    assert t.topics.map(lambda ts: all(x in cat.topics for x in ts)).all()
    assert t.content_ids.map(lambda cs: all(c in items for c in cs)).all()
    assert (t.dwell_s.dropna() >= 0).all()
    contact, pull = t[t.kind == "contact"], t[t.kind != "contact"]
    assert (contact.topics.map(len) == 0).all() and (contact.content_ids.map(len) == 0).all()
    assert contact.dwell_s.isna().all() and (contact.origin == "ours").all()
    assert (pull.topics.map(len) >= 1).all()
    assert (pull.origin == np.where(pull.kind == "portal_view", "external", "ours")).all()
    details = pull[pull.kind == "detail_pull"]
    assert details.channel.isin(["rep_visit", "remote_call"]).all()
    assert details.dwell_s.notna().all() and (details.dwell_s > 0).all()
    # slides shown in a detail are on the topics the HCP asked about
    by_id = cat.by_id
    for r in details.itertuples():
        assert {by_id[c].topic for c in r.content_ids} <= set(r.topics)
        assert len(set(r.topics)) == len(r.topics)
    assert (pull[pull.kind == "portal_view"].channel == "portal").all()
    assert (pull[pull.kind == "webinar_question"].channel == "webinar").all()


def test_details_happen_when_the_visit_or_call_was_held(seeded):
    out = seeded[3]
    t = logio.read(out, "touches").to_pandas()
    dec = logio.read(out, "decisions").to_pandas()[["event_id", "hcp_id", "chosen_action_id"]]
    out = logio.read(out, "outcomes").to_pandas()
    held = out[out.type.isin(["meeting_held", "call_held"])].merge(dec, on="event_id")
    held = held.assign(content_id=held.chosen_action_id.map(lambda a: Action.parse(a).content_id))
    details = t[t.kind == "detail_pull"]
    assert len(details) == len(held) > 0
    key = ["hcp_id", "ts", "content_id"]
    merged = details[key].merge(held[key], on=key, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_email_clicks_carry_the_topic_of_the_clicked_content(seeded):
    out = seeded[3]
    cat = Catalog.default()
    t = logio.read(out, "touches").to_pandas()
    dec = logio.read(out, "decisions").to_pandas()[["event_id", "hcp_id", "chosen_action_id"]]
    out = logio.read(out, "outcomes").to_pandas()
    clicked = out[out.type == "clicked"].merge(dec, on="event_id")
    clicks = t[t.kind == "email_click"]
    assert len(clicks) == len(clicked) > 0
    m = clicks.merge(clicked, on=["hcp_id", "ts"], suffixes=("", "_oc"))
    assert len(m) == len(clicks)
    content = m.chosen_action_id.map(lambda a: Action.parse(a).content_id)
    assert (m.content_id == content).all()
    assert (m.channel == "email").all()
    assert (m.topics.map(list) == content.map(lambda c: [cat.by_id[c].topic])).all()


def test_pulled_topics_follow_hidden_interest(seeded):
    world, interest, summary, out = seeded
    assert all(summary.pulls_by_kind[k] > 0 for k in PULL_KINDS)
    t = logio.read(out, "touches").to_pandas()
    # email clicks follow the topic of what we sent; the other pulls are the HCP's choice
    p = t[t.kind.isin(["detail_pull", "portal_view", "webinar_question"])].explode("topics")
    h = _hcp_index(p.hcp_id)
    topic = p.topics.map({x: i for i, x in enumerate(world.catalog.topics)}).to_numpy()
    assert h.size > 1000
    # the pulled topic is mostly one the HCP is more interested in than in its median topic
    above = interest[h, topic] > np.median(interest[h], axis=1)
    assert above.mean() > 0.62  # 0.5 if pulls ignored interest (sd of the share ~0.014)
    counts = np.zeros_like(interest)
    np.add.at(counts, (h, topic), 1)
    assert np.corrcoef(interest.ravel(), counts.ravel())[0, 1] > 0.08


def test_low_knowledge_hcps_keep_pulling_a_topic_longer():
    cfg = WorldConfig(portal_view_rate=0.5)
    world = World(800, config=cfg, seed=4)
    pop = world.population
    t0 = 0
    pop.topic_interest[:, t0] = 1.0  # everybody cares about topic 0 ...
    low = np.arange(pop.n) % 2 == 0
    pop.knowledge[:, t0] = np.where(low, 0.05, 0.6)  # ... half of them know little about it
    world.pulls.interest_weight[:] = np.exp(cfg.pull_interest_coef * pop.topic_interest)
    k_start = pop.knowledge[:, t0].copy()
    days = 80
    pulled = np.zeros((2, days))  # pulls of topic 0 per day: low, high knowledge
    for d in range(days):
        if d:
            world.next_day(d)
        views = world.portal_views(d)
        rows = views.topic_rows()
        hit = views.topics == t0
        who = views.hcp[rows][hit]
        pulled[0, d] = low[who].sum()
        pulled[1, d] = (~low[who]).sum()
    late = slice(days // 2, days)
    early = slice(0, days // 4)
    gained = pop.knowledge[:, t0] - k_start
    e_low, e_high = pulled[:, early].mean(axis=1)
    l_low, l_high = pulled[:, late].mean(axis=1)
    # the low-knowledge half keeps pulling the topic well into the run ...
    assert l_low > 1.5 * l_high
    # ... while its pulls fade as it learns (it learns more, so they fade faster)
    assert gained[low].mean() > 0.2 and gained[low].mean() > 2 * gained[~low].mean()
    assert e_low > 1.3 * l_low
    assert e_low / l_low > e_high / l_high


def test_same_seed_same_touches_and_pulls_leave_outcome_draws_alone(tmp_path: Path):
    def run(seed: int, name: str, **cfg: float) -> Path:
        out = tmp_path / name
        World(250, config=WorldConfig(**cfg), seed=seed).run(15, policy="uniform", out=out)
        return out

    a, b, c = run(8, "a"), run(8, "b"), run(9, "c")
    ta, tb = logio.read(a, "touches"), logio.read(b, "touches")
    assert ta.equals(tb)
    assert (ta.to_pandas().kind != "contact").sum() > 50
    assert not ta.equals(logio.read(c, "touches"))
    # without the knowledge they bring, pulls change nothing in the world: outcomes and
    # ground truth are identical whether the world emits many pull signals or few, and
    # so are the decisions of a policy that ignores the context; only the logged
    # context differs (its interest profile is built from the pulls)
    quiet = {"pull_knowledge_gain": 0.0}
    d = run(8, "d", **quiet)
    e = run(8, "e", **quiet, portal_view_rate=0.0, webinar_question_rate=0.0)
    for table in ("outcomes", "ground_truth"):
        assert logio.read(d, table).equals(logio.read(e, table)), table
    dec_d, dec_e = logio.read(d, "decisions"), logio.read(e, "decisions")
    assert dec_d.drop_columns(["context"]).equals(dec_e.drop_columns(["context"]))
    assert dec_d.column("context") != dec_e.column("context")
    pulls_d = (logio.read(d, "touches").to_pandas().kind == "portal_view").sum()
    assert pulls_d > 0 and (logio.read(e, "touches").to_pandas().kind == "portal_view").sum() == 0


def test_topic_pulls_count_the_pulls_of_the_touch_log(seeded):
    world, _, _, out = seeded
    t = logio.read(out, "touches").to_pandas()
    p = t[t.kind != "contact"].explode("topics")
    start = pd.Timestamp(world.start, tz="UTC")
    day = ((p.ts - start) // pd.Timedelta(days=1)).to_numpy()
    today = world.history.day
    keep = (day < today) & (day >= today - 90)
    h = _hcp_index(p.hcp_id)[keep]
    topic = p.topics[keep].map({x: i for i, x in enumerate(world.catalog.topics)}).to_numpy()
    expected = np.zeros((world.population.n, len(world.catalog.topics)), dtype=np.int64)
    np.add.at(expected, (h, topic), 1)
    got = world.history.topic_pulls(np.arange(world.population.n))
    assert expected.sum() > 100
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda tr: tr.record_pulls(np.array([60]), np.array([0]), np.array([0])),
            "outside the recordable range",
        ),
        (
            lambda tr: tr.record_pulls(np.array([-1]), np.array([0]), np.array([0])),
            "outside the recordable range",
        ),
    ],
)
def test_history_pull_counters_refuse_bad_input(call, match):
    tracker = HistoryTracker(3, 5, 10, horizon_days=46)
    with pytest.raises(ValueError, match=match):
        call(tracker)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("pull_knowledge_gain", 1.5, "'pull_knowledge_gain': must be in \\[0, 1\\]"),
        ("pull_interest_coef", -1.0, "'pull_interest_coef': must be a finite number >= 0"),
        ("portal_view_rate", float("nan"), "'portal_view_rate': must be a finite number >= 0"),
        ("webinar_question_rate", -0.1, "'webinar_question_rate': must be a finite"),
        ("detail_extra_topics", "2", "'detail_extra_topics': must be a finite number"),
        ("detail_dwell_median_s", 0.0, "'detail_dwell_median_s': must be a positive number"),
        ("portal_dwell_median_s", float("inf"), "'portal_dwell_median_s': must be a positive"),
        ("dwell_sigma", -0.5, "'dwell_sigma': must be a finite number >= 0"),
    ],
)
def test_bad_pull_parameters_are_refused(field, value, match):
    with pytest.raises(SimulatorConfigError, match=match):
        WorldConfig(**{field: value})


def test_portal_views_only_on_the_current_day():
    world = World(20, seed=1)
    with pytest.raises(Exception, match="portal_views: the world is on day 0, not 3"):
        world.portal_views(3)
