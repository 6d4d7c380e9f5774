"""Fixtures every test folder can use: real servers on 127.0.0.1.

- ``postgres`` (session): a PostgreSQL server from the machine's binaries;
  ``postgres.create_database(name)`` gives a fresh database's DSN
  (``tests/servers/pg_server.py``).
- ``mlflow_server`` (module): an ``mlflow server`` process on its own database of
  that PostgreSQL server, with a local artifact root (``tests/servers/mlflow_server.py``).

Both skip the tests that need them when the server cannot start, except under
``CI=true``, where those tests fail instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

# only this folder: tests/ itself holds folders named like the packages (nba, training, ...)
sys.path.insert(0, str(Path(__file__).parent / "servers"))

from mlflow_server import mlflow_server
from pg_server import postgres

__all__ = ["mlflow_server", "postgres"]
