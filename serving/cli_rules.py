"""``nba rules``: validate, diff, dry-run, apply, list and roll back contact rules.

The store commands act on the service's event store, the same versions the HTTP
routes (``/v1/rules``) change, through the same functions (:mod:`serving.rules`):
a running service picks a change up without a restart. A bad file is refused
with its line and key and nothing is stored.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from serving.cli_store import STORE as STORE_TYPE
from serving.cli_store import STORE_HELP, store_exists

if TYPE_CHECKING:
    from nba.contact import ContactPolicy
    from serving.store import EventStore

STORE = click.option(
    "--store",
    "store_db",
    required=True,
    envvar=["NBA_STORE_URL", "NBA_STORE_PATH"],
    type=STORE_TYPE,
    help=f"The service's event store ({STORE_HELP}; NBA_STORE_URL, else NBA_STORE_PATH).",
)
FEATURES = click.option(
    "--features",
    "features_path",
    envvar="NBA_FEATURES_PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="HCP features config naming the allowed markets (NBA_FEATURES_PATH; default: packaged).",
)
WHO = click.option(
    "--who",
    default=None,
    help="Who applies the change, for the audit record (default: cli:<login name>).",
)


def _markets(features_path: Path | None) -> tuple[str, ...]:
    from nba.hcp_features import HCPFeatures

    feats = HCPFeatures.load(features_path) if features_path else HCPFeatures.default()
    return feats.markets


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _read_valid(file: Path, markets: tuple[str, ...]) -> tuple[str, ContactPolicy]:
    from nba.contact import ContactPolicy, RulesError

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: cannot read: {exc}") from None
    try:
        return text, ContactPolicy.loads(text, source=str(file), markets=markets)
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _store(store_db: Path | str) -> Iterator[EventStore]:
    from serving.store import EventStore

    if not store_exists(store_db):
        raise click.UsageError(f"--store: no event store database at {store_db}")
    with EventStore(store_db) as store:
        yield store


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("rules")
def rules() -> None:
    """Contact rules: validate, diff, dry-run, apply, history, rollback."""


@rules.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@FEATURES
def validate_cmd(file: Path, features_path: Path | None) -> None:
    """Check FILE; print its version and rule order, or the line and key that is wrong."""
    _, pol = _read_valid(file, _markets(features_path))
    click.echo(f"{file}: valid; version {pol.version}")
    click.echo(f"  global: {', '.join(pol.own_rule_names)}")
    for m, sub in pol.markets.items():
        click.echo(f"  {m}: {', '.join(sub.own_rule_names)}")


@rules.command("show")
@STORE
def show_cmd(store_db: Path) -> None:
    """Print the TOML text of the version in force."""
    from serving import store_rules

    with _store(store_db) as store:
        record = store_rules.get(store)
    if record is None:
        raise click.ClickException(f"{store_db}: no rules version is stored yet")
    click.echo(record.text, nl=False)


@rules.command("diff")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--version", type=click.IntRange(min=1), default=None, help="A stored version.")
@STORE
@FEATURES
def diff_cmd(
    file: Path | None, version: int | None, store_db: Path, features_path: Path | None
) -> None:
    """Diff the version in force against FILE (validated first), or against a stored
    ``--version`` (default: the one before it: what a rollback would change)."""
    from serving import store_rules
    from serving.rules import diff_text

    if file is not None and version is not None:
        raise click.UsageError("give FILE or --version, not both")
    with _store(store_db) as store:
        current = store_rules.get(store)
        if current is None:
            raise click.ClickException(f"{store_db}: no rules version is stored yet")
        if file is not None:
            text, pol = _read_valid(file, _markets(features_path))
            same = pol.version == current.rules_hash
            out = diff_text(current.text, text, f"version {current.version}", str(file))
        else:
            want = version if version is not None else current.version - 1
            target = store_rules.get(store, want) if want >= 1 else None
            if target is None:
                raise click.ClickException(f"no rules version {want} is stored")
            same = target.rules_hash == current.rules_hash
            out = diff_text(
                current.text, target.text, f"version {current.version}", f"version {want}"
            )
    click.echo(out, nl=False)
    if same:
        click.echo(f"(same rules as version {current.version} in force)")


@rules.command("dry-run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None,
    help="End of the replayed window, UTC (default: now).",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog for decisions whose snapshot is not stored (default: packaged).",
)
@STORE
@FEATURES
def dry_run_cmd(
    file: Path,
    days: float,
    until: datetime | None,
    catalog_path: Path | None,
    store_db: Path,
    features_path: Path | None,
) -> None:
    """How many decisions of the DAYS days before --until FILE's rules would change (JSON)."""
    from nba.catalog import Catalog
    from nba.contact import ContactPolicy
    from serving import store_rules
    from serving.rules import dry_run

    markets = _markets(features_path)
    _, proposed = _read_valid(file, markets)
    catalog = Catalog.load(catalog_path) if catalog_path else Catalog.default()
    with _store(store_db) as store:
        current = store_rules.get(store)
        if current is None:
            raise click.ClickException(f"{store_db}: no rules version is stored yet")
        in_force = ContactPolicy.loads(current.text, f"rules version {current.version}", markets)
        report = dry_run(
            store,
            in_force,
            proposed,
            now=until.replace(tzinfo=UTC) if until is not None else datetime.now(UTC),
            days=days,
            catalog=catalog,
            current_version=current.version,
        )
    click.echo(json.dumps(report.to_dict(), indent=1))


@rules.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--comment", required=True, help="Why the rules change (kept in the history).")
@click.option(
    "--expected-version",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse unless this version is still in force (the one you diffed against).",
)
@STORE
@FEATURES
@WHO
def apply_cmd(
    file: Path,
    comment: str,
    expected_version: int | None,
    store_db: Path,
    features_path: Path | None,
    who: str | None,
) -> None:
    """Validate FILE and put it in force as a new version (the service reloads it)."""
    from nba.contact import RulesError
    from serving import rules as rules_lib
    from serving import store_rules

    markets = _markets(features_path)
    text, _ = _read_valid(file, markets)
    with _store(store_db) as store:
        try:
            stored, _ = rules_lib.apply(
                store,
                text,
                who=_who(who),
                comment=comment,
                markets=markets,
                expected_version=expected_version,
            )
        except (RulesError, rules_lib.RulesChangeError, store_rules.RulesConflictError) as exc:
            raise _fail(exc) from None
    click.echo(
        f"rules version {stored.version} ({stored.rules_hash}) in force; applied by {stored.who}"
    )


@rules.command("history")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--diff", "with_diff", is_flag=True, help="Print each version's diff.")
@STORE
def history_cmd(limit: int, with_diff: bool, store_db: Path) -> None:
    """Stored versions, newest first: version, when, who, action, comment."""
    from serving import store_rules

    with _store(store_db) as store:
        versions = store_rules.history(store, limit)
    for i, v in enumerate(versions):
        mark = "*" if i == 0 else " "
        click.echo(
            f"{mark} {v.version:>4}  {v.created.isoformat(timespec='seconds')}  "
            f"{v.rules_hash}  {v.action:<8}  {v.who}  {v.comment}"
        )
        if with_diff and v.diff:
            click.echo(v.diff, nl=False)


@rules.command("rollback")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--comment", required=True, help="Why (kept in the history).")
@STORE
@FEATURES
@WHO
def rollback_cmd(
    version: int, comment: str, store_db: Path, features_path: Path | None, who: str | None
) -> None:
    """Put the rules of an earlier VERSION back in force (as a new version)."""
    from nba.contact import RulesError
    from serving import rules as rules_lib
    from serving import store_rules

    with _store(store_db) as store:
        try:
            stored, _ = rules_lib.rollback(
                store, version, who=_who(who), comment=comment, markets=_markets(features_path)
            )
        except (RulesError, rules_lib.RulesChangeError, store_rules.RulesConflictError) as exc:
            raise _fail(exc) from None
    click.echo(
        f"rules version {stored.version} ({stored.rules_hash}) in force: the rules of "
        f"version {version}; applied by {stored.who}"
    )
