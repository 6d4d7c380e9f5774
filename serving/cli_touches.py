"""``nba touches import FILE --store DB``: load a CLM/CRM activity file (Parquet or
CSV, the columns of ``POST /v1/touches:import``) into the service's event store.

The same reader and checks as the HTTP route (:mod:`serving.touch_import`): a bad
row stops the command with its row, column, value and what is allowed, and
nothing is stored; every HCP must already be in the store. The service may run
meanwhile: the store takes the write lock for the one transaction.
"""

from __future__ import annotations

from pathlib import Path

import click

from serving.cli_store import STORE, STORE_HELP, store_exists


@click.group("touches")
def touches() -> None:
    """Touches and interest signals in the service's event store."""


@touches.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--store",
    "store_db",
    required=True,
    type=STORE,
    help=f"The service's event store ({STORE_HELP}); it must exist and hold the HCPs.",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog whose channels and topics the rows must use (default: packaged).",
)
def import_cmd(file: Path, store_db: Path | str, catalog_path: Path | None) -> None:
    """Import FILE (Parquet or CSV) as touches: all rows or none."""
    from nba.catalog import Catalog
    from nba.domain import ValidationError
    from serving.store import EventStore
    from serving.touch_import import read_touches

    if not store_exists(store_db):
        raise click.UsageError(f"--store: no event store database at {store_db}")
    try:
        catalog = Catalog.load(catalog_path) if catalog_path else Catalog.default()
        rows = read_touches(file.read_bytes(), file.name, catalog)
        with EventStore(store_db) as store:
            n = store.add_touches(rows, known_hcps_only=True)
    except ValidationError as exc:
        raise click.ClickException(f"{file}: {str(exc).replace('touch ', 'row ', 1)}") from None
    click.echo(f"imported {n} touches from {file} into {store_db}")
