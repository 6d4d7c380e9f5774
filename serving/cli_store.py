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

from serving.store import StoreError, is_store_url

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
            if not is_store_url(text):
                self.fail(f"{text!r} is not a postgresql://user@host:port/db URL", param, ctx)
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
    return is_store_url(location) or Path(location).is_file()
