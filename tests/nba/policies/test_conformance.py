"""The contract every registered policy must keep (found via the registry).

Each policy in :func:`nba.policies.registry.available` is built with a seed,
taught a little (if it learns), and checked: probabilities are a distribution
over exactly the eligible actions; the propensity is the served probability of
the sampled action; sampling is fixed by (seed, event id); save -> load keeps
the probabilities; learning leaves its inputs alone; sampled frequencies match
the probabilities (chi-square, fixed seed).
"""

from __future__ import annotations

import copy
import inspect
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import Action, HCPProfile
from nba.policies.base import Policy
from nba.policies.registry import available

CATALOG = Catalog.default()
DAY = date(2026, 1, 12)
POLICIES = available()


def _contexts() -> list[tuple[DecisionContext, tuple[Action, ...]]]:
    """A handful of contexts covering markets, stages, histories, channel sets."""
    rows = [
        ("h1", "cardiology", 9, "US", "aware", {"email", "rep_visit"}, False, 0.8, None),
        (
            "h2",
            "endocrinology",
            3,
            "DE",
            "considering",
            {"email", "webinar"},
            True,
            0.2,
            ["email", "webinar", "portal"],
        ),
        ("h3", "general_practice", 6, "FR", "unaware", {"rep_visit"}, False, 0.5, ["rep_visit"]),
        ("h4", "nephrology", 1, "GB", "adopting", set(), False, 0.9, ["portal"]),
    ]
    out = []
    for i, (hid, spec, dec, mkt, stage, cons, nosee, aff, chans) in enumerate(rows):
        hcp = HCPProfile(hid, spec, dec, mkt, stage, frozenset(cons), nosee, aff)
        hist = History(
            touches_30d={"email": i + 1, "rep_visit": i},
            engagements_30d={"email": i % 2},
            topic_engagements_90d={"efficacy": i},
            days_since_touch={"email": 3 + i},
            last_content_id=CATALOG.items[i].id,
        )
        ctx = DecisionContext(hcp, DAY, hist, {"requester": "test"})
        acts = CATALOG.eligible_actions(mkt, DAY, chans)
        assert acts, f"fixture context {hid} has no eligible actions"
        out.append((ctx, acts))
    return out


CONTEXTS = _contexts()


def make_policy(cls: type[Policy], seed: int) -> Policy:
    """Build ``cls`` with ``seed`` (and the shipped catalog if it takes one);
    a learning policy gets a short deterministic history to learn from."""
    kwargs: dict[str, Any] = {}
    sig = inspect.signature(cls.__init__)
    if "seed" in sig.parameters:
        kwargs["seed"] = seed
    policy = cls(**kwargs)
    if cls.learns:
        for rnd in range(30):
            for k, (ctx, acts) in enumerate(CONTEXTS):
                d = policy.decide(ctx, acts, f"teach-{rnd}-{k}")
                chosen = acts[d.chosen_index]
                reward = 1.0 if chosen.channel == "email" else 0.0
                policy.learn(ctx, acts, d.chosen_index, reward, d.propensity)
    return policy


@pytest.fixture(params=sorted(POLICIES), ids=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> Policy:
    return make_policy(POLICIES[request.param], seed=7)


def test_registry_finds_policies() -> None:
    assert "vw" in POLICIES
    for name, cls in POLICIES.items():
        assert cls.name == name


def test_probabilities_are_a_distribution_over_the_eligible_actions(policy: Policy) -> None:
    for ctx, acts in CONTEXTS:
        p = policy.probabilities(ctx, acts)
        assert p.dtype == np.float64
        assert p.shape == (len(acts),)
        assert np.all(p >= 0)
        assert abs(float(np.sum(p)) - 1.0) < 1e-9
        # a subset of the actions gets a vector over that subset only
        sub = acts[: max(1, len(acts) // 2)]
        q = policy.probabilities(ctx, sub)
        assert q.shape == (len(sub),)
        assert abs(float(np.sum(q)) - 1.0) < 1e-9


def test_propensity_is_the_served_probability_of_the_sampled_action(policy: Policy) -> None:
    for k, (ctx, acts) in enumerate(CONTEXTS):
        for j in range(20):
            d = policy.decide(ctx, acts, f"ev-{k}-{j}")
            assert 0 <= d.chosen_index < len(acts)
            assert d.propensity == d.probabilities[d.chosen_index]
            assert d.propensity > 0
            np.testing.assert_array_equal(d.probabilities, policy.probabilities(ctx, acts))


def test_same_seed_and_event_id_give_the_same_choice(policy: Policy) -> None:
    twin = make_policy(type(policy), seed=7)
    for k, (ctx, acts) in enumerate(CONTEXTS):
        for j in range(20):
            ev = f"ev-{k}-{j}"
            a = policy.decide(ctx, acts, ev)
            b = policy.decide(ctx, acts, ev)
            c = twin.decide(ctx, acts, ev)
            assert a.chosen_index == b.chosen_index == c.chosen_index
            np.testing.assert_array_equal(a.probabilities, c.probabilities)


def test_save_then_load_gives_the_same_probabilities(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "saved-policy"
    policy.save(path)
    loaded = type(policy).load(path)  # type: ignore[attr-defined]
    assert type(loaded) is type(policy)
    for ctx, acts in CONTEXTS:
        np.testing.assert_allclose(
            loaded.probabilities(ctx, acts), policy.probabilities(ctx, acts), rtol=0, atol=1e-12
        )


def test_learning_does_not_mutate_its_inputs(policy: Policy) -> None:
    for ctx, acts in CONTEXTS:
        before_ctx = ctx.to_json()
        acts_list = list(acts)
        before_acts = copy.deepcopy(acts_list)
        d = policy.decide(ctx, acts_list, "mutation-check")
        policy.learn(ctx, acts_list, d.chosen_index, 0.5, d.propensity)
        assert ctx.to_json() == before_ctx
        assert acts_list == before_acts


def test_sampled_frequencies_match_the_probabilities(policy: Policy) -> None:
    ctx, acts = CONTEXTS[0]
    p = policy.probabilities(ctx, acts)
    n = 4000
    counts = np.zeros(len(acts))
    for j in range(n):
        counts[policy.decide(ctx, acts, f"chi-{j}").chosen_index] += 1
    assert counts[p == 0].sum() == 0, "sampled an action with probability 0"
    keep = p > 0
    expected = p[keep] * n
    # pool cells with small expected counts so the chi-square approximation holds
    order = np.argsort(expected)
    exp_s, obs_s = expected[order], counts[keep][order]
    cells_e, cells_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp_s, obs_s, strict=True):
        acc_e += e
        acc_o += o
        if acc_e >= 5:
            cells_e.append(acc_e)
            cells_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e > 0:
        if cells_e:
            cells_e[-1] += acc_e
            cells_o[-1] += acc_o
        else:
            cells_e.append(acc_e)
            cells_o.append(acc_o)
    if len(cells_e) < 2:
        assert counts[keep].sum() == n
        return
    res = stats.chisquare(cells_o, cells_e)
    assert res.pvalue > 1e-3, f"chi-square p={res.pvalue:.2e} counts={counts} p={p}"


def test_params_name_the_policy(policy: Policy) -> None:
    params = policy.params
    assert params["policy"] == policy.name
    assert isinstance(policy.model_version, str) and policy.model_version
