"""Fixtures every test folder can use: real servers on 127.0.0.1; and how the suite
is split over pytest-xdist workers.

- ``postgres`` (session): a PostgreSQL server from the machine's binaries;
  ``postgres.create_database(name)`` gives a fresh database's DSN
  (``tests/servers/pg_server.py``).
- ``mlflow_server`` (module): an ``mlflow server`` process on its own database of
  that PostgreSQL server, with a local artifact root (``tests/servers/mlflow_server.py``).

Both skip the tests that need them when the server cannot start, except under
``CI=true``, where those tests fail instead.

Scheduling (``make test`` runs ``pytest -n 2 --dist loadgroup --no-loadscope-reorder``):

- a test that uses a module- or class-scoped fixture is put in its module's
  ``xdist_group``, and one that uses a session-scoped fixture of a folder's
  ``conftest.py`` (the simulator runs of ``tests/simulators``) in that folder's
  group, so one worker builds such a fixture once instead of each worker
  building it (and module fixtures stay set up once per module); every other
  test is a unit of its own and goes to whichever worker is free;
- under xdist the units are ordered longest first (:data:`KNOWN_SECONDS`, then
  the ``slow`` mark), so that the long ones start at once and the short ones
  fill in at the end instead of one long test running alone last. Run without
  ``-n`` the order is the files' order, as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# only this folder: tests/ itself holds folders named like the packages (nba, training, ...)
sys.path.insert(0, str(Path(__file__).parent / "servers"))

from mlflow_server import mlflow_server
from pg_server import postgres

__all__ = ["mlflow_server", "postgres"]

#: Seconds that tests (a node id) or whole files took in a serial ``--durations=0``
#: run (setup + call + teardown). Only their order matters: units are started
#: longest first. A test not listed counts :data:`SLOW_SECONDS` when marked
#: ``slow``, else :data:`QUICK_SECONDS`.
KNOWN_SECONDS: dict[str, float] = {
    "tests/training/test_loop_e2e.py": 150.0,
    "tests/test_mlflow_server_deploy.py": 100.0,
    "tests/nba_cli/test_make_demo.py": 61.0,
}
SLOW_SECONDS = 5.0
QUICK_SECONDS = 0.1

#: session-scoped fixtures defined here (one PostgreSQL server per worker is cheap)
_SHARED_BASEIDS = ("", "tests")


def _group(item: pytest.Item) -> str | None:
    """The xdist group ``item`` must share with other tests, or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # doctests
        return None
    module = item.nodeid.split("::", 1)[0]
    session_group = None
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fixturedef = defs[-1]
        if fixturedef.scope in ("module", "class", "package"):
            return module
        if fixturedef.scope == "session" and fixturedef.baseid not in _SHARED_BASEIDS:
            session_group = f"session-{fixturedef.baseid or 'root'}"
    return session_group


def _estimate(item: pytest.Item) -> float:
    nodeid = item.nodeid.split("@", 1)[0]
    module = nodeid.split("::", 1)[0]
    if nodeid in KNOWN_SECONDS:
        return KNOWN_SECONDS[nodeid]
    if module in KNOWN_SECONDS:
        # a file's figure spread over its tests, so that its group adds up to it
        return KNOWN_SECONDS[module] / max(1, _module_sizes.get(module, 1))
    return SLOW_SECONDS if item.get_closest_marker("slow") else QUICK_SECONDS


_module_sizes: dict[str, int] = {}


def _under_xdist(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


@pytest.hookimpl(tryfirst=True)  # before xdist adds the group names to the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that must share a worker; under xdist order the units longest first."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    keys: list[str] = []
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        keys.append(group if group is not None else item.nodeid)
    if not _under_xdist(config):
        return
    _module_sizes.clear()
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        _module_sizes[module] = _module_sizes.get(module, 0) + 1
    units: dict[str, list[pytest.Item]] = {}
    for key, item in zip(keys, items, strict=True):
        units.setdefault(key, []).append(item)
    cost = {key: sum(_estimate(i) for i in unit) for key, unit in units.items()}
    ordered = sorted(units, key=lambda key: -cost[key])  # stable: ties keep file order
    items[:] = [item for key in ordered for item in units[key]]
