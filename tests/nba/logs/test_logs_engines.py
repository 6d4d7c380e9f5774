"""The log pipeline on DuckDB and on Spark SQL from one SQL source: identical results.

Fast tests check the transpiling and the engine options (bad values, a missing
pyspark or Java). Slow ones run the Spark engine (``spark_engine``, one
``local[2]`` session for the whole test session) against DuckDB on the same
logs: joined rewards and counts, DSJSON lines, the OPE arrays, the Parquet
timestamps as each engine reads them, and VW learning the file the Spark path wrote.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import vowpalwabbit
from click.testing import CliRunner

from nba.logs import io
from nba.logs.dsjson import iter_dsjson, load_catalogs, window_pulls
from nba.logs.engine import (
    DuckDBEngine,
    EngineError,
    SparkEngine,
    get_engine,
    spark_missing,
    to_spark_sql,
)
from nba.logs.join import COUNTS_SQL, JOIN_SQL, OpenWindows, join_rewards, load_joined
from nba.logs.schema import DECISIONS
from nba.ope.logs import LoggedLog
from nba.reward import RewardDefinition
from nba_cli.main import main as nba

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the factories' first decision

# ------------------------------------------------------------------ fast


def test_to_spark_sql_binds_parameters_renames_tables_and_keeps_null_order() -> None:
    sql = to_spark_sql(
        JOIN_SQL.format(reward="ROUND(agg.s, 12)"),
        {"window_us": 86_400_000_000, "default_reward": 0.1},
        {"decisions": "v_d", "outcomes": "v_o", "weights": "v_w"},
    )
    assert "$" not in sql
    assert "86400000000" in sql and "CAST(0.1 AS DOUBLE)" in sql
    assert "FROM v_o AS outcomes" in sql and "JOIN v_d AS d" in sql and "v_w AS w" in sql
    # DuckDB sorts nulls last, Spark first: the Spark text must say so
    assert "ORDER BY ts_us NULLS LAST, value NULLS LAST" in sql


def test_to_spark_sql_refuses_a_missing_parameter_and_bad_values() -> None:
    with pytest.raises(EngineError, match=r"\$window_us has no value"):
        to_spark_sql(COUNTS_SQL, {})
    with pytest.raises(EngineError, match="not a finite number"):
        to_spark_sql("SELECT $x", {"x": float("nan")})
    with pytest.raises(EngineError, match="expected an int or a float"):
        to_spark_sql("SELECT $x", {"x": True})
    with pytest.raises(EngineError, match="not parsed as DuckDB SQL"):
        to_spark_sql("SELECT (", {})


@pytest.mark.parametrize(
    ("engine", "master", "match"),
    [
        ("oracle", None, r"--engine 'oracle': expected one of duckdb, spark"),
        ("duckdb", "local[2]", "--spark-master applies to --engine spark only"),
        ("spark", "mesos://x:1", r"--spark-master 'mesos://x:1': expected local"),
        ("spark", "local[0]", r"--spark-master 'local\[0\]'"),
        ("spark", "spark://host", r"--spark-master 'spark://host'"),
    ],
)
def test_get_engine_refuses_bad_values_naming_the_option(
    engine: str, master: str | None, match: str
) -> None:
    with pytest.raises(EngineError, match=match):
        get_engine(engine, master)


def test_get_engine_accepts_cluster_masters_without_starting_anything() -> None:
    assert isinstance(get_engine(None), DuckDBEngine)
    if spark_missing() is None:
        eng = get_engine("spark", "spark://10.1.2.3:7077")
        assert isinstance(eng, SparkEngine) and eng.describe() == "spark (spark://10.1.2.3:7077)"


def test_spark_without_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    with pytest.raises(EngineError, match=r"--engine spark: .*needs a Java 17\+ runtime"):
        get_engine("spark")


def test_spark_without_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now fails
    with pytest.raises(EngineError, match=r"needs pyspark, which is not installed"):
        get_engine("spark")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--engine", "oracle"], "Invalid value for '--engine'"),
        (["--engine", "spark", "--spark-master", "nowhere"], "Invalid value for '--spark-master'"),
        (["--spark-master", "local[2]"], "--spark-master applies to --engine spark only"),
    ],
)
@pytest.mark.parametrize("command", ["logs export", "train", "evaluate"])
def test_the_commands_refuse_bad_engine_options(
    tmp_path: Path, command: str, args: list[str], match: str
) -> None:
    (tmp_path / "decisions").mkdir()
    extra = {
        "logs export": ["--format", "dsjson", "--out", str(tmp_path / "x.dsjson")],
        "train": ["--no-mlflow"],
        "evaluate": ["--policy", "uniform", "--no-mlflow"],
    }[command]
    res = CliRunner().invoke(
        nba, [*command.split(), "--logs", str(tmp_path), *extra, *args], catch_exceptions=False
    )
    assert res.exit_code == 2, res.output
    assert match in res.output


def test_format_log_refuses_an_engine(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        nba,
        [
            "logs",
            "export",
            "--store",
            str(tmp_path / "s.db"),
            "--format",
            "log",
            "--out",
            str(tmp_path / "out"),
            "--engine",
            "spark",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 2
    assert "--engine/--spark-master do not apply to --format log" in res.output


def test_the_commands_say_what_spark_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    (tmp_path / "decisions").mkdir()
    res = CliRunner().invoke(
        nba,
        ["train", "--logs", str(tmp_path), "--no-mlflow", "--engine", "spark"],
        catch_exceptions=False,
    )
    assert res.exit_code == 2 and "needs a Java 17+ runtime" in res.output


# ------------------------------------------------------------------ Spark against DuckDB


def _edge_log(
    make_decisions: Any, make_outcomes: Any, window: timedelta
) -> tuple[pa.Table, pa.Table]:
    """Decisions (three with 3-slot slates) and outcomes of every status (a reward
    window of ``window``)."""
    rows = make_decisions(8, step=timedelta(hours=7)).to_pylist()
    for r in rows[:3]:
        ids, c = r["action_ids"], r["chosen_index"]
        others = [a for a in ids if a != ids[c]][:2]
        r["slate"] = [{"action_id": ids[c], "probability": r["propensity"]}] + [
            {"action_id": a, "probability": 0.5} for a in others
        ]
    d = pa.Table.from_pylist(rows, schema=DECISIONS)
    ts = [T0 + timedelta(hours=7 * i) for i in range(8)]
    slot2 = rows[1]["slate"][1]["action_id"]
    not_in_slate = next(
        a for a in rows[3]["action_ids"] if a != rows[3]["chosen_action_id"]
    )  # row 3 has no slate: another action is "other_action"
    h = timedelta(hours=1)
    o = make_outcomes(
        [
            ("e00000", ts[0] + h, "opened", "s1"),
            ("e00000", ts[0] + 2 * h, "opened", "s1"),  # duplicate (later copy)
            ("e00000", ts[0] + 2 * h, "clicked", "s2"),
            ("e00000", ts[0] + 3 * h, "clicked", "s3"),  # same type, another source
            ("e00000", ts[0] + window + 2 * h, "attended", "s4"),  # late
            ("e00000", ts[0] + timedelta(days=40), "attended", "s4b"),  # after as_of
            ("e00000", ts[0] - h, "visited", "s5"),  # early
            ("e00001", ts[1] + h, "clicked", "s6", 1.0, slot2),  # slot 2 of the slate
            ("e00001", ts[1] + window + h, "opened", "s7", 1.0, slot2),  # slot, late
            ("e00003", ts[3] + h, "opened", "s8", 1.0, not_in_slate),  # other action
            ("e00004", ts[4] + h, "reward", "s9", 0.37),  # a value type
            ("e00004", ts[4] + 2 * h, "reward", "s10", 0.9),  # its later copy: not used
            ("e00005", ts[5] + h, "unsubscribed", "s11"),
            ("e00006", ts[6] + timedelta(days=13), "meeting_held", "s12"),
            ("nope", ts[0], "opened", "s13"),  # unknown event
        ]
    )
    return d, o


_CUSTOM = RewardDefinition(
    name="custom",
    version="2",
    weights={"opened": 0.3, "clicked": 0.7, "reward": 1.0, "unsubscribed": -2.0, "attended": 1.0},
    window_days=10.5,
    aggregation="max",
    default_reward=0.05,
    clip=(-1.0, 0.8),
    value_types=frozenset({"reward"}),
    costs={"email": 0.02, "rep_visit": 0.1},
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("reward_def", "open_windows"),
    [
        (RewardDefinition.default(), OpenWindows.EXCLUDE),
        (_CUSTOM, OpenWindows.DELAY_CORRECTED),
        (_CUSTOM, OpenWindows.PARTIAL),
    ],
)
def test_join_on_spark_equals_duckdb_on_every_outcome_status(
    spark_engine: SparkEngine,
    make_decisions: Any,
    make_outcomes: Any,
    reward_def: RewardDefinition,
    open_windows: OpenWindows,
) -> None:
    window = timedelta(days=reward_def.window_days)
    d, o = _edge_log(make_decisions, make_outcomes, window)
    as_of = T0 + window + timedelta(hours=30)  # the last three windows are still open
    duck = join_rewards(d, o, reward_def, as_of=as_of, open_windows=open_windows)
    spark = join_rewards(
        d, o, reward_def, as_of=as_of, open_windows=open_windows, engine=spark_engine
    )
    assert spark.table.equals(duck.table)
    assert spark.counts == duck.counts
    c = duck.counts
    # the log exercises every status, so equality above covers each one
    assert c.duplicate_outcomes and c.late_outcomes and c.early_outcomes
    assert c.unknown_event_outcomes and c.other_action_outcomes and c.slot_outcomes
    assert c.open_window_decisions == 3 and c.outcomes_used and c.outcomes_after_as_of


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "logs"
    args = ["simulate", "--hcps", "120", "--days", "20", "--slate-size", "3", "--seed", "8"]
    res = CliRunner().invoke(nba, [*args, "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.slow
def test_simulated_log_joins_featurizes_and_evaluates_the_same_on_spark(
    spark_engine: SparkEngine, sim_log: Path
) -> None:
    rd = RewardDefinition.default()
    duck = load_joined(sim_log, rd)
    spark = load_joined(sim_log, rd, engine=spark_engine)
    assert duck.table.num_rows > 300
    assert spark.table.equals(duck.table) and spark.counts == duck.counts
    # DSJSON lines (with other outcomes and pulls) from either join: the same bytes
    outcomes = io.read(sim_log, "outcomes")
    touches = io.read(sim_log, "touches")
    lines = []
    for res in (duck, spark):
        cats = load_catalogs(sim_log, res.table.column("catalog_version").unique().to_pylist())
        pulls = window_pulls(touches, res.table, rd.window_days, res.as_of)
        lines.append(list(iter_dsjson(res.table, cats, outcomes=outcomes, pulls=pulls)))
    assert lines[0] == lines[1] and len(lines[0]) == duck.table.num_rows
    assert any('"pulls":' in line for line in lines[0])
    # the OPE input arrays
    a, b = LoggedLog.from_table(duck.table), LoggedLog.from_table(spark.table)
    for name in ("offsets", "pscore_all", "action", "pscore", "reward", "ts_us"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("action_ids", "event_ids", "hcp_ids"):
        assert list(getattr(a, name)) == list(getattr(b, name)), name


@pytest.mark.slow
def test_both_engines_read_the_logs_parquet_timestamps_as_the_same_instants(
    spark_engine: SparkEngine, sim_log: Path
) -> None:
    """The log's TIMESTAMP(MICROS, UTC) columns, read straight from its Parquet files by
    each engine (no Arrow in between), give the same microseconds since the epoch."""
    import duckdb

    files = [str(p) for p in io.part_files(sim_log, "outcomes")]
    con = duckdb.connect()
    try:
        by_duck = con.execute(
            "SELECT event_id, type, source_id, epoch_us(ts) AS us FROM read_parquet($f) "
            "ORDER BY event_id, type, source_id",
            {"f": files},
        ).fetchall()
    finally:
        con.close()
    spark = spark_engine.session
    spark.read.parquet(*files).createOrReplaceTempView("t_outcomes")
    try:
        sql = to_spark_sql(
            "SELECT event_id, type, source_id, epoch_us(ts) AS us FROM t_outcomes "
            "ORDER BY event_id, type, source_id"
        )
        by_spark = [tuple(r) for r in spark.sql(sql).collect()]
    finally:
        spark.catalog.dropTempView("t_outcomes")
    arrow = io.read(sim_log, "outcomes")
    assert len(by_duck) == arrow.num_rows > 100
    assert by_spark == by_duck
    mine = sorted(
        zip(
            arrow.column("event_id").to_pylist(),
            arrow.column("type").to_pylist(),
            arrow.column("source_id").to_pylist(),
            arrow.column("ts").cast(pa.int64()).to_pylist(),
            strict=True,
        )
    )
    assert [tuple(r) for r in by_duck] == mine


@pytest.mark.slow
def test_export_and_train_on_spark_write_what_vw_learns_like_duckdb(
    spark_engine: SparkEngine, sim_log: Path, tmp_path: Path
) -> None:
    from training.train import train

    # nba logs export --engine spark: the same DSJSON file, which VW reads (--dsjson)
    files = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.dsjson"
        res = CliRunner().invoke(
            nba,
            [
                *("logs", "export", "--logs", str(sim_log), "--format", "dsjson"),
                *("--out", str(out), "--quiet", "--engine", engine),
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        files[engine] = out
    assert "join engine: spark (local[2])" in res.output
    # the lines were made by the executors (part files concatenated into --out)
    assert "dsjson lines made by: spark (local[2])" in res.output
    n_written = files["spark"].read_bytes().count(b"\n")
    assert f"wrote {n_written} decisions (dsjson)" in res.output
    assert files["spark"].read_bytes() == files["duckdb"].read_bytes()
    metrics = tmp_path / "metrics.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --epsilon 0.1 -d {files['spark']} "
        f"--extra_metrics {metrics} --quiet"
    )
    vw.finish()
    learned = json.loads(metrics.read_text())
    cb = next(v for k, v in learned.items() if k.startswith("cb_explore_adf"))
    n_lines = len(files["spark"].read_text().splitlines())
    assert learned["line_parse_error"] == 0 and cb["cbea_labeled_ex"] == n_lines > 300
    # nba train's VW text examples (VW's native parser learns them): same bytes, same model
    results = {}
    for engine in ("duckdb", spark_engine):
        name = "duckdb" if engine == "duckdb" else "spark"
        results[name] = train(
            sim_log, RewardDefinition.default(), seed=3, work_dir=tmp_path / name, engine=engine
        )
    text = {k: (tmp_path / k / "train.vw.txt").read_bytes() for k in results}
    assert text["spark"] == text["duckdb"] and len(text["spark"]) > 1000
    assert results["spark"].n_examples == results["duckdb"].n_examples > 300
    assert results["spark"].policy.model_bytes() == results["duckdb"].policy.model_bytes()


@pytest.mark.slow
def test_evaluate_gives_the_same_estimates_on_spark(
    spark_engine: SparkEngine, sim_log: Path
) -> None:
    out = {}
    for engine in ("duckdb", "spark"):
        res = CliRunner().invoke(
            nba,
            [
                *("evaluate", "--logs", str(sim_log), "--policy", "uniform", "--estimators"),
                *("ips,dm", "--bootstrap", "50", "--folds", "2", "--json", "--no-mlflow"),
                *("--engine", engine),
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        out[engine] = json.loads(res.output.strip().splitlines()[-1])
    assert out["spark"]["rows"] and out["spark"]["join_counts"]["decisions"] > 300
    assert out["spark"] == out["duckdb"]
