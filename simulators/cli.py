"""``nba simulate``: run the simulated HCP world and write its event log."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import click
from click.core import ParameterSource

from nba.domain import ValidationError

POLICIES = ("uniform", "campaign", "segment", "oracle")


def _parse_policy(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in POLICIES or value == "vw" or value.startswith(("vw:", "vw@")):
        return value
    raise click.BadParameter(
        f"{value!r} is not one of {', '.join(POLICIES)}, 'vw' or 'vw:CONFIG' "
        "(a preset: epsilon, squarecb, bag, cover, softmax; or a .toml/.json VW config), "
        "optionally followed by @Nd"
    )


def _parse_date(ctx: click.Context, param: click.Parameter, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--hcps",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Number of simulated HCPs.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Number of simulated days.",
)
@click.option(
    "--policy",
    default="campaign",
    show_default=True,
    callback=_parse_policy,
    help="Logging policy: uniform, campaign, segment, oracle, or vw[:CONFIG], a VW "
    "contextual bandit learning online in the loop (CONFIG: a preset epsilon, squarecb, "
    "bag, cover, softmax, or a .toml/.json VW config; docs/push_vs_pull.md); append @Nd "
    "to learn each decision N days after it with a delay-corrected label.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Log directory to create (must not already hold logs). Required unless --via; "
    "with --via, where the driver's record (served.parquet, via_summary.json) goes.",
)
@click.option(
    "--start",
    default="2026-01-05",
    show_default=True,
    callback=_parse_date,
    help="First simulated day (YYYY-MM-DD).",
)
@click.option(
    "--epsilon",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Uniform exploration share [default: campaign/segment 0.1, oracle 0; uniform ignores it].",
)
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Catalog TOML file [default: the shipped catalog].",
)
@click.option(
    "--reward-def",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Reward definition TOML [default: the shipped definition].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file overriding WorldConfig fields (docs/simulator.md).",
)
@click.option(
    "--via",
    metavar="URL",
    default=None,
    help="Drive a running decision service at URL as the rep app, the email platform "
    "and the CRM would (decisions, outcomes, touches over HTTP); the log lives in its "
    "store (nba logs export --store). The service must run with NBA_ALLOW_CLIENT_TIME=true.",
)
@click.option(
    "--api-key",
    envvar="NBA_API_KEY",
    default=None,
    help="API key for --via (scopes decide and report) [env: NBA_API_KEY].",
)
@click.option(
    "--via-concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="With --via: threads posting the outcomes and touches due at the same simulated "
    "time (1 posts them strictly in time order).",
)
@click.option(
    "--rules",
    "rules_file",
    metavar="FILE|default",
    default=None,
    help="Apply contact rules (nba.contact) to every decision, as serving does: a rules "
    "TOML/YAML file, or 'default' for the shipped nba/data/rules.toml [default: none].",
)
@click.option(
    "--journeys",
    "journeys_file",
    metavar="FILE|default",
    default=None,
    help="Apply journeys (nba.journeys, docs/journeys.md) after the contact rules, as "
    "the service does; needs --rules. 'default': the example nba/data/journeys.toml.",
)
@click.option(
    "--horizon-cut",
    is_flag=True,
    help="Write the log as a store export at the end of the last simulated day would "
    "hold it: outcomes after that time withheld, manifest as_of set to it (ground "
    "truth still covers every decision).",
)
@click.option(
    "--slate-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Suggestions per decision: slots 2..k are drawn without replacement and logged "
    "in the decisions' slate; HCPs respond to any slot (docs/simulator.md, 'Slates').",
)
@click.option(
    "--slot-attention",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=0.5,
    show_default=True,
    help="Chance an HCP looks at slot j is slot_attention ** (j - 1).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def simulate(
    ctx: click.Context,
    hcps: int,
    days: int,
    policy: str,
    seed: int,
    out: Path,
    start: date,
    epsilon: float | None,
    catalog: Path | None,
    reward_def: Path | None,
    config_file: Path | None,
    via: str | None,
    api_key: str | None,
    via_concurrency: int,
    rules_file: str | None,
    journeys_file: str | None,
    horizon_cut: bool,
    slate_size: int,
    slot_attention: float,
    quiet: bool,
) -> None:
    """Simulate HCPs responding to a logging policy; write decisions, outcomes,
    touches, ground truth, catalog snapshot, population and manifest to OUT.
    With --via URL, the running service at URL is the policy and keeps the log."""
    from simulators.hcp.config import WorldConfig

    if via is not None:
        if rules_file is not None:
            raise click.UsageError(
                "--rules does not apply with --via: the service applies its own rules"
            )
        if journeys_file is not None:
            raise click.UsageError(
                "--journeys does not apply with --via: the service applies its own journeys"
            )
        if horizon_cut:
            raise click.UsageError(
                "--horizon-cut does not apply with --via: the log lives in the service's "
                "store; nba logs export --store records its export time"
            )
        if slate_size != 1:
            raise click.UsageError(
                "--slate-size does not apply with --via: the simulated HCPs respond to the "
                "service's chosen action only"
            )
        _simulate_via(
            ctx,
            via,
            api_key,
            hcps,
            days,
            seed,
            out,
            start,
            catalog,
            config_file,
            via_concurrency,
            quiet,
        )
        return
    if ctx.get_parameter_source("via_concurrency") is not ParameterSource.DEFAULT:
        raise click.UsageError("--via-concurrency applies only with --via")
    if out is None:
        raise click.UsageError("Missing option '--out' (required unless --via).")
    from simulators.hcp.world import simulate as run

    learner = None
    if policy not in POLICIES and epsilon is not None:
        raise click.UsageError(
            "--epsilon does not apply to vw policies: set exploration in the VW config"
        )
    t0 = time.perf_counter()
    try:
        config = None if config_file is None else WorldConfig.load(config_file)
        rules = None
        if rules_file is not None:
            from nba.contact import ContactPolicy

            rules = (
                ContactPolicy.default()
                if rules_file == "default"
                else ContactPolicy.load(rules_file)
            )
        journeys = None
        if journeys_file is not None:
            from nba.catalog import Catalog
            from nba.journeys import JourneySet

            if rules is None:
                raise click.UsageError(
                    "--journeys applies after the contact rules, as in the service: "
                    "add --rules default (or a rules file)"
                )
            topics = (Catalog.default() if catalog is None else Catalog.load(catalog)).topics
            journeys = (
                JourneySet.default()
                if journeys_file == "default"
                else JourneySet.load(journeys_file, topics=topics)
            )
        if policy not in POLICIES:
            from nba.catalog import Catalog
            from simulators.hcp.learning import VWBatchPolicy

            cat = Catalog.default() if catalog is None else Catalog.load(catalog)
            learner = VWBatchPolicy.from_spec(policy, catalog=cat, seed=seed)
        summary = run(
            config=config,
            hcps=hcps,
            days=days,
            policy=learner or policy,
            seed=seed,
            out=out,
            start=start,
            epsilon=epsilon,
            catalog=catalog,
            reward_definition=reward_def,
            progress=not quiet,
            rules=rules,
            journeys=journeys,
            horizon_cut=horizon_cut,
            slate_size=slate_size,
            slot_attention=slot_attention,
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    elapsed = time.perf_counter() - t0
    click.echo(summary.format())
    click.echo(_horizon_line(out))
    if learner is not None:
        click.echo(learner.describe())
        learner.close()
    click.echo(
        f"{summary.decisions} decisions in {elapsed:.1f} s "
        f"({summary.decisions / max(elapsed, 1e-9):,.0f} decisions/s) "
        f"at {datetime.now().astimezone().isoformat(timespec='seconds')}"
    )


def _horizon_line(out: Path) -> str:
    """What the manifest says about the reward horizon of the log just written."""
    from nba.logs.join import format_as_of, manifest_as_of, read_manifest

    m = read_manifest(out)
    as_of = manifest_as_of(out)
    at = "?" if as_of is None else format_as_of(as_of)
    if m.get("horizon_cut"):
        return (
            f"horizon cut: {m.get('outcomes_withheld', 0)} outcomes after {at} withheld; "
            f"manifest as_of {at}"
        )
    return f"outcomes complete: manifest as_of {at} (every reward window closed by then)"


def _simulate_via(
    ctx: click.Context,
    via: str,
    api_key: str | None,
    hcps: int,
    days: int,
    seed: int,
    out: Path | None,
    start: date,
    catalog: Path | None,
    config_file: Path | None,
    concurrency: int,
    quiet: bool,
) -> None:
    """``nba simulate --via URL``: the world drives the service over HTTP."""
    from simulators.hcp.config import WorldConfig
    from simulators.via_http import drive

    for name in ("policy", "epsilon", "reward_def"):
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(
                f"{flag} does not apply with --via: the service decides and its "
                "reward definition scores the log"
            )
    try:
        config = None if config_file is None else WorldConfig.load(config_file)
        summary, _ = drive(
            via,
            hcps=hcps,
            days=days,
            seed=seed,
            api_key=api_key,
            start=start,
            catalog=catalog,
            config=config,
            out=out,
            progress=not quiet,
            concurrency=concurrency,
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.format())
    if out is not None:
        click.echo(f"driver record written to {out}")
