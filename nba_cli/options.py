"""Click options shared by several commands (``nba logs export``, ``train``,
``evaluate``, ``promote``), defined once so their help and validation agree."""

from __future__ import annotations

from datetime import datetime

import click

from nba.domain import ValidationError


def _parse_as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    from nba.logs.join import parse_as_of

    if value is None:
        return None
    try:
        return parse_as_of(value, where=None)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


as_of_option = click.option(
    "--as-of",
    "as_of",
    default=None,
    callback=_parse_as_of,
    metavar="DATE|DATETIME",
    help="Outcomes known up to this time (YYYY-MM-DD = its end, or ISO 8601 with a zone); "
    "decisions whose reward window is open then are left out. Default: the log's "
    "manifest as_of (store export, simulator), else its latest outcome.",
)
