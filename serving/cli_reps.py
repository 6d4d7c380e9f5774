"""``nba reps import FILE --store DB``: load a territory alignment (Parquet or CSV, the
columns of ``POST /v1/reps:import``) into the service's event store.

The same reader and checks as the HTTP route (:mod:`serving.rep_import`,
:func:`serving.store_reps.import_alignment`): every bad row is listed, one line
each naming the row and the column, and nothing is stored; every HCP must already
be in the store. The service may run meanwhile: the store takes the write lock for
the one transaction.
"""

from __future__ import annotations

from pathlib import Path

import click

from serving.cli_store import STORE, STORE_HELP, store_exists


@click.group("reps")
def reps() -> None:
    """Reps, their capacity and territories in the service's event store."""


@reps.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--store",
    "store_db",
    required=True,
    type=STORE,
    help=f"The service's event store ({STORE_HELP}); it must exist and hold the HCPs.",
)
def import_cmd(file: Path, store_db: Path | str) -> None:
    """Import FILE (Parquet or CSV) as alignment rows: all rows or none."""
    from nba.domain import ValidationError
    from serving.rep_import import read_alignment
    from serving.store import EventStore
    from serving.store_reps import import_alignment

    if not store_exists(store_db):
        raise click.UsageError(f"--store: no event store database at {store_db}")
    try:
        changes, found = read_alignment(file.read_bytes(), file.name)
        with EventStore(store_db) as store:
            n = import_alignment(store, changes, found)
    except ValidationError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    click.echo(f"imported {n} alignment rows of {len(found)} rep(s) from {file} into {store_db}")
