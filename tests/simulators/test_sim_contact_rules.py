"""The simulator applies the contact rules (nba.contact) the way serving does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nba.contact import ContactPolicy, RulesError
from nba.logs import io as logio
from nba_cli.main import main
from simulators.hcp.world import World, simulate

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def ruled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ruled") / "logs"
    summary = simulate(hcps=300, days=45, policy="campaign", seed=5, out=out, rules="default")
    return out, summary


def _logs(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    dec = logio.read(out, "decisions").to_pandas()
    tch = logio.read(out, "touches").to_pandas()
    # the rules count contacts; what the HCP pulled (portal views, ...) is no contact
    return dec, tch[tch["kind"] == "contact"]


def _offered(dec: pd.DataFrame) -> pd.DataFrame:
    """One row per offered action: decision hcp/ts, channel and content of the action."""
    rows = dec[["event_id", "hcp_id", "ts", "action_ids"]].explode("action_ids")
    split = rows["action_ids"].str.split("@", expand=True)
    return rows.assign(content_id=split[0], channel=split[1])


def _earlier(offered: pd.DataFrame, tch: pd.DataFrame) -> pd.DataFrame:
    """Each offered action joined with the HCP's touches strictly before the decision."""
    t = tch.rename(columns={"ts": "t_ts", "channel": "t_channel", "content_id": "t_content"})
    m = offered.merge(t[["hcp_id", "t_ts", "t_channel", "t_content"]], on="hcp_id")
    m = m[m["t_ts"] < m["ts"]]
    return m.assign(age=(m["ts"] - m["t_ts"]) / DAY)


def test_no_offered_action_breaks_a_cap_min_gap_or_repeat(ruled_run):
    out, _ = ruled_run
    dec, tch = _logs(out)
    pol = ContactPolicy.default()
    offered = _offered(dec)
    m = _earlier(offered, tch)
    assert len(offered) > 1000 and len(m) > 1000  # enough history to test against
    gap = m[m["age"] < pol.min_gap_days]
    assert gap.empty, gap.head()
    rep = m[(m["t_content"] == m["content_id"]) & (m["age"] < pol.repeat_days)]
    assert rep.empty, rep.head()
    for cap in pol.frequency_caps:
        hit = m[(m["channel"] == cap.channel) & (m["t_channel"] == cap.channel)]
        hit = hit[hit["age"] < cap.days]
        n = hit.groupby(["event_id", "action_ids"]).size()
        assert (n < cap.max).all(), (cap.rule, n[n >= cap.max].head())


def test_executed_touches_keep_the_caps_when_recomputed_from_touches(ruled_run):
    out, _ = ruled_run
    _, tch = _logs(out)
    pol = ContactPolicy.default()
    tch = tch.sort_values(["hcp_id", "ts"])
    prev_gap = tch.groupby("hcp_id")["ts"].diff() / DAY
    assert (prev_gap.dropna() >= pol.min_gap_days).all()
    same = tch.merge(tch, on="hcp_id", suffixes=("", "_p"))
    same = same[same["ts_p"] < same["ts"]].assign(age=lambda x: (x["ts"] - x["ts_p"]) / DAY)
    rep = same[(same["content_id"] == same["content_id_p"]) & (same["age"] < pol.repeat_days)]
    assert rep.empty
    for cap in pol.frequency_caps:
        on = same[(same["channel"] == cap.channel) & (same["channel_p"] == cap.channel)]
        n = on[on["age"] < cap.days].groupby(["hcp_id", "ts"]).size()
        # n touches before this one inside the window: the cap allowed it only below max
        assert (n < cap.max).all(), cap.rule


def test_suppressed_entries_name_rules_and_are_not_offered(ruled_run):
    out, summary = ruled_run
    dec, _ = _logs(out)
    names = set(ContactPolicy.default().rule_names)
    supp = dec[["event_id", "action_ids", "suppressed"]].explode("suppressed").dropna()
    assert len(supp) > 100
    rules = supp["suppressed"].map(lambda s: s["rule"])
    assert set(rules) <= names
    assert "repeat" in set(rules)
    # min_gap removes every action of a decision, so it shows only among the skipped
    assert "min_gap" not in set(rules) and summary.skipped_by_rule["min_gap"] > 0
    clash = supp.apply(lambda r: r["suppressed"]["action_id"] in set(r["action_ids"]), axis=1)
    assert not clash.any()
    # every suppression logged is counted in the summary (skipped decisions add more)
    counts = rules.value_counts().to_dict()
    for rule, c in counts.items():
        assert summary.suppressed_by_rule[rule] >= c
    assert summary.rules == ContactPolicy.default().version
    assert sum(summary.skipped_by_rule.values()) >= summary.skipped > 0


def test_probabilities_are_over_the_allowed_set_only(ruled_run):
    out, _ = ruled_run
    dec, _ = _logs(out)
    sums = dec["probabilities"].map(np.sum)
    assert np.allclose(sums, 1.0)
    assert (dec["action_ids"].map(len) == dec["probabilities"].map(len)).all()
    assert dec.apply(lambda r: r["chosen_action_id"] in set(r["action_ids"]), axis=1).all()


def test_without_rules_nothing_is_suppressed_and_summary_is_unchanged():
    a = simulate(hcps=120, days=10, policy="uniform", seed=2)
    b = simulate(hcps=120, days=10, policy="uniform", seed=2, rules=None)
    assert a == b
    assert "rules" not in a.to_dict() and "suppressed_by_rule" not in a.to_dict()
    c = simulate(hcps=120, days=10, policy="uniform", seed=2, rules="default")
    assert c.decisions < a.decisions


def test_rules_run_is_deterministic():
    runs = [
        simulate(hcps=150, days=12, policy="campaign", seed=9, rules="default") for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_a_policy_object_is_required():
    with pytest.raises(Exception, match="rules must be a ContactPolicy, got str"):
        World(10, rules="default")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[repeat]\ndays = -1\n", r"bad\.toml, line 2: rule 'repeat'"),
        ("[[frequency_caps]]\nchannel = 'fax'\nmax = 1\ndays = 7\n", "unknown channel 'fax'"),
        ("this is = = not toml", r"bad\.toml, line 1: not valid TOML"),
    ],
)
def test_simulate_with_a_bad_rules_file_names_the_file(tmp_path, text, match):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(RulesError, match=match):
        simulate(hcps=10, days=1, rules=bad)


def test_cli_rules_flag(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[min_gap]\nhours = 'soon'\n")
    out = str(tmp_path / "logs")
    base = ["simulate", "--quiet", "--hcps", "20", "--days", "2", "--out", out]
    res = runner.invoke(main, [*base, "--rules", str(bad)])
    assert res.exit_code != 0
    assert "bad.toml" in res.output and "min_gap" in res.output
    missing = tmp_path / "missing.toml"
    res = runner.invoke(main, [*base, "--rules", str(missing)])
    assert res.exit_code != 0 and "missing.toml" in res.output
    res = runner.invoke(main, [*base, "--seed", "1", "--rules", "default"])
    assert res.exit_code == 0, res.output
    assert "contact rules" in res.output


def test_offered_plus_suppressed_is_every_action_on_the_requested_channels(ruled_run):
    out, _ = ruled_run
    dec, _ = _logs(out)
    from nba.catalog import Catalog

    actions = Catalog.default().actions
    for row in dec.head(400).itertuples():
        requested = {a.action_id for a in actions if a.channel in set(row.channels_requested)}
        removed = [s["action_id"] for s in row.suppressed]
        assert sorted([*row.action_ids, *removed]) == sorted(requested)


def test_holdout_hcps_get_the_uniform_baseline_marked_as_serving_marks_it(ruled_run):
    from serving.engine import HOLDOUT_PREFIX
    from serving.lifecycle import BASELINE_POLICY
    from simulators.hcp import world

    assert world.HOLDOUT_PREFIX == HOLDOUT_PREFIX and world.HOLDOUT_BASELINE == BASELINE_POLICY
    out, summary = ruled_run
    dec, _ = _logs(out)
    pol = ContactPolicy.default()
    in_holdout = dec["hcp_id"].map(pol.is_holdout)
    assert 0 < in_holdout.sum() == summary.holdout_decisions < 0.15 * len(dec)
    held = dec[in_holdout]
    assert (held["policy"] == "uniform").all()
    assert (held["model_version"] == "holdout:baseline:uniform").all()
    assert held.apply(
        lambda r: np.allclose(r["probabilities"], 1 / len(r["action_ids"])), axis=1
    ).all()
    rest = dec[~in_holdout]
    assert (rest["policy"] == "campaign").all()
    assert not rest["model_version"].str.startswith(HOLDOUT_PREFIX).any()


def test_a_learning_policy_runs_with_rules_and_holdout(tmp_path):
    from simulators.hcp.learning import VWBatchPolicy

    learner = VWBatchPolicy.from_spec("vw", seed=1)
    try:
        s = simulate(hcps=200, days=12, policy=learner, seed=1, rules="default", out=tmp_path / "l")
    finally:
        learner.close()
    dec = logio.read(tmp_path / "l", "decisions").to_pandas()
    assert s.decisions == len(dec) and s.holdout_decisions > 0
    assert set(dec["policy"]) == {"uniform", learner.name}


MARKET_RULES = """\
[[frequency_caps]]
channel = "email"
max = 3
days = 14

[markets.DE]
allowed_channels = ["rep_visit", "remote_call", "webinar", "portal"]

[[markets.FR.frequency_caps]]
channel = "email"
max = 1
days = 14
"""


def test_per_market_rules_apply_in_the_simulator(tmp_path: Path) -> None:
    pol = ContactPolicy.loads(MARKET_RULES, source="markets.toml")
    out = tmp_path / "logs"
    simulate(hcps=300, days=40, policy="campaign", seed=11, out=out, rules=pol)
    dec, tch = _logs(out)
    market = dec["context"].map(lambda c: json.loads(c)["hcp"]["market"])
    offered = _offered(dec.assign(market=market)).merge(
        dec.assign(market=market)[["event_id", "market"]], on="event_id"
    )
    by_market = offered.groupby("market")["channel"].apply(set)
    assert "email" not in by_market["DE"] and "email" in by_market["US"]
    # DE email actions were removed by the market's channel rule, and logged as such
    supp = dec.assign(market=market).explode("suppressed").dropna(subset=["suppressed"])
    rules_de = {s["rule"] for s in supp[supp["market"] == "DE"]["suppressed"]}
    assert "market_channel" in rules_de
    rules_other = {s["rule"] for s in supp[supp["market"] != "DE"]["suppressed"]}
    assert "market_channel" not in rules_other
    # each market's email cap holds on the executed emails, recomputed from the touches
    hcp_market = dict(zip(dec["hcp_id"], market, strict=True))
    email = tch[tch["channel"] == "email"].assign(market=lambda t: t["hcp_id"].map(hcp_market))
    same = email.merge(email, on=["hcp_id", "market"], suffixes=("", "_p"))
    same = same[(same["ts_p"] < same["ts"]) & ((same["ts"] - same["ts_p"]) / DAY < 14)]
    earlier = same.groupby(["hcp_id", "market", "ts"]).size().reset_index(name="n")
    assert len(email[email["market"] == "FR"]) > 20 and len(earlier) > 20
    fr = earlier[earlier["market"] == "FR"]
    assert fr.empty, fr.head()  # FR: at most 1 email in 14 days
    rest = earlier[earlier["market"] != "FR"]
    assert (rest["n"] < 3).all() and (rest["n"] >= 1).any()
    # the manifest and every decision name the rules version (covering the market
    # sections), and each decision whose market's rule set applied, as serving does
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["contact_rules"]["version"] == pol.version
    assert set(dec["rules_version"]) == {pol.version}
    expected = market.where(market.isin(["DE", "FR"]), "global")
    assert (dec["rules_market"] == expected).all() and set(expected) >= {"DE", "FR", "global"}


def test_runs_without_rules_log_no_rules_version(tmp_path: Path) -> None:
    out = tmp_path / "logs"
    simulate(hcps=30, days=2, policy="uniform", seed=1, out=out)
    dec = logio.read(out, "decisions").to_pandas()
    assert dec["rules_version"].isna().all() and dec["rules_market"].isna().all()
