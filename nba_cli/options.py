"""Click options shared by several commands (``nba logs export``, ``train``,
``evaluate``, ``promote``), defined once so their help and validation agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nba.domain import ValidationError

if TYPE_CHECKING:
    from nba.logs.engine import SqlEngine

F = TypeVar("F", bound=Callable[..., Any])


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


def _check_master(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from nba.logs.engine import check_spark_master

    if value is None:
        return None
    try:
        return check_spark_master(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def engine_options(func: F) -> F:
    """``--engine duckdb|spark`` and ``--spark-master URL`` (docs/pipeline.md)."""
    func = click.option(
        "--spark-master",
        "spark_master",
        default=None,
        callback=_check_master,
        metavar="URL",
        help="Spark master for --engine spark: local[N] (default local[2]), "
        "spark://HOST:PORT, k8s://URL or yarn.",
    )(func)
    return click.option(
        "--engine",
        "engine",
        type=click.Choice(["duckdb", "spark"]),
        default="duckdb",
        show_default=True,
        help="Where the reward join's SQL runs: embedded DuckDB, or Spark SQL (pyspark and "
        "Java needed); the same SQL and the same results.",
    )(func)


def resolve_engine(engine: str, spark_master: str | None) -> SqlEngine:
    """The engine of ``--engine`` / ``--spark-master``, or a usage error naming the flag
    (a master without ``--engine spark``, a missing pyspark or Java)."""
    from nba.logs.engine import get_engine

    try:
        return get_engine(engine, spark_master)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
