"""``nba logs export --store DB``: the service's store as a source of the event log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.domain import Decision, HCPProfile, Outcome, Touch
from nba.logs import io as logio
from nba.logs.schema import DECISIONS
from nba_cli.main import main
from serving.store import EventStore

T0 = datetime(2026, 4, 1, 10, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    store = EventStore(path)
    cat = Catalog.default()
    store.add_catalog(cat)
    ids = ("VEL-EFF-02@email", "VEL-EFF-04@email")
    for i in range(6):
        d = Decision(
            f"E{i}",
            T0 + timedelta(days=i),
            "h1",
            "email_platform",
            ("email",),
            json.dumps({"v": 1}),
            cat.version,
            ids,
            (0.5, 0.5),
            i % 2,
            ids[i % 2],
            0.5,
            "uniform",
            "none",
            activated=i != 5,
        )
        store.add_decision(d, deferred=i == 5)
        store.add_outcome(Outcome(d.event_id, d.ts + timedelta(hours=2), "clicked"))
    store.add_touch(Touch("h1", T0, "email", "VEL-EFF-02"))
    return path


def test_export_store_as_event_log(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "log"
    res = CliRunner().invoke(main, ["logs", "export", "--store", str(db), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "decisions: 6" in res.output and "outcomes: 6" in res.output
    table = logio.read(out, "decisions")
    assert table.schema.equals(DECISIONS) and table.num_rows == 6
    ranged = tmp_path / "ranged"
    res = CliRunner().invoke(
        main,
        [
            "logs",
            "export",
            "--store",
            str(db),
            "--format",
            "log",
            "--out",
            str(ranged),
            "--since",
            "2026-04-02",
            "--until",
            "2026-04-03",
        ],
    )
    assert res.exit_code == 0, res.output
    assert sorted(logio.read(ranged, "decisions").column("event_id").to_pylist()) == ["E1", "E2"]


def test_export_store_joined(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "joined.parquet"
    res = CliRunner().invoke(
        main, ["logs", "export", "--store", str(db), "--format", "parquet", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    joined = pq.read_table(out)
    assert joined.num_rows == 5  # the deferred, never activated decision is left out
    assert set(joined.column("reward").to_pylist()) == {0.6}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--store", "{missing}", "--out", "{out}"], "no event store database"),
        (["--format", "log", "--out", "{out}"], "--format log exports an event store"),
        (
            ["--store", "{db}", "--logs", "{out}", "--format", "parquet", "--out", "{f}"],
            "either --logs DIR or --store DB",
        ),
        (["--out", "{f}"], "missing option --format"),
    ],
)
def test_export_store_bad_usage(db: Path, tmp_path: Path, args: list[str], match: str) -> None:
    values = {
        "missing": str(tmp_path / "nope.db"),
        "out": str(tmp_path / "o"),
        "db": str(db),
        "f": str(tmp_path / "f.parquet"),
    }
    res = CliRunner().invoke(main, ["logs", "export", *[a.format(**values) for a in args]])
    assert res.exit_code != 0
    assert match in res.output


# ------------------------------------------------------------ nba touches import
def test_touches_import_cli(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with EventStore(db) as s:
        s.upsert_hcp(HCPProfile("H1", "cardiology", 7, "US", "aware", frozenset({"email"})))
    good = tmp_path / "clm.csv"
    good.write_text(
        "hcp_id,ts,channel,content_id,kind,topics,dwell_s\n"
        "H1,2026-02-03T10:00:00Z,rep_visit,VEL-EFF-01,detail_pull,dosing;safety,120\n"
        "H1,2026-02-04T08:00:00+01:00,email,VEL-EFF-02,,,\n"
    )
    res = CliRunner().invoke(main, ["touches", "import", str(good), "--store", str(db)])
    assert res.exit_code == 0, res.output
    assert "imported 2 touches" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + "H9,2026-02-05T10:00:00Z,email,VEL-EFF-02,,,\n")
    res = CliRunner().invoke(main, ["touches", "import", str(bad), "--store", str(db)])
    assert res.exit_code == 1
    assert "row 3: its HCP is not in the store; nothing was stored" in res.output
    bad.write_text(good.read_text().replace("detail_pull", "detail_push"))
    res = CliRunner().invoke(main, ["touches", "import", str(bad), "--store", str(db)])
    assert res.exit_code == 1 and "row 1: column 'kind': 'detail_push' is not one of" in res.output
    res = CliRunner().invoke(
        main, ["touches", "import", str(good), "--store", str(tmp_path / "none.db")]
    )
    assert res.exit_code == 2 and "no event store database" in res.output
    with EventStore(db) as s:
        got = s.recent_touches("H1", datetime(2026, 1, 1, tzinfo=UTC))
    assert [(t.kind, t.topics, t.dwell_s) for t in got] == [
        ("detail_pull", ("dosing", "safety"), 120.0),
        ("contact", (), None),
    ]
