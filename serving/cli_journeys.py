"""``nba journeys``: the journeys file's schema, validation, and the versions in
the service's event store (the same functions as ``/v1/journeys``,
:mod:`serving.journeys`). A bad file is refused naming its line and key, and
nothing is stored.
"""

from __future__ import annotations

from pathlib import Path

import click

from serving.cli_rules import STORE, WHO, _store, _who

CATALOG = click.option(
    "--catalog",
    "catalog_path",
    envvar="NBA_CATALOG_PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog naming the topics journeys may use (NBA_CATALOG_PATH; default: packaged).",
)


def _topics(catalog_path: Path | None) -> tuple[str, ...]:
    from nba.catalog import Catalog

    return (Catalog.load(catalog_path) if catalog_path else Catalog.default()).topics


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: cannot read: {exc}") from None


@click.group("journeys")
def journeys() -> None:
    """Journeys: JSON schema, validate, show, apply, history, rollback."""


@journeys.command("schema")
def schema_cmd() -> None:
    """Print the JSON schema of a journeys file (nba/data/journeys.schema.json)."""
    from nba.journeys import schema_text

    click.echo(schema_text(), nl=False)


@journeys.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@CATALOG
def validate_cmd(file: Path, catalog_path: Path | None) -> None:
    """Check FILE; print each journey and its steps, or the line and key that is wrong."""
    from nba.journeys import JourneysError, JourneySet

    try:
        js = JourneySet.loads(_read(file), source=str(file), topics=_topics(catalog_path))
    except JourneysError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: valid; {len(js.journeys)} journeys, version {js.version}")
    for j in js.journeys:
        where = f" on {', '.join(sorted(j.entry.channels))}" if j.entry.channels else ""
        click.echo(f"  {j.name} (priority {j.priority}): entry {j.entry.event}{where}")
        for k, st in enumerate(j.steps, start=1):
            topic = ", ".join(sorted(st.topics)) if st.topic == "list" else st.topic
            extra = f", until engaged (max {st.max_attempts})" if st.until_engaged else ""
            click.echo(
                f"    {j.label(k)} {st.name!r}: {', '.join(st.channels)} on {topic} topic, "
                f"{st.after_days[0]}-{st.after_days[1]} days after"
                f"{' (held before)' if st.hold else ''}{extra}"
            )


@journeys.command("show")
@STORE
def show_cmd(store_db: Path) -> None:
    """Print the TOML text of the journeys version in force."""
    from serving import journeys as lib
    from serving import store_rules

    with _store(store_db) as store:
        record = store_rules.get(store, table=lib.TABLE)
    if record is None:
        raise click.ClickException(f"{store_db}: no journeys version is stored yet")
    click.echo(record.text, nl=False)


@journeys.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--comment", required=True, help="Why the journeys change (required).")
@STORE
@CATALOG
@WHO
def apply_cmd(
    file: Path, comment: str, store_db: Path, catalog_path: Path | None, who: str | None
) -> None:
    """Validate FILE and put it in force as a new version (a running service picks it up)."""
    from nba.journeys import JourneysError
    from serving import journeys as lib
    from serving.rules import RulesChangeError
    from serving.store_rules import RulesConflictError

    text = _read(file)
    with _store(store_db) as store:
        try:
            stored, js = lib.apply(
                store, text, who=_who(who), comment=comment, topics=_topics(catalog_path)
            )
        except (JourneysError, RulesChangeError, RulesConflictError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"journeys version {stored.version} ({js.version}) in force")


@journeys.command("history")
@STORE
def history_cmd(store_db: Path) -> None:
    """List the stored journeys versions, newest first."""
    from serving import journeys as lib

    with _store(store_db) as store:
        versions = lib.history(store)
    if not versions:
        click.echo("no journeys version is stored")
    for v in versions:
        click.echo(
            f"{v.version}\t{v.created.isoformat(timespec='seconds')}\t{v.who}\t{v.action}\t"
            f"{v.rules_hash}\t{v.comment}"
        )


@journeys.command("rollback")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--comment", required=True, help="Why (required).")
@STORE
@CATALOG
@WHO
def rollback_cmd(
    version: int, comment: str, store_db: Path, catalog_path: Path | None, who: str | None
) -> None:
    """Put the journeys of an earlier VERSION back in force, as a new version."""
    from serving import journeys as lib
    from serving.rules import RulesChangeError

    with _store(store_db) as store:
        try:
            stored, js = lib.rollback(
                store, version, who=_who(who), comment=comment, topics=_topics(catalog_path)
            )
        except RulesChangeError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"journeys version {stored.version} ({js.version}) in force")
