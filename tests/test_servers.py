"""The test-server fixtures themselves (tests/servers/): a real PostgreSQL server
from the machine's binaries, fresh databases per caller, clear refusals, and the
skip-or-fail rule under ``CI=true``; the Makefile and CI install the binaries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pg_server
import psycopg
import pytest
from pg_server import PostgresServer, ServiceUnavailable

from nba.paths import PROJECT_ROOT


def test_databases_are_fresh_and_separate(postgres: PostgresServer) -> None:
    a = postgres.create_database("servers_a")
    b = postgres.create_database("servers_b")
    with psycopg.connect(a) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(b) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        version = conn.execute("SHOW server_version").fetchone()
    assert version is not None and version[0].split(".")[0] in postgres.version
    assert postgres.host == "127.0.0.1"
    assert postgres.sqlalchemy_url("servers_a").startswith("postgresql+psycopg://")
    with pytest.raises(psycopg.errors.DuplicateDatabase):
        postgres.create_database("servers_a")


def test_the_cluster_belongs_to_the_postgres_user_when_run_as_root(
    postgres: PostgresServer,
) -> None:
    owner = (postgres.root / "data").stat().st_uid
    if os.geteuid() == 0:
        import pwd

        assert owner == pwd.getpwnam("postgres").pw_uid  # initdb refuses root
    else:
        assert owner == os.geteuid()


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "a-b", "x; DROP", "a" * 64])
def test_bad_database_names_are_refused(postgres: PostgresServer, name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres.create_database(name)


def test_missing_binaries_are_reported_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBA_PG_BINDIR", str(tmp_path))
    assert pg_server.find_bin_dir() is None
    with (
        pytest.raises(ServiceUnavailable, match="no PostgreSQL server binaries"),
        pg_server.running_postgres(),
    ):
        pass


def test_unavailable_skips_without_ci_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server here"):
        pg_server.unavailable("no server here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no server here \(CI=true"):
        pg_server.unavailable("no server here")


def test_make_test_installs_the_debian_packages_its_tests_need() -> None:
    """`make test` (what `.ci/run` calls) first runs `system-packages`, whose recipe
    checks for wrk, PostgreSQL's server binaries and chromium and installs the
    missing ones with one apt-get call."""
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    test_line = next(ln for ln in makefile.splitlines() if ln.startswith("test:"))
    assert "system-packages" in test_line.split()
    recipe = subprocess.run(
        ["make", "-n", "system-packages"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for package in ("wrk", "postgresql", "chromium"):
        assert f'missing="$missing {package}"' in recipe
    assert "apt-get install -y -q --no-install-recommends $missing" in recipe
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().endswith("make test")
