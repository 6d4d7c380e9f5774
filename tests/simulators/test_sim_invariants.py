"""Invariants every simulated log must satisfy: consent, no-see, approval and
expiry, capacity, probability vectors, propensities, touches, ground truth."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nba.catalog import Catalog
from nba.domain import Action, Decision
from nba.reward import RewardDefinition
from simulators.hcp.world import World


@pytest.fixture(scope="module")
def tables(campaign_run):
    dec = campaign_run.table("decisions")
    pop = pq.read_table(campaign_run.out / "population.parquet").to_pandas().set_index("hcp_id")
    return dec, pop


def test_every_eligible_action_is_consented_approved_and_not_a_visit_to_no_see(tables):
    dec, pop = tables
    cat = Catalog.default()
    checked = 0
    for row in dec.itertuples():
        hcp = pop.loc[row.hcp_id]
        day = row.ts.date()
        consents = set(hcp.consents)
        for aid in row.action_ids:
            a = Action.parse(aid)
            assert a.channel in consents, (row.event_id, aid)
            assert a.channel in row.channels_requested
            assert cat.item_for(a).is_approved(hcp.market, day), (row.event_id, aid, day)
            assert not (hcp.no_see and a.channel == "rep_visit")
            checked += 1
    assert checked > 1000


def test_expired_and_not_yet_approved_content_is_never_offered():
    # US approval of VEL-SAF-01 expires 2025-12-31; VEL-SAF-04 starts 2026-03-01
    cat = Catalog.default()
    w = World(200, seed=2, start=date(2026, 1, 5))
    approved = cat.approval_matrix(w.population.markets, date(2026, 1, 5))
    us = w.population.markets.index("US")
    hcp = np.flatnonzero(w.population.market == us)
    elig = w.eligible(hcp, tuple(cat.channels), approved)
    offered = {cat.action_ids[j] for j in np.flatnonzero(elig.any(axis=0))}
    assert not any(a.startswith("VEL-SAF-01@") for a in offered)
    assert not any(a.startswith("VEL-SAF-04@") for a in offered)


def test_no_email_after_unsubscribe_is_processed(campaign_run):
    dec = campaign_run.table("decisions")
    out = campaign_run.table("outcomes")
    unsub = out[out["type"] == "unsubscribed"].merge(dec[["event_id", "hcp_id"]], on="event_id")
    for r in unsub.itertuples():
        later = dec[(dec.hcp_id == r.hcp_id) & (dec.ts.dt.date > r.ts.date())]
        assert not any("@email" in a for ids in later.action_ids for a in ids)


def test_capacity_of_reps_and_email_platform_is_respected(campaign_run):
    dec = campaign_run.table("decisions")
    w = World(300, seed=11)  # same population size -> same capacities
    per_day = dec.groupby([dec.ts.dt.date, "requester"]).size()
    rep = per_day.xs("rep_app", level="requester")
    email = per_day.xs("email_platform", level="requester")
    assert rep.max() <= w.rep_capacity
    assert email.max() <= w.email_cap
    assert rep.max() == w.rep_capacity  # the capacity binds on some day
    # reps and the email platform work on weekdays only
    assert all(d.weekday() < 5 for d in rep.index)
    assert all(d.weekday() < 5 for d in email.index)


def test_probabilities_are_distributions_and_propensity_is_the_served_entry(campaign_run):
    dec = campaign_run.table("decisions")
    for row in dec.itertuples():
        p = np.asarray(row.probabilities)
        assert np.all((p >= 0) & (p <= 1))
        assert abs(p.sum() - 1) < 1e-9
        assert row.propensity == p[row.chosen_index]
        assert row.chosen_action_id == row.action_ids[row.chosen_index]
    # the contract record accepts every row
    for r in dec.head(50).to_dict("records"):
        Decision(
            event_id=r["event_id"],
            ts=r["ts"].to_pydatetime(),
            hcp_id=r["hcp_id"],
            requester=r["requester"],
            channels_requested=tuple(r["channels_requested"]),
            context=r["context"],
            catalog_version=r["catalog_version"],
            action_ids=tuple(r["action_ids"]),
            probabilities=tuple(r["probabilities"]),
            chosen_index=int(r["chosen_index"]),
            chosen_action_id=r["chosen_action_id"],
            propensity=float(r["propensity"]),
            policy=r["policy"],
            model_version=r["model_version"],
        )
    assert dec.event_id.is_unique
    assert (dec.catalog_version == Catalog.default().version).all()


def test_each_decision_has_its_touch_and_its_ground_truth(campaign_run):
    dec = campaign_run.table("decisions")
    tch = campaign_run.table("touches")
    tch = tch[tch.kind == "contact"]  # the pulls are checked in test_sim_pulls.py
    gt = campaign_run.table("ground_truth")
    assert len(tch) == len(dec)
    merged = dec.merge(tch, on=["hcp_id", "ts"], how="left")
    assert merged.channel.notna().all()
    chosen = merged.chosen_action_id.map(Action.parse)
    assert (chosen.map(lambda a: a.channel) == merged.channel).all()
    assert (chosen.map(lambda a: a.content_id) == merged.content_id).all()
    g = dec.merge(gt, on="event_id", suffixes=("", "_gt"))
    assert len(g) == len(dec)
    assert (g.ts == g.ts_gt).all()
    assert (g.reward_definition == RewardDefinition.default().id).all()
    for r in g.itertuples():
        assert len(r.expected_rewards) == len(r.action_ids)
        assert np.all(np.isfinite(r.expected_rewards))


def test_outcomes_arrive_after_their_decision_mostly_inside_the_window(campaign_run):
    dec = campaign_run.table("decisions")[["event_id", "ts"]]
    out = campaign_run.table("outcomes").merge(dec, on="event_id", suffixes=("", "_dec"))
    delay = (out.ts - out.ts_dec) / pd.Timedelta(days=1)
    assert (delay >= 0).all()
    assert delay.max() <= 45
    late = (delay > 14).mean()
    assert 0 < late < 0.05
    responses = delay[out["type"] != "delivered"]  # delivery is immediate, responses are not
    assert ((responses > 1 / 24) & (responses < 14)).mean() > 0.5  # hours to days


def test_fatigue_rises_with_contact_and_decays():
    w = World(400, seed=4)
    before = w.population.fatigue.copy()
    w.run(days=1, policy="uniform")
    tch = w.population.fatigue - before
    assert tch.max() == 1.0 and (tch >= 0).all()
    touched = tch.sum(axis=1) > 0
    assert touched.sum() > 20
    # the response to the same action falls as fatigue rises
    hcp = np.flatnonzero(touched)[:10]
    action = np.zeros(hcp.shape[0], dtype=np.int64) + w.catalog.action_index["VEL-EFF-02@email"]
    p0 = w.response.probabilities(w.population, hcp, action)
    w.population.fatigue[hcp] += 3.0
    p1 = w.response.probabilities(w.population, hcp, action)
    assert np.all(p1.primary < p0.primary)
    assert np.all(p1.side > p0.side)  # over-contact raises the unsubscribe probability
    decay = w._decay.copy()
    f = w.population.fatigue.copy()
    w._next_day(1)
    assert np.allclose(w.population.fatigue, f * decay[None, :])


def test_response_prefers_stage_matched_content_and_penalizes_repeats():
    w = World(200, seed=6)
    pop, resp, cat = w.population, w.response, w.catalog
    hcp = np.arange(50)
    pop.stage[hcp] = 0  # unaware: mechanism is a stage topic, access_coverage is not
    mech = cat.action_index["VEL-MOA-01@email"] if "VEL-MOA-01@email" in cat.action_index else None
    actions = [a for a in cat.action_ids if a.endswith("@email")]
    by_topic = {cat.item_for(a).topic: cat.action_index[a] for a in actions}
    assert mech is None or mech >= 0
    t_match, t_other = by_topic["mechanism"], by_topic["access_coverage"]
    # equalise everything except the stage match
    ti = {t: i for i, t in enumerate(cat.topics)}
    pop.topic_interest[:, ti["access_coverage"]] = pop.topic_interest[:, ti["mechanism"]]
    pop.knowledge[:, ti["access_coverage"]] = pop.knowledge[:, ti["mechanism"]]
    pm = resp.probabilities(pop, hcp, np.full(50, t_match)).primary
    po = resp.probabilities(pop, hcp, np.full(50, t_other)).primary
    assert np.all(pm > po)
    pop.seen[hcp, cat.action_item_index[t_match]] = 2
    pr = resp.probabilities(pop, hcp, np.full(50, t_match)).primary
    assert np.all(pr < pm)
    for p in (pm, po, pr):
        assert np.all((p >= 0) & (p <= 1))


def test_vectorized_approval_equals_the_catalog_on_every_day_of_a_year():
    w = World(30, seed=1)
    for k in range(0, 800, 3):
        day = date(2025, 1, 1).fromordinal(date(2025, 1, 1).toordinal() + k)
        assert np.array_equal(
            w.approved_on(day), w.catalog.approval_matrix(w.population.markets, day)
        ), day
