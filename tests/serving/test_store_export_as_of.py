"""A store export records its time as the log's ``as_of``; a later join of the
exported directory uses it, so decisions whose window was open at export are
left out, not taken as final."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from nba.catalog import Catalog
from nba.domain import Outcome
from nba.logs.join import format_as_of, load_joined, manifest_as_of
from nba.reward import RewardDefinition
from nba_cli.main import main
from serving.store import EventStore

from .test_store_export import dec

RD = RewardDefinition.default()


def _store(path: Path) -> tuple[EventStore, datetime]:
    """Two old decisions (windows closed) and two from the last day (open)."""
    store = EventStore(path)
    cat = Catalog.default()
    store.add_catalog(cat)
    now = datetime.now(UTC)
    times = [now - timedelta(days=40), now - timedelta(days=30), now - timedelta(hours=20)]
    times.append(now - timedelta(hours=2))
    for i, ts in enumerate(times):
        store.add_decision(dec(i, ts, cat.version))
        store.add_outcome(Outcome(f"E{i:03d}", ts + timedelta(hours=1), "opened", source_id="m"))
    return store, now


def test_export_records_its_time_and_the_join_uses_it(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store, _ = _store(store_at())
    before = datetime.now(UTC)
    store.export(tmp_path / "log")
    after = datetime.now(UTC)
    manifest = json.loads((tmp_path / "log" / "manifest.json").read_text())
    assert manifest["writer"] == "serving.store"
    assert manifest["as_of_basis"] == "store export time"
    as_of = manifest_as_of(tmp_path / "log")
    assert as_of is not None and before <= as_of <= after
    res = load_joined(tmp_path / "log", RD)
    assert res.as_of == as_of
    assert res.as_of_basis == "store export time, from manifest.json"
    assert res.table.column("event_id").to_pylist() == ["E000", "E001"]
    assert res.counts.open_window_decisions == 2
    assert res.counts.open_window_outcomes == 2
    # the latest outcome (an hour before export) would have been a different horizon
    assert res.as_of > datetime.now(UTC) - timedelta(minutes=5)


def test_exporting_again_keeps_the_earlier_time(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    store, _ = _store(store_at())
    out = tmp_path / "log"
    store.export(out, until=datetime.now(UTC) - timedelta(days=35))
    first = manifest_as_of(out)
    store.export(out, since=datetime.now(UTC) - timedelta(days=35))
    assert manifest_as_of(out) == first


def test_cli_prints_the_export_time_and_uses_it(
    tmp_path: Path, store_at: Callable[..., str | Path]
) -> None:
    _store(store_at())
    runner = CliRunner()
    res = runner.invoke(
        main,
        ["logs", "export", "--store", str(store_at()), "--out", str(tmp_path / "l")],
    )
    assert res.exit_code == 0, res.output
    as_of = manifest_as_of(tmp_path / "l")
    assert as_of is not None
    assert f"as_of {format_as_of(as_of)} (store export time, in manifest.json)" in res.output
    out = tmp_path / "joined.parquet"
    args = ["logs", "export", "--store", str(store_at()), "--format", "parquet"]
    res = runner.invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "(store export time, from manifest.json)" in res.output
    assert "2 decisions with open reward windows left out (as of " in res.output
    assert "wrote 2 decisions (parquet)" in res.output


def test_format_log_takes_no_as_of(tmp_path: Path, store_at: Callable[..., str | Path]) -> None:
    _store(store_at())
    args = ["logs", "export", "--store", str(store_at()), "--out", str(tmp_path / "l")]
    res = CliRunner().invoke(main, [*args, "--as-of", "2026-01-01"])
    assert res.exit_code == 2
    assert "--as-of does not apply to --format log: the export records its own time" in res.output
    assert not (tmp_path / "l").exists()
