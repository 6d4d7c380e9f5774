"""Journeys in the simulator: the follow-ups logged fall in the window the journey
names, on the entry's topic, and nothing goes out on a held channel before it.

The checks re-derive everything from the written logs (decisions, outcomes, the
catalog), not from :mod:`nba.journeys`, so they would catch the simulator
applying the journeys wrongly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.journeys import JourneySet
from nba.logs import io as logio
from nba_cli.main import main as cli
from simulators.hcp.world import SimulationError, World

JOURNEYS = """\
name = "sim-test"

[[journeys]]
name = "reg-followup"
priority = 10

[journeys.entry]
event = "registered"
channels = ["webinar"]

[journeys.exit]
events = ["unsubscribed"]
max_days = 20

[[journeys.steps]]
name = "follow-up email"
channels = ["email"]
topic = "same"
after_days = [2, 5]
hold = true
"""
LABEL = "reg-followup/1"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("journeys")
    (tmp / "journeys.toml").write_text(JOURNEYS)
    out = tmp / "logs"
    res = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--hcps",
            "600",
            "--days",
            "28",
            "--policy",
            "uniform",
            "--seed",
            "11",
            "--rules",
            "default",
            "--journeys",
            str(tmp / "journeys.toml"),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "journey:reg-followup/1" in res.output
    (tmp / "summary.txt").write_text(res.output)
    return out


def _entries(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    dec = logio.read(out, "decisions").to_pandas()
    outc = logio.read(out, "outcomes").to_pandas()
    topic = {it.id: it.topic for it in Catalog.default().items}
    dec["channel"] = dec["chosen_action_id"].str.split("@").str[1]
    dec["topic"] = dec["chosen_action_id"].str.split("@").str[0].map(topic)
    reg = outc[outc["type"] == "registered"].merge(
        dec[["event_id", "hcp_id", "channel", "topic"]], on="event_id"
    )
    reg = reg[reg["channel"] == "webinar"].sort_values("ts")
    return dec, reg


def test_every_logged_followup_is_in_its_window_on_the_entrys_topic(run: Path) -> None:
    dec, reg = _entries(run)
    follow = dec[dec["journey"] == LABEL]
    assert len(follow) >= 5, "too few follow-ups to check anything"
    assert set(dec["journey"].dropna()) == {LABEL}
    for _, row in follow.iterrows():
        assert row["channel"] == "email"
        earlier = reg[(reg["hcp_id"] == row["hcp_id"]) & (reg["ts"] < row["ts"])]
        assert len(earlier), f"{row['event_id']}: a follow-up without an entry"
        days = (row["ts"].date() - earlier["ts"].dt.date).map(lambda d: d.days)
        ok = earlier[(days >= 2) & (days <= 5) & (earlier["topic"] == row["topic"])]
        assert len(ok), f"{row['event_id']}: not 2-5 days after a registration on its topic"
        # the logged probabilities are over what the step allowed: same-topic emails only
        topics = {a.split("@")[0] for a in row["action_ids"]}
        assert {Catalog.default().by_id[c].topic for c in topics} == {row["topic"]}


def test_first_entries_get_the_followup_when_an_email_goes_out_and_none_before(
    run: Path,
) -> None:
    dec, reg = _entries(run)
    first = reg.groupby("hcp_id").head(1)
    emails = dec[dec["channel"] == "email"]
    checked = followed = 0
    for _, e in first.iterrows():
        mine = emails[(emails["hcp_id"] == e["hcp_id"]) & (emails["ts"] > e["ts"])]
        day = (mine["ts"].dt.date - e["ts"].date()).map(lambda d: d.days)
        # held: no email between the registration and the window's first day
        assert not (day < 2).any(), f"{e['hcp_id']}: an email before the window opened"
        in_window = mine[(day >= 2) & (day <= 5)]
        if in_window.empty:
            continue
        checked += 1
        nxt = in_window.iloc[0]
        if nxt["journey"] == LABEL:
            followed += 1
            assert nxt["topic"] == e["topic"]
        else:
            # only when the contact rules left no email on the entry's topic
            supp = {s["action_id"] for s in nxt["suppressed"] if not s["rule"].startswith("j")}
            same = [
                a.action_id
                for a in Catalog.default().actions
                if a.channel == "email"
                and Catalog.default().by_id[a.content_id].topic == e["topic"]
            ]
            assert set(same) <= supp, f"{nxt['event_id']}: the step allowed an email, not used"
    assert checked >= 5 and followed >= 5


def test_journeys_suppressions_are_logged_with_their_step(run: Path) -> None:
    dec, _ = _entries(run)
    rules = {s["rule"] for lst in dec["suppressed"] for s in lst if s["rule"].startswith("journey")}
    assert "journey:reg-followup/1" in rules
    assert rules <= {"journey:reg-followup/1", "journey_hold:reg-followup/1"}
    # an email-only request during the hold has nothing left and is skipped; the
    # summary counts its suppressions by rule
    summary = (run.parent / "summary.txt").read_text()
    assert "journey_hold:reg-followup/1" in summary.split("skipped decisions by rule")[1]


def test_the_same_seed_gives_the_same_journeys(tmp_path: Path) -> None:
    js = JourneySet.loads(JOURNEYS)
    from nba.contact import ContactPolicy

    def once(out: Path) -> pd.DataFrame:
        World(200, seed=3, rules=ContactPolicy.default(), journeys=js).run(
            14, policy="uniform", out=out
        )
        return logio.read(out, "decisions").to_pandas()[["event_id", "journey", "chosen_action_id"]]

    a, b = once(tmp_path / "a"), once(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)


def test_without_journeys_the_decisions_are_those_of_a_run_without(tmp_path: Path) -> None:
    from nba.contact import ContactPolicy

    World(150, seed=5, rules=ContactPolicy.default()).run(10, policy="uniform", out=tmp_path / "a")
    World(150, seed=5, rules=ContactPolicy.default(), journeys=JourneySet.empty()).run(
        10, policy="uniform", out=tmp_path / "b"
    )
    a = logio.read(tmp_path / "a", "decisions").to_pandas()
    b = logio.read(tmp_path / "b", "decisions").to_pandas()
    pd.testing.assert_frame_equal(a, b)
    assert a["journey"].isna().all()


def test_journeys_need_the_contact_rules(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="journeys apply after the contact rules"):
        World(10, journeys=JourneySet.default())
    res = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--hcps",
            "10",
            "--days",
            "1",
            "--journeys",
            "default",
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ],
    )
    assert res.exit_code != 0 and "add --rules default" in res.output


def test_a_bad_journeys_file_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(JOURNEYS.replace("after_days = [2, 5]", "after_days = [2]"))
    res = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--hcps",
            "10",
            "--days",
            "1",
            "--rules",
            "default",
            "--journeys",
            str(bad),
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ],
    )
    assert res.exit_code != 0
    assert "line 19: key 'journeys.0.steps.0.after_days'" in res.output
    assert not (tmp_path / "x").exists()
