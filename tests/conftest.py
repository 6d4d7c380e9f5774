"""Fixtures every test folder can use: real servers on 127.0.0.1; and how the suite
is split over pytest-xdist workers.

- ``postgres`` (session): a PostgreSQL server from the machine's binaries;
  ``postgres.create_database(name)`` gives a fresh database's DSN
  (``tests/servers/pg_server.py``).
- ``mlflow_server`` (module): an ``mlflow server`` process on its own database of
  that PostgreSQL server, with a local artifact root (``tests/servers/mlflow_server.py``).

- ``empty_mlflow_store`` (session): an empty MLflow SQLite store to copy into a
  test's directory (creating a fresh one costs seconds of migrations).
- ``spark_engine`` (session): the Spark engine of the log pipeline on ``local[2]``
  (:class:`nba.logs.engine.SparkEngine`), one JVM for the whole test session.
  Every Spark the tests start (this one and the ``nba ... --engine spark``
  commands) reads ``tests/spark-conf/spark-defaults.conf`` (``SPARK_CONF_DIR``,
  unless already set): JVM options that halve a small job's CPU.

All skip the tests that need them when the server cannot start, except under
``CI=true``, where those tests fail instead.

Scheduling (``make test`` runs ``pytest -n 2 --dist loadfile --no-loadscope-reorder``):

- a test file is one unit of work, run whole on one worker, so module- and
  class-scoped fixtures are built once, as in a serial run; the files of
  :data:`SPLIT_FILES` (long, independent tests with no shared fixture: checked at
  collection) are split into one unit per test. Session fixtures (the
  PostgreSQL server, the simulator runs of ``tests/simulators``) are built once
  per worker; the tests that use ``spark_engine`` (the files that name it, and
  :data:`SPARK_UNIT` in the split files: checked at collection) are one unit, so
  one worker starts the JVM, not both;
- under xdist the units are ordered longest first (:data:`KNOWN_SECONDS`, then
  the ``slow`` mark), so that the long ones start at once and the short ones
  fill in at the end instead of one long test running alone last. Run without
  ``-n`` the order is the files' order, as before.

Not ``--dist loadgroup``: with pytest 9 its ``xdist_group`` marks are silently
ignored (pytest-xdist 3.8 renames the node ids through an attribute pytest no
longer reads), so grouped tests were spread over both workers.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# only this folder: tests/ itself holds folders named like the packages (nba, training, ...)
sys.path.insert(0, str(Path(__file__).parent / "servers"))

from mlflow_server import mlflow_server
from pg_server import postgres

__all__ = ["mlflow_server", "postgres", "spark_engine"]

# before any test starts a JVM, in this process or a subprocess (which inherits it)
os.environ.setdefault("SPARK_CONF_DIR", str(Path(__file__).parent / "spark-conf"))

#: one OpenBLAS thread for NumPy and SciPy in the test processes and every process
#: they start (which inherit it), unless already set. The tests' linear algebra is
#: small (the slate estimators' eigen-decompositions are of matrices of some tens
#: to a few hundred rows): a second BLAS thread does not speed it up, and on two
#: cores already busy with two pytest-xdist workers its threads wait for each other
#: spinning: 10-40 times the CPU of one thread for the slate estimators'
#: pseudo-inverse (docs/performance.md, "Fifth pass"). Only the thread count
#: changes (results agree to rounding). Set before NumPy is first imported
#: (OpenBLAS reads it when it loads): the imports above do not import it.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}
for _var, _value in BLAS_THREADS.items():
    os.environ.setdefault(_var, _value)


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Any]:
    """The Spark engine on ``local[2]``, started once per test session (the JVM's
    start takes seconds); stopped at the end. Without pyspark or Java the tests
    using it skip, or fail under ``CI=true`` (``make test`` installs a Java runtime)."""
    from nba.logs.engine import SparkEngine, spark_missing, stop_spark_session

    missing = spark_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI runs the Spark tests (`make test` installs Java)")
        pytest.skip(missing)
    engine = SparkEngine("local[2]")
    engine.session  # noqa: B018  (starts the JVM here, not inside the first test)
    yield engine
    stop_spark_session()


@pytest.fixture
def spark_parts_apart(spark_engine: Any) -> Iterator[Any]:
    """The session's Spark engine with adaptive coalescing of partitions off for
    one test, then as it was. Spark would coalesce a small log's sorted partitions
    into one; kept apart, several part files, each written by an executor task,
    must still hold the lines in order across files."""
    conf = spark_engine.session.conf
    key = "spark.sql.adaptive.coalescePartitions.enabled"
    before = conf.get(key)
    conf.set(key, "false")
    try:
        yield spark_engine
    finally:
        conf.set(key, before)


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store (tables and the default experiment), built once
    per worker. A test copies it to its own ``mlflow.db`` instead of letting MLflow
    create a fresh store: creating one runs MLflow's schema migrations, one
    committed (fsynced) transaction each, seconds of CPU and more of waiting on a
    busy disk. A copy is the empty store MLflow would have created, except that
    the default experiment (id 0, which nba never logs to: it names its
    experiments) keeps the artifact location of the template's directory."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


#: Seconds that tests (a node id) or whole files took in a ``--durations`` run
#: (setup + call + teardown). Only their order matters: units are started
#: longest first. A test not listed counts :data:`SLOW_SECONDS` when marked
#: ``slow``, else :data:`QUICK_SECONDS`.
KNOWN_SECONDS: dict[str, float] = {
    # every unit of 20 s or more in one whole-suite run under -n 2 (2026-12-02,
    # 18:25-19:10 UTC, 2,871 tests passed), setup + call + teardown summed per file
    # (per test in SPLIT_FILES). The machine was shared (load average 9-14 on two
    # cores): the figures are 3-5 times a quiet run's, the order is what counts.
    # The Spark unit counts the sum of its files' and tests' figures
    "tests/training/test_loop_e2e.py": 593.0,
    "tests/nba_cli/test_make_demo.py": 292.0,
    "tests/test_mlflow_server_deploy.py": 288.0,
    "tests/nba/logs/test_logs_engine_reads.py": 267.0,
    "tests/serving/test_serving_routes.py": 230.0,
    "tests/nba/logs/test_logs_engines.py": 214.0,
    "tests/nba/logs/test_logs_ope_sql.py": 186.0,
    "tests/training/test_train_mlproject.py": 164.0,
    "tests/nba/logs/test_logs_dsjson_engine.py": 150.0,
    "tests/training/test_train_engine_examples.py": 147.0,
    "tests/experiments/test_push_vs_pull_mlproject.py": 126.0,
    "tests/training/test_promote_gate.py": 116.0,
    "tests/test_readme.py::test_spark_pipeline_block_runs_verbatim": 111.0,
    "tests/training/test_evaluate_mlproject.py": 98.0,
    "tests/bench/test_bench_scripts.py::test_bench_scale_pipeline": 84.0,
    "tests/simulators/test_sim_learning_closed_loop.py": 68.0,
    "tests/bench/test_bench_scripts.py::test_bench_engine_cpu": 66.0,
    "tests/serving/test_console_browser.py": 65.0,
    "tests/test_readme.py::test_data_scientist_tour_runs_verbatim": 63.0,
    "tests/training/test_loop.py": 62.0,
    "tests/bench/test_bench_scripts.py::test_bench_outcomes[python]": 60.0,
    "tests/bench/test_bench_scripts.py::test_bench_scale_store": 57.0,
    "tests/simulators/test_sim_learning_policy.py": 54.0,
    "tests/experiments/test_push_vs_pull_run.py": 52.0,
    "tests/test_readme.py::test_brand_manager_week_runs_against_a_real_server": 48.0,
    "tests/bench/test_bench_scripts.py::test_bench_serve[python]": 48.0,
    "tests/experiments/test_ope_accuracy_study.py": 47.0,
    "tests/serving/test_serving_e2e.py": 43.0,
    "tests/bench/test_bench_scripts.py::test_bench_serve[wrk]": 39.0,
    "tests/nba/test_features_countmaps.py": 38.0,
    "tests/serving/test_serving_pull.py": 37.0,
    "tests/nba/ope/test_ope_intervals.py": 37.0,
    "tests/nba/ope/test_ope_paired.py": 32.0,
    "tests/bench/test_bench_scripts.py::test_bench_outcomes[wrk]": 31.0,
    "tests/serving/test_triggers_service.py": 30.0,
    "tests/nba/policies/test_vw_policy.py": 29.0,
    "tests/simulators/test_sim_horizon_cut.py": 29.0,
    "tests/test_readme.py::test_mlflow_ui_command_serves_the_tracking_store": 28.0,
    "tests/bench/test_bench_scripts.py::test_bench_decide_threads": 27.0,
    "tests/serving/test_reps.py": 27.0,
    "tests/training/test_train_offline.py": 27.0,
    "tests/serving/test_store_basic.py": 25.0,
    "tests/serving/test_serve_fd.py": 25.0,
    "tests/bench/test_bench_scripts.py::test_bench_export": 23.0,
    "tests/bench/test_bench_scripts.py::test_bench_train": 23.0,
    "tests/serving/test_store_postgres_e2e.py": 22.0,
    "tests/serving/test_serving_outcomes_batch.py": 22.0,
    "tests/bench/test_bench_scripts.py::test_bench_train_memory": 21.0,
    "tests/nba_cli/test_cli_main.py": 21.0,
    "tests/serving/test_serving_personalizer.py": 21.0,
    "tests/test_readme.py::test_marketer_changes_a_rule": 20.0,
}
SLOW_SECONDS = 5.0
QUICK_SECONDS = 0.1

#: files whose tests are independent units (each its own servers and directories)
SPLIT_FILES = frozenset({"tests/test_readme.py", "tests/bench/test_bench_scripts.py"})

#: the tests of :data:`SPLIT_FILES` that use ``spark_engine``. Under xdist they and
#: every other file whose text names ``spark_engine`` are one unit of work, run on one
#: worker, so the suite starts one Spark session (a JVM: tens of CPU seconds to start
#: and warm up), not one per worker
SPARK_UNIT = frozenset(
    {
        "tests/bench/test_bench_scripts.py::test_bench_scale_pipeline",
        "tests/bench/test_bench_scripts.py::test_bench_scale_featurize",
        "tests/test_readme.py::test_spark_pipeline_block_runs_verbatim",
    }
)
_SPARK_UNIT_NAME = "spark_engine"

#: session-scoped fixtures that are not shared state of a test file (``tests/conftest.py``)
_SHARED_BASEIDS = ("", "tests")


def _shared_fixture(item: pytest.Item) -> str | None:
    """The name of a module-, class- or folder-session-scoped fixture ``item`` uses."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # doctests
        return None
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fixturedef = defs[-1]
        if fixturedef.scope in ("module", "class", "package"):
            return name
        if fixturedef.scope == "session" and fixturedef.baseid not in _SHARED_BASEIDS:
            return name
    return None


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


#: the fixtures that hand a test the session's Spark engine
SPARK_FIXTURES = ("spark_engine", "spark_parts_apart")


@functools.cache
def _names_spark(path: str) -> bool:
    """Whether the test file at ``path`` (relative to the project) names a fixture
    of :data:`SPARK_FIXTURES`."""
    try:
        text = (Path(__file__).parents[1] / path).read_text(encoding="utf-8")
    except OSError:
        return False
    return any(name in text for name in SPARK_FIXTURES)


def _unit(nodeid: str) -> str:
    """The unit of work of a test under xdist: the Spark unit (a file that names
    ``spark_engine``, or a test of :data:`SPARK_UNIT`), its file, or itself in a split
    file."""
    path = _file(nodeid)
    if path in SPLIT_FILES:
        return _SPARK_UNIT_NAME if nodeid.split("[", 1)[0] in SPARK_UNIT else nodeid
    return _SPARK_UNIT_NAME if _names_spark(path) else path


def _uses_spark(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and "spark_engine" in info.names_closure


def _estimate(item: pytest.Item, file_sizes: dict[str, int]) -> float:
    nodeid = item.nodeid
    if nodeid in KNOWN_SECONDS:
        return KNOWN_SECONDS[nodeid]
    if _file(nodeid) in KNOWN_SECONDS:  # a file's figure spread over its tests
        return KNOWN_SECONDS[_file(nodeid)] / file_sizes[_file(nodeid)]
    return SLOW_SECONDS if item.get_closest_marker("slow") else QUICK_SECONDS


def _under_xdist(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a :data:`SPLIT_FILES` test that shares a fixture; under xdist order the
    units longest first."""
    for item in items:
        if _file(item.nodeid) in SPLIT_FILES and (name := _shared_fixture(item)):
            raise pytest.UsageError(
                f"{item.nodeid} uses the shared fixture {name!r}: remove its file from "
                "SPLIT_FILES in tests/conftest.py (its tests would run on several workers)"
            )
        if _uses_spark(item) and _unit(item.nodeid) != _SPARK_UNIT_NAME:
            raise pytest.UsageError(
                f"{item.nodeid} uses spark_engine: add it to SPARK_UNIT in tests/conftest.py "
                "(a second worker would start a second JVM)"
            )
    if not _under_xdist(config):
        return
    file_sizes: dict[str, int] = {}
    for item in items:
        file_sizes[_file(item.nodeid)] = file_sizes.get(_file(item.nodeid), 0) + 1
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(_unit(item.nodeid), []).append(item)
    cost = {key: sum(_estimate(i, file_sizes) for i in unit) for key, unit in units.items()}
    ordered = sorted(units, key=lambda key: -cost[key])  # stable: ties keep file order
    items[:] = [item for key in ordered for item in units[key]]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with the tests of :data:`SPLIT_FILES` as units of their own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SplitLoadFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return SplitLoadFileScheduling(config, log)
