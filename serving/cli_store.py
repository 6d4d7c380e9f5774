"""The ``--store`` option's type: an SQLite file's path or a PostgreSQL URL.

>>> STORE.convert("data/events.db", None, None)
PosixPath('data/events.db')
>>> STORE.convert("postgresql://nba@127.0.0.1:5432/nba", None, None)
'postgresql://nba@127.0.0.1:5432/nba'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

#: URL schemes of the PostgreSQL store (as :data:`serving.store.PG_SCHEMES`; repeated
#: here so that parsing options, and ``--help``, import no store module)
_PG_SCHEMES = ("postgresql://", "postgres://")

#: how the help texts name what ``--store`` takes
STORE_HELP = "SQLite file, or postgresql://user@host:port/db"


class StoreLocation(click.ParamType):
    """A ``postgresql://`` URL (checked, kept as text) or a file path (a :class:`Path`)."""

    name = "store"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):
            return value
        text = str(value)
        if text.startswith(("postgresql:", "postgres:")):
            if not text.startswith(_PG_SCHEMES):
                self.fail(f"{text!r} is not a postgresql://user@host:port/db URL", param, ctx)
            from serving.store import StoreError
            from serving.store_postgres import check_url

            try:
                return check_url(text)
            except StoreError as exc:
                self.fail(str(exc).replace("NBA_STORE_URL: ", ""), param, ctx)
        return Path(text)


STORE = StoreLocation()


def store_exists(location: Path | str) -> bool:
    """Whether a store is there: the SQLite file exists (a URL: assumed, the
    server answers when the store opens)."""
    if isinstance(location, str) and location.startswith(_PG_SCHEMES):
        return True
    return Path(location).is_file()
