"""The logged context is exactly DecisionContext.to_json() with the history
defined in nba.context, recomputed here the slow, obvious way from the tables."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest

from nba.catalog import Catalog
from nba.context import DecisionContext, interest_profile
from nba.domain import ENGAGEMENT_TYPES, Action


def _recompute(dec, tch, out, cat: Catalog, pulls=None):
    pulled = defaultdict(list)  # hcp -> [(day, topic)], each topic once per pull touch
    if pulls is not None:
        for r in pulls.itertuples():
            for topic in sorted(set(r.topics)):
                pulled[r.hcp_id].append((r.ts.date(), topic))
    touches = defaultdict(list)  # hcp -> [(day, ts, channel, content)]
    for r in tch.itertuples():
        touches[r.hcp_id].append((r.ts.date(), r.ts, r.channel, r.content_id))
    chosen = {r.event_id: (r.hcp_id, Action.parse(r.chosen_action_id)) for r in dec.itertuples()}
    engagements = defaultdict(set)  # hcp -> {(event_id, type, day, channel, topic)}
    for r in out.itertuples():
        if r.type in ENGAGEMENT_TYPES:
            hcp, a = chosen[r.event_id]
            topic = cat.item_for(a).topic
            engagements[hcp].add((r.event_id, r.type, r.ts.date(), a.channel, topic))
    expected = {}
    for r in dec.itertuples():
        day: date = r.ts.date()
        h = {
            "touches_7d": {},
            "touches_30d": {},
            "touches_90d": {},
            "engagements_30d": {},
            "topic_engagements_90d": {},
            "days_since_touch": {},
            "last_content_id": None,
            "topic_channel_engagements_90d": {},
            "days_since_content": {},
            "interest": {},
            "topic_pulls_90d": {},
        }
        signals: dict[int, dict[str, int]] = defaultdict(dict)  # age -> topic -> count
        for pday, topic in pulled[r.hcp_id]:
            ago = (day - pday).days
            signals[ago][topic] = signals[ago].get(topic, 0) + 1
            if 1 <= ago <= 90:
                h["topic_pulls_90d"][topic] = h["topic_pulls_90d"].get(topic, 0) + 1
        last_ts = None
        for tday, ts, ch, content in touches[r.hcp_id]:
            if tday >= day:
                continue
            for n in (7, 30, 90):
                if tday >= day - timedelta(days=n):
                    key = f"touches_{n}d"
                    h[key][ch] = h[key].get(ch, 0) + 1
            ago = (day - tday).days
            if ago <= 90 and (ch not in h["days_since_touch"] or ago < h["days_since_touch"][ch]):
                h["days_since_touch"][ch] = ago
            if last_ts is None or ts > last_ts:
                last_ts, h["last_content_id"] = ts, content
            seen = h["days_since_content"]
            if ago <= 90 and (content not in seen or ago < seen[content]):
                seen[content] = ago
        for _eid, _t, eday, ch, topic in engagements[r.hcp_id]:
            if day - timedelta(days=30) <= eday < day:
                h["engagements_30d"][ch] = h["engagements_30d"].get(ch, 0) + 1
            if day - timedelta(days=90) <= eday < day:
                h["topic_engagements_90d"][topic] = h["topic_engagements_90d"].get(topic, 0) + 1
                tc = h["topic_channel_engagements_90d"]
                tc[f"{topic}@{ch}"] = tc.get(f"{topic}@{ch}", 0) + 1
                ago = (day - eday).days
                signals[ago][topic] = signals[ago].get(topic, 0) + 1
        h["interest"] = interest_profile(signals)
        expected[r.event_id] = h
    return expected


@pytest.mark.parametrize("run", ["campaign_run", "oracle_run"])
def test_history_in_context_matches_recomputation_from_the_logs(run, request):
    sim = request.getfixturevalue(run)
    dec = sim.table("decisions")
    everything = sim.table("touches")
    # contexts count contacts only, as before pull signals (docs/simulator.md, "Pull signals");
    # the interest profile reads the pulls
    tch = everything[everything.kind == "contact"]
    pulls = everything[everything.kind != "contact"]
    assert len(pulls) > 0
    expected = _recompute(dec, tch, sim.table("outcomes"), Catalog.default(), pulls)
    nonempty = seen = engaged = interested = pulled = 0
    for r in dec.itertuples():
        ctx = DecisionContext.from_json(r.context)
        got = ctx.history.to_dict()
        exp = {
            k: (dict(sorted(v.items())) if isinstance(v, dict) else v)
            for k, v in expected[r.event_id].items()
        }
        assert got == exp, r.event_id
        nonempty += bool(got["touches_90d"])
        seen += bool(got["days_since_content"])
        engaged += bool(got["topic_channel_engagements_90d"])
        interested += bool(got["interest"])
        pulled += bool(got["topic_pulls_90d"])
        assert ctx.hcp.hcp_id == r.hcp_id
        assert ctx.day == r.ts.date()
        assert ctx.request == {"requester": r.requester}
    assert nonempty > len(dec) / 3  # the history is exercised, not empty
    assert seen > len(dec) / 3 and engaged > 0
    assert interested > len(dec) / 10  # the interest profile is exercised
    assert pulled > len(dec) / 20  # and the pull counts


def test_context_strings_are_byte_identical_to_to_json(campaign_run):
    dec = campaign_run.table("decisions")
    for text in dec.context:
        assert DecisionContext.from_json(text).to_json() == text


def test_profile_in_context_starts_from_the_population_and_only_loses_consents(campaign_run):
    dec = campaign_run.table("decisions")
    pop = pq.read_table(campaign_run.out / "population.parquet").to_pandas().set_index("hcp_id")
    stages = ("unaware", "aware", "considering", "trialing", "adopting", "advocate")
    for r in dec.itertuples():
        hcp = DecisionContext.from_json(r.context).hcp
        p = pop.loc[r.hcp_id]
        assert (hcp.specialty, hcp.decile, hcp.market, hcp.no_see) == (
            p.specialty,
            p.decile,
            p.market,
            p.no_see,
        )
        assert hcp.digital_affinity == p.digital_affinity
        assert hcp.consents <= set(p.consents)
        assert stages.index(hcp.adoption_stage) >= stages.index(p.adoption_stage)
