"""Fixtures every test folder can use: real servers on 127.0.0.1.

- ``postgres`` (session): a PostgreSQL server from the machine's binaries;
  ``postgres.create_database(name)`` gives a fresh database's DSN
  (``tests/servers/pg_server.py``).
- ``mlflow_server`` (module): an ``mlflow server`` process on its own database of
  that PostgreSQL server, with a local artifact root (``tests/servers/mlflow_server.py``).

- ``spark_engine`` (session): the Spark engine of the log pipeline on ``local[2]``
  (:class:`nba.logs.engine.SparkEngine`), one JVM for the whole test session.

All skip the tests that need them when the server cannot start, except under
``CI=true``, where those tests fail instead.
"""

from __future__ import annotations

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
