"""Journeys in the event store: the decisions' journey column, the HCP's journey
history, the versions and the worker's copy, and ``nba journeys``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from nba.domain import Decision, Outcome
from nba.journeys import DECISION, JourneysError, schema_path
from nba.logs import io as logio
from nba_cli.main import main as cli
from serving import journeys as lib
from serving import store_rules
from serving.rules import RulesChangeError
from serving.store import EventStore

T0 = datetime(2026, 3, 2, 17, tzinfo=UTC)
TOPICS = ("efficacy", "safety")


def _decision(eid: str, ts: datetime, action: str, journey: str | None = None) -> Decision:
    return Decision(
        eid,
        ts,
        "h1",
        "app",
        (action.split("@")[1],),
        "{}",
        "c",
        (action,),
        (1.0,),
        0,
        action,
        1.0,
        "uniform",
        "m1",
        journey=journey,
    )


def test_the_journey_of_a_decision_is_stored_read_and_exported(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    with EventStore(store_at("e.db")) as store:
        store.add_decisions(
            [
                _decision("E1", T0, "VEL-EFF-05@webinar"),
                _decision("E2", T0 + timedelta(days=2), "VEL-EFF-02@email", "w/1"),
            ]
        )
        assert store.get_decision("E1").journey is None  # type: ignore[union-attr]
        assert store.get_decision("E2").journey == "w/1"  # type: ignore[union-attr]
        store.export(tmp_path / "logs")
    col = logio.read(tmp_path / "logs", "decisions").column("journey").to_pylist()
    assert col == [None, "w/1"]


def test_a_store_file_without_the_column_gains_it_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    EventStore(db).close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE decisions DROP COLUMN journey")
    con.commit()
    con.close()
    with EventStore(db) as store:
        store.add_decision(_decision("E1", T0, "VEL-EFF-02@email", "w/1"))
        assert store.get_decision("E1").journey == "w/1"  # type: ignore[union-attr]


def test_journey_events_are_activated_decisions_and_the_outcomes_on_them(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    topic_of = {"VEL-EFF-05": "efficacy", "VEL-EFF-02": "efficacy"}
    with EventStore(store_at("e.db")) as store:
        store.add_decision(_decision("E1", T0, "VEL-EFF-05@webinar"))
        store.add_outcome(Outcome("E1", T0 + timedelta(hours=1), "attended"))
        store.add_decision(_decision("E3", T0 + timedelta(days=1), "VEL-EFF-02@email"))
        # a deferred decision never activated did not reach the HCP
        deferred = _decision("E4", T0 + timedelta(days=2), "VEL-EFF-02@email")
        store.add_decision(replace(deferred, activated=False), deferred=True)
        events = lib.journey_events(
            store, "h1", T0 - timedelta(days=1), T0 + timedelta(days=5), topic_of
        )
    got = sorted((e.ts, e.kind, e.channel, e.topic) for e in events)
    assert got == [
        (T0, DECISION, "webinar", "efficacy"),
        (T0 + timedelta(hours=1), "attended", "webinar", "efficacy"),
        (T0 + timedelta(days=1), DECISION, "email", "efficacy"),
    ]


def test_versions_apply_refuse_and_roll_back(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    text = schema_path().parent.joinpath("journeys.toml").read_text()
    with EventStore(store_at("e.db")) as store:
        keeper = lib.JourneysKeeper(store, (*TOPICS, "dosing"), check_ms=0)
        assert not keeper.current() and keeper.snapshot()[0] is None
        lib.seed(store, text, "start", "seed", TOPICS)
        assert [j.name for j in keeper.current().journeys] == [
            "webinar-followup",
            "safety-nurture",
        ]
        line = 1 + text.splitlines().index("after_days = [2, 5]")
        with pytest.raises(JourneysError, match=rf"line {line}: key 'journeys\.0\.steps\.0\."):
            lib.apply(
                store,
                text.replace("after_days = [2, 5]", "after_days = [-1, 5]"),
                who="me",
                comment="x",
                topics=TOPICS,
            )
        assert store_rules.head(store, table=lib.TABLE) == 1
        with pytest.raises(RulesChangeError, match="a comment is required"):
            lib.apply(store, text, who="me", comment=" ", topics=TOPICS)
        with pytest.raises(RulesChangeError, match="same journeys as version 1"):
            lib.apply(store, text, who="me", comment="again", topics=TOPICS)
        stored, _ = lib.apply(
            store,
            text.replace("priority = 20", "priority = 1"),
            who="me",
            comment="lower",
            topics=TOPICS,
        )
        assert stored.version == 2 and "+priority = 1" in stored.diff
        assert [j.name for j in keeper.current().journeys] == [
            "safety-nurture",
            "webinar-followup",
        ]
        back, _ = lib.rollback(store, 1, who="me", comment="undo", topics=TOPICS)
        assert back.version == 3 and back.text == text
        assert [v.action for v in lib.history(store)] == ["rollback", "apply", "seed"]
        # the contact rules' versions are a table of their own
        assert store_rules.head(store) == 0
        # a stored text a worker cannot read (a topic its catalog lacks) is refused,
        # and the worker keeps the journeys it has
        narrow = lib.JourneysKeeper(store, ("efficacy",), check_ms=0)
        assert not narrow.current()


def test_the_cli_validates_prints_the_schema_and_changes_versions(tmp_path: Path) -> None:
    runner = CliRunner()
    text = schema_path().parent.joinpath("journeys.toml").read_text()
    good, bad = tmp_path / "j.toml", tmp_path / "bad.toml"
    good.write_text(text)
    bad.write_text(text.replace('topic = "same"', 'topic = "sam"', 1))
    res = runner.invoke(cli, ["journeys", "schema"])
    assert res.exit_code == 0 and json.loads(res.output) == json.loads(schema_path().read_text())
    res = runner.invoke(cli, ["journeys", "validate", str(good)])
    assert res.exit_code == 0 and "2 journeys" in res.output
    res = runner.invoke(cli, ["journeys", "validate", str(bad)])
    assert res.exit_code == 1
    line = 1 + text.splitlines().index('topic = "same"')
    assert f"{bad}, line {line}: key 'journeys.0.steps.0.topic'" in res.output
    db = tmp_path / "e.db"
    EventStore(db).close()
    res = runner.invoke(cli, ["journeys", "apply", str(bad), "--comment", "x", "--store", str(db)])
    assert res.exit_code == 1 and f"line {line}" in res.output
    res = runner.invoke(cli, ["journeys", "show", "--store", str(db)])
    assert res.exit_code == 1 and "no journeys version is stored yet" in res.output
    res = runner.invoke(
        cli, ["journeys", "apply", str(good), "--comment", "go", "--store", str(db), "--who", "m"]
    )
    assert res.exit_code == 0 and "journeys version 1" in res.output, res.output
    res = runner.invoke(cli, ["journeys", "show", "--store", str(db)])
    assert res.output == text
    res = runner.invoke(cli, ["journeys", "history", "--store", str(db)])
    assert "\tm\tapply\t" in res.output and res.output.rstrip().endswith("go")
