"""The console in a real browser: Debian's chromium (headless, driven by
Playwright) against a real ``nba serve`` on 127.0.0.1, with a real SQLite store
and a real MLflow registry holding a trained-and-gated model.

Every page renders without a console error and with every control labelled;
the main flows work end to end: a rep dismisses a suggestion and sees it gone
(and the service stored the dismissal with its reason); a rep cannot open
another territory's HCP; a marketer saves rules with an error and sees the
message inline, applies a valid change and sees the audit row, and rolls back;
a marketer starts with no journeys, saves a broken journeys file and sees its
key and line inline, applies a valid one and sees the history row, and the HCP
page shows where the HCP stands; logout ends the session. Screenshots are kept
under ``test-artifacts/console``.

With ``CI`` set the browser must be there (the test fails otherwise); without
it, a machine lacking /usr/bin/chromium skips these tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_kit import REP_KEYS, UNLABELLED_JS, console_env
from serving_testkit import HCP_BODY, KEYS, auth, start_server, stop_server

from nba.paths import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "console"
TABLET = {"width": 768, "height": 1024}

pytestmark = pytest.mark.slow


# module scope: the sync API keeps its event loop running in this thread until the
# ``with`` block ends, and while it runs any later test of the same worker that calls
# ``asyncio.run`` fails ("cannot be called from a running event loop")
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI is set but /usr/bin/chromium is missing (make chromium installs it)")
        pytest.skip("no /usr/bin/chromium on this machine (make chromium installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _trained_registry(tmp: Path) -> None:
    """A real registry: an (untrained) VW policy registered as challenger, put
    through the gate, and an evaluation run, all on simulated logs."""
    from click.testing import CliRunner

    from nba.catalog import Catalog
    from nba.policies.vw import VWConfig, VWPolicy
    from nba.reward import RewardDefinition
    from nba_cli.main import main as nba_main
    from simulators.hcp.world import simulate

    logs = tmp / "logs"
    simulate(hcps=300, days=5, policy="uniform", seed=5, out=logs)
    import mlflow

    from training.mlflow_utils import experiment_id, log_policy_model
    from training.promote import promote

    with mlflow.start_run(experiment_id=experiment_id("train")):
        policy = VWPolicy(VWConfig(epsilon=0.05), catalog=Catalog.default(), seed=1)
        log_policy_model(policy, registered_name="nba", alias="challenger")
    promote(logs, RewardDefinition.default(), interval="gaussian")
    res = CliRunner().invoke(
        nba_main,
        [
            "evaluate",
            "--logs",
            str(logs),
            "--policy",
            "models:/nba@challenger",
            "--estimator",
            "snips",
            "--interval",
            "gaussian",
        ],
    )
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, empty_mlflow_store: Path) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console")
    shutil.copy(empty_mlflow_store, tmp / "mlflow.db")
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking)
        mp.setenv("NBA_DATA_DIR", str(tmp / "data"))
        _trained_registry(tmp)
    proc, base = start_server(
        tmp, NBA_MODEL_URI="models:/nba@champion", NBA_RULES_CHECK_MS="0", **console_env()
    )
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            for h in ("H1", "H2", "H3", "H4", "H5"):
                r = c.put(f"/v1/hcps/{h}", json=HCP_BODY, headers=auth("report"))
                assert r.status_code == 201, r.text
            since = str(datetime.now(UTC).date() - timedelta(days=30))
            for rep, hcps in (("R1", ["H1", "H2", "H3"]), ("R2", ["H4", "H5"])):
                body = {"capacity_per_day": 3, "hcp_ids": hcps, "effective_from": since}
                r = c.put(f"/v1/reps/{rep}", json=body, headers=auth("admin"))
                assert r.status_code == 201, r.text
        yield base
    finally:
        stop_server(proc)


class Visit:
    """One logged-in browser context that checks every page it opens."""

    def __init__(self, browser: Any, base: str, who: str) -> None:
        self.base = base
        self.who = who
        self.ctx = browser.new_context(viewport=TABLET, base_url=base)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.shots = 0

    def login(self, key: str) -> None:
        self.page.goto("/console")
        assert "/console/login" in self.page.url
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state()
        assert "/console/login" not in self.page.url, self.page.content()

    def check(self, name: str, expect_errors: bool = False) -> None:
        """No console error (unless the page is an expected 4xx), every control
        labelled, no sideways scrolling at tablet width; a screenshot kept."""
        if not expect_errors:
            assert self.errors == [], self.errors
        self.errors.clear()
        unlabelled = self.page.evaluate(UNLABELLED_JS)
        assert unlabelled == [], (name, unlabelled)
        overflow = self.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, (name, f"{overflow}px wider than a tablet")
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=str(ARTIFACTS / f"{self.who}-{self.shots:02d}-{name}.png"), full_page=True
        )

    def open(self, path: str, name: str, status: int = 200) -> None:
        resp = self.page.goto(path)
        assert resp is not None and resp.status == status, (path, resp and resp.status)
        self.check(name, expect_errors=status >= 400)

    def close(self) -> None:
        self.ctx.close()


def test_checker_finds_an_unlabelled_control(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content(
            '<label for="a">A</label><input id="a"><input id="b"><button></button>'
            '<img src="data:,"><button aria-label="Go"></button>'
        )
        bad = page.evaluate(UNLABELLED_JS)
    finally:
        page.close()
    assert len(bad) == 3 and 'id="b"' in bad[0] and "<button>" in bad[1] and "<img" in bad[2]


def test_rep_day_feedback_territory_and_logout(browser: Any, server: str) -> None:
    v = Visit(browser, server, "rep")
    page = v.page
    try:
        v.login(REP_KEYS["R1"])
        assert page.url.endswith("/console/reps/R1")
        v.check("day")
        cards = page.locator("li.suggestion")
        assert cards.count() == 3
        assert page.locator("ul.reasons li").count() >= 3  # every suggestion has reasons
        first = cards.nth(0)
        event = first.get_attribute("data-event")
        hcp = first.locator("h3 a").inner_text().removeprefix("HCP ")
        first.get_by_label("Reason").select_option("already_discussed")
        first.get_by_role("button", name="Dismiss").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text() == "Saved: dismissed."
        assert page.locator(f'li.suggestion[data-event="{event}"]').count() == 0
        assert page.locator("li.suggestion").count() == 2
        assert hcp in page.locator("ul.done").inner_text()
        v.check("after-dismiss")
        # the service stored it: the HCP's timeline shows the dismissal and its reason
        tl = httpx.get(f"{server}/v1/hcps/{hcp}/timeline", headers=auth("report")).json()
        fb = [i for i in tl["items"] if i["type"] == "feedback"]
        assert [(i["event_id"], i["outcome_type"], i["reason_code"]) for i in fb] == [
            (event, "dismissed", "already_discussed")
        ]
        # snooze the next one; accept the last
        nxt = page.locator("li.suggestion").nth(0)
        nxt.get_by_role("button", name="Snooze").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text() == "Saved: snoozed."
        page.locator("li.suggestion").nth(0).get_by_role("button", name="Accept").click()
        page.wait_for_load_state()
        assert page.locator("li.suggestion").count() == 0
        assert page.get_by_text("No open suggestion for today.").is_visible()

        # the HCP timeline before a visit: own territory opens, another's does not
        page.get_by_role("link", name="HCP H1").first.click()
        page.wait_for_load_state()
        assert page.url.endswith("/console/hcps/H1")
        assert page.locator("table tbody tr").count() >= 1
        v.check("timeline")
        v.open("/console/hcps/H4", "other-territory", status=403)
        assert "outside the territory" in page.get_by_role("alert").inner_text()
        v.open("/console/reps/R2", "other-rep", status=403)
        v.open("/console/rules", "rep-no-rules", status=403)
        assert page.get_by_role("link", name="Rules").count() == 0  # not in its menu

        # logout: the cookie no longer opens anything
        page.get_by_role("button", name="Log out").click()
        page.wait_for_load_state()
        assert "/console/login" in page.url
        assert page.get_by_role("status").inner_text() == "You are logged out."
        v.check("logged-out")
        page.goto("/console/reps/R1")
        assert "/console/login" in page.url
        page.screenshot(path=str(ARTIFACTS / "rep-final-login.png"))
    finally:
        v.close()


def test_marketer_and_data_scientist_pages(browser: Any, server: str) -> None:
    v = Visit(browser, server, "admin")
    page = v.page
    try:
        v.login(KEYS["admin"])
        for path, name in (
            ("/console", "home"),
            ("/console/kpis", "kpis"),
            ("/console/kpis?days=30&alpha=0.1", "kpis-30"),
            ("/console/catalog", "catalog"),
            ("/console/catalog?market=US", "catalog-us"),
            ("/console/journeys", "journeys"),
            ("/console/rep", "rep-pick"),
            ("/console/reps/R2", "rep-r2"),
            ("/console/hcps/H4", "hcp-h4"),
        ):
            v.open(path, name)
        v.open("/console/kpis", "kpis-again")
        assert page.locator("svg.chart").count() == 2
        assert (page.locator("svg.chart title").first.text_content() or "").startswith(
            "Engagement rate"
        )

        # the data scientist's page: versions and aliases, the gate, the evaluation
        v.open("/console/models", "models")
        versions = page.locator("#versions tbody tr")
        assert versions.count() == 1
        assert set(versions.locator(".tag").all_inner_texts()) == {"champion", "challenger"}
        gate = page.locator("#gates tbody tr")
        assert gate.count() == 1
        assert "promoted" in gate.inner_text() and "snips gaussian" in gate.inner_text()
        assert page.get_by_role("heading", name="Latest evaluation (nba evaluate)").is_visible()
        img = page.get_by_alt_text("Latest evaluation (nba evaluate): estimates.png")
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")

        # rules: an error is shown inline, nothing is applied
        v.open("/console/rules", "rules")
        history = page.locator("#history tbody tr")
        assert history.count() == 1
        text = page.get_by_label("Rules (TOML)").input_value()
        assert "days = 21" in text
        page.get_by_label("Rules (TOML)").fill(text.replace("days = 21", "days = -21", 1))
        page.get_by_label("Why (required to apply)").fill("shorter repeat window")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_load_state()
        error = page.locator("#rules-error")
        assert error.is_visible() and "repeat" in error.inner_text()
        assert "line" in error.inner_text()
        assert page.get_by_label("Rules (TOML)").get_attribute("aria-invalid") == "true"
        assert "days = -21" in page.get_by_label("Rules (TOML)").input_value()  # kept
        assert page.locator("#history tbody tr").count() == 1
        v.check("rules-error", expect_errors=True)  # the page answered 422

        # a valid change: diff, dry run, apply, audit row
        page.get_by_label("Rules (TOML)").fill(text.replace("days = 21", "days = 28", 1))
        page.get_by_role("button", name="Check and diff").click()
        page.wait_for_load_state()
        diff = page.get_by_label("Diff of the proposed rules").inner_text()
        assert "-days = 21" in diff and "+days = 28" in diff
        page.get_by_role("button", name="Dry run (last 7 days)").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Dry run").is_visible()
        assert "decisions replayed" in page.locator("main").inner_text()
        v.check("rules-dry-run")
        page.get_by_label("Why (required to apply)").fill("repeat window four weeks")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_load_state()
        assert page.locator("#applied").inner_text() == "Version 2 applied and in force."
        top = page.locator("#history tbody tr").first
        assert "admin-client" in top.inner_text() and "repeat window four weeks" in top.inner_text()
        assert "(in force)" in top.inner_text()
        v.check("rules-applied")
        rules = httpx.get(f"{server}/v1/rules", headers=auth("report")).json()
        assert rules["store_version"] == 2 and "days = 28" in rules["text"]

        # history: diff an older version and roll back to it
        page.get_by_role("link", name="vs in force").click()
        page.wait_for_load_state()
        assert "+days = 21" in page.get_by_label("Diff to version 1").inner_text()
        page.get_by_label("Why roll back").fill("back to three weeks")
        page.get_by_role("button", name="Roll back to version 1").click()
        page.wait_for_load_state()
        assert page.locator("#applied").inner_text() == "Version 3 applied and in force."
        assert "rollback" in page.locator("#history tbody tr").first.inner_text()
        v.check("rules-rolled-back")
    finally:
        v.close()
    if os.environ.get("NBA_CONSOLE_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "rep-01-day.png", PROJECT_ROOT / "docs" / "console.png")


def test_marketer_journeys_flow(browser: Any, server: str) -> None:
    example = (PROJECT_ROOT / "nba" / "data" / "journeys.toml").read_text(encoding="utf-8")
    broken = example.replace("after_days = [2, 5]", "after_days = [5, 2]", 1)
    line = 1 + broken.splitlines().index("after_days = [5, 2]")
    v = Visit(browser, server, "journeys")
    page = v.page
    try:
        v.login(KEYS["admin"])
        v.open("/console/journeys", "journeys-none")
        assert "No journeys are in force" in page.locator("#no-journeys").inner_text()
        assert page.locator("#history").count() == 0
        editor = page.get_by_label("Journeys (TOML)")
        assert editor.input_value() == ""

        # a broken file: the error names the key and the line, nothing is applied
        editor.fill(broken)
        page.get_by_label("Why (required to apply)").fill("follow up webinars")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_load_state()
        error = page.locator("#journeys-error")
        assert error.is_visible()
        assert f"line {line}" in error.inner_text()
        assert "journeys.0.steps.0.after_days" in error.inner_text()
        assert page.get_by_label("Journeys (TOML)").get_attribute("aria-invalid") == "true"
        assert "after_days = [5, 2]" in page.get_by_label("Journeys (TOML)").input_value()
        assert page.locator("#history").count() == 0
        v.check("journeys-error", expect_errors=True)  # the page answered 422
        got = httpx.get(f"{server}/v1/journeys", headers=auth("report")).json()
        assert got["version"] is None and got["journeys"] == []

        # a valid file: applied, the history row says who, what and why
        page.get_by_label("Journeys (TOML)").fill(example)
        page.get_by_label("Why (required to apply)").fill("follow up webinars")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_load_state()
        assert page.locator("#applied").inner_text() == "Version 1 applied and in force."
        rows = page.locator("#history tbody tr")
        assert rows.count() == 1
        row = rows.first.inner_text()
        assert "admin-client" in row and "apply" in row and "follow up webinars" in row
        assert "(in force)" in row
        followup = page.get_by_role("article", name="webinar-followup priority 20")
        assert "window 2 to 5 days after the entry" in followup.inner_text()
        v.check("journeys-applied")
        got = httpx.get(f"{server}/v1/journeys", headers=auth("report")).json()
        assert got["version"] == 1 and got["who"] == "admin-client"

        # the HCP page shows each journey's state for that HCP
        v.open("/console/hcps/H1", "hcp-journeys")
        states = page.locator("#hcp-journeys tbody tr")
        assert states.count() == 2
        assert "webinar-followup" in states.first.inner_text()
    finally:
        v.close()
