"""``nba simulate --via`` posts what the simulated HCPs pull: a real ``nba serve`` on
loopback ends up holding every pull touch the world drew (detail pulls, email clicks,
portal views, webinar questions, with topics, content ids and dwell), field for field
as the in-process simulator logs them, and its later decisions count them."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import start_server, stop_server

from nba.logs import io as logio
from nba.logs.schema import TOUCH_KINDS
from serving.settings import hash_key
from serving.store import EventStore
from simulators.hcp.pulls import Touches
from simulators.hcp.world import World
from simulators.via_http import HttpDriver, ServiceClient

DRIVER_KEY = "pulls-e2e-driver-key-5d1a"

#: the columns of a touch that the service must hold as the world drew them
COLS = (
    "hcp_id",
    "ts",
    "channel",
    "content_id",
    "origin",
    "kind",
    "topics",
    "content_ids",
    "dwell_s",
)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(tuple(row[c]) if isinstance(row[c], list) else row[c] for c in COLS)


@pytest.mark.slow
def test_the_service_holds_every_pull_the_world_drew(tmp_path: Path) -> None:
    world = World(300, seed=11)
    drawn: list[Touches] = []
    execute, views = world.execute, world.portal_views

    def spy_execute(*args: Any, **kwargs: Any) -> Any:
        ex = execute(*args, **kwargs)
        drawn.append(ex.pulls)
        return ex

    def spy_views(d: int) -> Touches:
        v = views(d)
        drawn.append(v)
        return v

    world.execute = spy_execute  # type: ignore[method-assign]
    world.portal_views = spy_views  # type: ignore[method-assign]
    keys = [{"name": "driver", "sha256": hash_key(DRIVER_KEY), "scopes": ["decide", "report"]}]
    proc, base = start_server(tmp_path, NBA_ALLOW_CLIENT_TIME="true", NBA_API_KEYS=json.dumps(keys))
    client = ServiceClient(base, api_key=DRIVER_KEY)
    try:
        summary = HttpDriver(world, client, seed=11, concurrency=2).run(days=10)
    finally:
        client.close()
        stop_server(proc)
    want = [r for t in drawn if t.n for r in world.touches_table(t).to_pylist()]
    kinds = {r["kind"] for r in want}
    # every kind the driven requesters can cause (it drives no webinar decisions, so
    # no webinar questions: those are posted the same way, see test_via_http_driver)
    assert kinds == set(TOUCH_KINDS) - {"contact", "webinar_question"}, kinds
    assert summary.pulls_posted == len(want) > 30

    con = sqlite3.connect(tmp_path / "events.db")
    try:
        stored_n = con.execute("SELECT count(*) FROM touches WHERE kind != 'contact'").fetchone()
        # decisions made after the first pulls see them (the service's own history)
        contexts = [json.loads(r[0]) for r in con.execute("SELECT context FROM decisions")]
    finally:
        con.close()
    assert stored_n[0] == len(want)
    out = tmp_path / "log"
    EventStore(tmp_path / "events.db").export(out)
    got = logio.read(out, "touches")
    got = got.filter(pa.compute.not_equal(got["kind"], "contact")).to_pylist()
    assert sorted(map(_key, got), key=repr) == sorted(map(_key, want), key=repr)
    with_pulls = [c for c in contexts if c["history"].get("topic_pulls_90d")]
    assert with_pulls and all(c["history"].get("interest") for c in with_pulls)
