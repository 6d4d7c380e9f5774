"""``nba report --since --until --out DIR [--store PATH]``: the brand manager's
weekly markdown + PNG report (serving/report.py) from the service's event store.

The store is only read. ``--holdout-policy`` must say what the holdout got
(the service's ``NBA_HOLDOUT_POLICY``): it is the off-policy target.
"""

from __future__ import annotations

from pathlib import Path

import click

from serving.cli_store import STORE, STORE_HELP, store_exists

HOLDOUT_CHOICES = ("uniform", "campaign", "no_contact")


@click.command("report")
@click.option("--since", required=True, help="First day (YYYY-MM-DD) or ISO time with zone.")
@click.option("--until", required=True, help="Last day (inclusive) or exclusive ISO time.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for report.md, kpis.png and kpis.json (created).",
)
@click.option(
    "--store",
    "store_db",
    type=STORE,
    default=None,
    help=f"The service's event store ({STORE_HELP}; default: NBA_STORE_URL, else "
    "NBA_STORE_PATH, else data/events.db).",
)
@click.option(
    "--value-def",
    "value_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Business value definition (default: NBA_VALUE_PATH, else nba/data/value.toml).",
)
@click.option(
    "--holdout-policy",
    type=click.Choice(HOLDOUT_CHOICES),
    default=None,
    help="What the holdout got (default: NBA_HOLDOUT_POLICY, else uniform).",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog of the campaign holdout policy (default: packaged).",
)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05)
def report(
    since: str,
    until: str,
    out_dir: Path,
    store_db: Path | str | None,
    value_path: Path | None,
    holdout_policy: str | None,
    catalog_path: Path | None,
    alpha: float,
) -> None:
    """Weekly KPI and lift report (markdown + PNG) from the service's event store."""
    import os

    from nba.catalog import Catalog
    from nba.domain import ValidationError
    from nba.paths import data_dir
    from nba.policies.registry import create
    from nba.reward import RewardDefinition
    from serving.report import build, write
    from serving.store import EventStore
    from serving.store_kpis import parse_bound

    env_url = os.environ.get("NBA_STORE_URL")
    env_store = os.environ.get("NBA_STORE_PATH")
    db: Path | str
    if store_db is not None:
        db = store_db
    elif env_url:
        db = STORE.convert(env_url, None, None)
    else:
        db = Path(env_store) if env_store else data_dir() / "events.db"
    if not store_exists(db):
        raise click.UsageError(f"--store: no event store database at {db}")
    holdout = holdout_policy or os.environ.get("NBA_HOLDOUT_POLICY") or "uniform"
    if holdout not in HOLDOUT_CHOICES:
        raise click.UsageError(
            f"NBA_HOLDOUT_POLICY: {holdout!r} is not one of {', '.join(HOLDOUT_CHOICES)}"
        )
    try:
        lo = parse_bound(since, "--since", end=False)
        hi = parse_bound(until, "--until", end=True)
        env_value = os.environ.get("NBA_VALUE_PATH")
        vpath = value_path or (Path(env_value) if env_value else None)
        value = RewardDefinition.load(vpath) if vpath else RewardDefinition.business_value()
        target = (
            holdout
            if holdout == "no_contact"
            else create(
                holdout,
                catalog=Catalog.load(catalog_path) if catalog_path else Catalog.default(),
            )
        )
        with EventStore(db) as store:
            rep = build(store, lo, hi, value, target, alpha)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    paths = write(rep, out_dir)
    t = rep.by_channel.total
    click.echo(
        f"report of {t.decisions} decisions ({rep.by_channel.since.date()} to "
        f"{rep.by_channel.until.date()}, end exclusive) written to "
        + ", ".join(str(p) for p in paths)
    )
