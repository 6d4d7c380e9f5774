"""The HTTP driver of ``nba simulate --via`` against the real app in process
(FastAPI's TestClient, a real SQLite store in a tmp dir): what it acknowledges is
what the service stored, reports land after their decisions, and bad setups
fail with errors that say what to fix."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from serving_testkit import KEYS, make_settings, sqlite_rows

from serving.main import create_app
from serving.settings import hash_key
from simulators.hcp.world import SimulationError
from simulators.via_http import HttpDriver, RepBehaviour, ServiceClient, ViaError, drive

DRIVER_KEY = "test-key-driver-4c2e"


def _settings(tmp: Path, **overrides: Any) -> Any:
    keys = [
        {"name": "driver", "sha256": hash_key(DRIVER_KEY), "scopes": ["decide", "report"]},
        {"name": "decide-only", "sha256": hash_key(KEYS["decide"]), "scopes": ["decide"]},
    ]
    return make_settings(tmp, api_keys=keys, **overrides)


@pytest.fixture
def sim_app(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    with TestClient(create_app(_settings(tmp_path, allow_client_time=True))) as c:
        yield c, tmp_path / "events.db"


@pytest.mark.parametrize("outcomes_batch", [None, 1000], ids=["one-per-report", "batch"])
def test_driver_acknowledges_what_the_service_stored(
    sim_app: tuple[TestClient, Path], tmp_path: Path, outcomes_batch: int | None
) -> None:
    """The same checks whether the reports go one per request or in
    ``POST /v1/outcomes:batch`` calls (what the loop's end to end uses)."""
    client, db = sim_app
    paths: list[str] = []
    client.event_hooks = {"request": [lambda request: paths.append(request.url.path)]}
    summary, driver = drive(
        "http://testserver",
        hcps=200,
        days=8,
        seed=5,
        api_key=DRIVER_KEY,
        http=client,
        out=tmp_path / "record",
        outcomes_batch=outcomes_batch,
    )
    assert summary.decisions == len(driver.served) > 0
    assert set(summary.by_requester) == {"email_platform", "rep_app"}
    stored = {
        r[0]: r[1:]
        for r in sqlite_rows(
            db,
            "SELECT event_id, chosen_action_id, propensity, requester, ts_us, probabilities,"
            " chosen_index FROM decisions",
        )
    }
    assert len(stored) == summary.decisions
    import json

    for s in driver.served:
        chosen, propensity, requester, ts_us, probs, idx = stored[s.event_id]
        assert (chosen, requester) == (s.chosen_action_id, s.requester)
        assert propensity == s.probability == json.loads(probs)[idx]
        assert ts_us == int(s.ts.timestamp() * 1_000_000)  # the simulated time, not the clock
        assert s.ts.year == 2026 and s.ts.month == 1
    # every report was stored once, and after its decision
    outcomes = sqlite_rows(
        db,
        "SELECT o.type, o.kind, o.ts_us - d.ts_us FROM outcomes o"
        " JOIN decisions d ON d.event_id = o.event_id",
    )
    assert len(outcomes) == summary.outcomes_posted + summary.feedback_posted
    assert summary.outcomes_stored == summary.outcomes_posted
    assert all(lag >= 0 for _, _, lag in outcomes)
    kinds = {(t, k) for t, k, _ in outcomes}
    assert ("accepted", "feedback") in kinds and ("delivered", "response") in kinds
    n_feedback = sum(1 for _, k, _ in outcomes if k == "feedback")
    assert n_feedback == summary.by_requester["rep_app"] == summary.feedback_posted
    external = sqlite_rows(
        db, "SELECT count(*) FROM touches WHERE origin = 'external' AND kind = 'contact'"
    )[0][0]
    assert external == summary.touches_posted > 0
    pulls = sqlite_rows(db, "SELECT count(*) FROM touches WHERE kind != 'contact'")[0][0]
    assert pulls == summary.pulls_posted > 0
    # the driver's record matches what it acknowledged
    rec = pq.read_table(tmp_path / "record" / "served.parquet")
    assert rec.column("event_id").to_pylist() == [s.event_id for s in driver.served]
    assert (tmp_path / "record" / "via_summary.json").is_file()
    # ground truth for every chosen action carried out; none for dismissed suggestions
    truth = rec.column("expected_reward").to_pylist()
    dismissed = sqlite_rows(db, "SELECT count(*) FROM outcomes WHERE type = 'dismissed'")[0][0]
    assert sum(t is None for t in truth) == dismissed
    assert summary.executed == len(truth) - dismissed > 0
    assert all(t is None or -1.0 <= t <= 3.0 for t in truth)
    assert len(paths) == summary.requests
    reports = summary.outcomes_posted + summary.feedback_posted
    single = sum(p.startswith("/v1/events/") and p.endswith("/outcomes") for p in paths)
    batches = paths.count("/v1/outcomes:batch")
    if outcomes_batch is None:  # one request per report
        assert (single, batches) == (reports, 0)
    else:  # the same reports in far fewer requests
        assert single == 0 and 0 < batches < reports / 2


def test_a_report_the_batch_route_refuses_stops_the_run_naming_it(
    sim_app: tuple[TestClient, Path],
) -> None:
    from simulators.hcp.world import World

    client, _ = sim_app
    world = World(30, seed=4)
    driver = HttpDriver(
        world, ServiceClient("http://testserver", DRIVER_KEY, http=client), outcomes_batch=50
    )
    summary = driver.run(days=1)
    assert summary.decisions > 0
    driver._report(world._start_us, "no-such-event", {"type": "opened"}, "outcome")
    with pytest.raises(
        ViaError,
        match=r"POST /v1/outcomes:batch: item 0 \(POST /v1/events/no-such-event/outcomes\): "
        r"HTTP 404 unknown_event",
    ):
        driver._deliver(until_us=None)


def test_service_without_client_time_is_refused(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as c:
        with pytest.raises(ViaError, match="NBA_ALLOW_CLIENT_TIME=true"):
            drive("http://testserver", hcps=20, days=1, api_key=DRIVER_KEY, http=c)
        # nothing was decided
        assert sqlite_rows(tmp_path / "events.db", "SELECT count(*) FROM decisions")[0][0] == 0


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (None, r"HTTP 401 .*--api-key"),
        ("not-a-configured-key", r"HTTP 401 .*--api-key"),
        (KEYS["decide"], r"POST /v1/hcps:import: HTTP 403 .*report"),
    ],
)
def test_bad_api_key(sim_app: tuple[TestClient, Path], key: str | None, match: str) -> None:
    client, _ = sim_app
    with pytest.raises(ViaError, match=match):
        drive("http://testserver", hcps=20, days=1, api_key=key, http=client)


def test_unreachable_service_names_the_call() -> None:
    with pytest.raises(ViaError, match=r"POST http://127.0.0.1:9/v1/hcps:import: Connect"):
        drive("http://127.0.0.1:9", hcps=10, days=1)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: ServiceClient("127.0.0.1:8000"), ViaError, "not an http"),
        (lambda: ServiceClient("ftp://host"), ViaError, "not an http"),
        (lambda: RepBehaviour(accept_prob=-0.1), ViaError, "accept_prob must be in"),
        (lambda: RepBehaviour(own_visit_prob=2), ViaError, "own_visit_prob must be in"),
        (lambda: RepBehaviour(external_email_prob=True), ViaError, "external_email_prob"),
        (lambda: drive("http://x", hcps=0, days=1), SimulationError, "hcps must be a positive"),
    ],
)
def test_bad_parameters(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_days_and_batch_size(tmp_path: Path) -> None:
    from simulators.hcp.world import World

    client = ServiceClient("http://127.0.0.1:9")
    try:
        with pytest.raises(ViaError, match="batch_size must be a positive integer"):
            HttpDriver(World(10), client, batch_size=0)
        with pytest.raises(ViaError, match="outcomes_batch must be a positive integer, got 0"):
            HttpDriver(World(10), client, outcomes_batch=0)
        with pytest.raises(ViaError, match="days must be a positive integer, got 0"):
            HttpDriver(World(10), client).run(0)
    finally:
        client.close()


def test_out_that_already_holds_a_record_is_refused(tmp_path: Path) -> None:
    (tmp_path / "served.parquet").write_bytes(b"")
    with pytest.raises(ViaError, match=r"already holds served\.parquet"):
        drive("http://127.0.0.1:9", hcps=10, days=1, out=tmp_path)


def test_pulls_of_every_kind_reach_the_store_as_the_world_logs_them(
    sim_app: tuple[TestClient, Path],
) -> None:
    """Webinar questions too (the driven requesters decide no webinars, so the world is
    asked for some directly), and a pull the service refuses stops the run naming it."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from nba.catalog import Catalog
    from simulators.hcp.pulls import Touches
    from simulators.hcp.world import World

    client, db = sim_app
    world = World(60, seed=2)
    driver = HttpDriver(world, ServiceClient("http://testserver", DRIVER_KEY, http=client), seed=2)
    summary = driver.run(days=2)
    before = summary.pulls_posted
    cat = Catalog.default()
    a = next(x for x in cat.actions if x.channel == "webinar")
    hcp = np.arange(60, dtype=np.int64)
    approved = np.ones((len(world.population.markets), len(cat.items)), dtype=bool)
    item = world.pulls.content_ids.index(a.content_id)
    questions = world.pulls.from_outcomes(
        np.random.default_rng(0),
        "webinar_question",
        hcp,
        np.full(60, cat.channels.index("webinar"), dtype=np.int64),
        np.full(60, item, dtype=np.int64),
        np.full(60, world._start_us + 3 * 86_400_000_000, dtype=np.int64),
        approved,
    )
    assert questions.n > 0
    driver._pulls(Touches.concat([questions]))
    driver._deliver(until_us=None)
    assert summary.pulls_posted == before + questions.n
    stored = sqlite_rows(
        db,
        "SELECT hcp_id, ts_us, channel, content_id, origin, topics, content_ids, dwell_s"
        " FROM touches WHERE kind = 'webinar_question' ORDER BY ts_us, hcp_id",
    )
    want = world.touches_table(questions).to_pylist()
    us = timedelta(microseconds=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    cols = ("channel", "content_id", "origin", "topics", "content_ids", "dwell_s")
    assert [(r["hcp_id"], (r["ts"] - epoch) // us, *(r[c] for c in cols)) for r in want] == [
        (*s[:5], json.loads(s[5]), json.loads(s[6]), s[7]) for s in stored
    ]
    # a pull the service refuses: the driver stops and names the call and the reason
    driver._push(
        world._start_us,
        "/v1/touches",
        {"hcp_id": "hcp-000001", "channel": "portal", "content_id": "p", "kind": "portal_view",
         "topics": ["astrology"]},
        "pull",
    )  # fmt: skip
    with pytest.raises(ViaError, match=r"POST /v1/touches: HTTP 422 .*'astrology'"):
        driver._deliver(until_us=None)
