"""NBA_STORE_URL / --store URL: malformed or unreachable ones fail clearly, naming the
setting (never the password); the dialect layer's rewrites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pg_server import free_port
from pydantic import ValidationError

from serving.store import EventStore, StoreError, is_store_url, open_store
from serving.store_sql import pg_sql


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://u@127.0.0.1:5432", "names no database"),
        ("postgresql://u:secret@127.0.0.1:notaport/db", "malformed|port"),
        ("postgresql://u@127.0.0.1:5432/db?bogus_option=1", "malformed"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_setting(url: str, match: str) -> None:
    with pytest.raises(StoreError, match=f"NBA_STORE_URL.*({match})") as err:
        EventStore(url)
    assert "secret" not in str(err.value)


def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = f"postgresql://nba:secret@127.0.0.1:{free_port()}/events"
    with pytest.raises(
        StoreError, match="NBA_STORE_URL: cannot connect to postgresql://nba@"
    ) as err:
        open_store(url, busy_timeout_s=2)
    assert "secret" not in str(err.value)


def test_the_settings_refuse_a_bad_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving_testkit import make_settings

    with pytest.raises(ValidationError, match=r"NBA_STORE_URL.*names no database"):
        make_settings(tmp_path, store_url="postgresql://u@127.0.0.1:5432")
    good = make_settings(tmp_path, store_url="postgresql://u@127.0.0.1:5432/db")
    assert good.store_location == "postgresql://u@127.0.0.1:5432/db"
    assert make_settings(tmp_path).store_location == make_settings(tmp_path).store_path


def test_the_cli_refuses_a_bad_store_url(tmp_path: Path) -> None:
    from serving.cli_rules import rules

    res = CliRunner().invoke(rules, ["show", "--store", "postgresql://u@127.0.0.1:5432"])
    assert res.exit_code == 2 and "names no database" in res.output, res.output


def test_locations_and_rewrites() -> None:
    assert is_store_url("postgresql://a@b/c") and is_store_url("postgres://a@b/c")
    assert not is_store_url(Path("postgresql://a@b/c")) and not is_store_url("data/events.db")
    assert pg_sql("INSERT OR IGNORE INTO t VALUES (?) RETURNING id", True) == (
        "INSERT INTO t VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"
    )
    assert pg_sql("SELECT 1 WHERE x LIKE 'a%'", False) == "SELECT 1 WHERE x LIKE 'a%'"


def test_a_store_reconnects_after_its_session_was_ended(postgres: Any) -> None:
    import psycopg

    from nba.domain import HCPProfile

    url = postgres.create_database("reconnect")
    store = EventStore(url)
    h = HCPProfile("h1", "cardiology", 5, "US", "aware", frozenset({"email"}), False, 0.5)
    store.upsert_hcp(h)
    pid = store._conn().execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # the call that finds the session gone fails; the next one opens a new session
    with pytest.raises(psycopg.OperationalError):
        store.get_hcp("h1")
    assert store.get_hcp("h1") == h
    assert store._conn().execute("SELECT pg_backend_pid()").fetchone()[0] != pid
