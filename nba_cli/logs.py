"""``nba logs``: export joined decisions (Parquet or DSJSON), import DSJSON logs.

Thin entry point: parses options, calls :mod:`nba.logs.join` and
:mod:`nba.logs.dsjson`, prints counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nba.domain import ValidationError
from nba_cli.options import as_of_option, engine_options, resolve_engine
from serving.cli_store import STORE

if TYPE_CHECKING:
    from nba.logs.engine import SqlEngine
    from nba.logs.join import JoinResult
    from nba.reward import RewardDefinition


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


_F = TypeVar("_F", bound=Callable[..., Any])


def _without_collector(command: _F) -> _F:
    """Run ``command`` with Python's cyclic garbage collector off.

    The export allocates many short-lived containers (about 190 collections,
    0.09 CPU s, for 14,000 decisions), none of them in cycles that must be freed
    before the command ends: the collector is on again afterwards, and collects
    what is left (:func:`serving.heap.paused`: back on in a ``finally``, and only
    when it was on before).
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from serving.heap import paused  # the service's pause, shared by threads

        with paused():
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]


def _load_reward_def(path: Path | None) -> RewardDefinition:
    from nba.reward import RewardDefinition

    return RewardDefinition.default() if path is None else RewardDefinition.load(path)


def _joined_from_source(
    logs: Path | None,
    reward_def: RewardDefinition,
    since: date | None,
    until: date | None,
    activated_only: bool,
    store: Path | None = None,
    as_of: datetime | None = None,
    engine: SqlEngine | None = None,
) -> tuple[JoinResult, Path | None]:
    """The joined decisions and the directory holding their catalog snapshots.

    Each source (today: a Parquet log directory) is one branch here; a new
    source (e.g. the service's event store) adds an option and a branch. A
    store is exported first; its manifest's export time is the default ``as_of``.
    """
    from nba.logs.join import load_joined

    if logs is not None and store is not None:
        raise click.UsageError("give either --logs DIR or --store DB, not both")
    if store is not None:
        # the store's decisions go through the same join as any log directory
        logs = _store_to_log_dir(store, since, until)
    if logs is not None:
        result = load_joined(
            logs,
            reward_def,
            since=since,
            until=until,
            activated_only=activated_only,
            as_of=as_of,
            engine=engine,
        )
        return result, logs
    raise click.UsageError("give the source of the decisions: --logs DIR or --store DB")


def _open_store(store: Path | str) -> Any:
    from serving.cli_store import store_exists
    from serving.store import EventStore

    if not store_exists(store):
        raise click.UsageError(f"--store: no event store database at {store}")
    return EventStore(store)


def _store_to_log_dir(store: Path | str, since: date | None, until: date | None) -> Path:
    """Export the service's event store into a temporary log directory (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="nba-store-export-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    _open_store(store).export(tmp, since=since, until=until)
    return tmp


@click.group()
def logs() -> None:
    """Event-log tools: reward join, Parquet and DSJSON export, DSJSON import."""


@logs.command("export")
@click.option(
    "--logs",
    "logs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Log directory (decisions/, outcomes/, catalog/).",
)
@click.option(
    "--store",
    "store_db",
    type=STORE,
    default=None,
    help="The service's event store (SQLite file or postgresql:// URL) instead of --logs.",
)
@click.option(
    "--reward-def",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Reward definition TOML (default: the packaged engagement definition).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "dsjson", "log"]),
    default=None,
    help="parquet: the joined table; dsjson: one VW DSJSON line per decision; "
    "log: the raw Parquet event log directory (with --store; the default then).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output file (parquet, dsjson) or log directory (log).",
)
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (inclusive)."
)
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (inclusive)."
)
@as_of_option
@click.option(
    "--include-inactive",
    is_flag=True,
    help="Keep deferred decisions that were never activated (DSJSON marks them _skipLearn).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@engine_options
@_without_collector
def export_cmd(
    logs_dir: Path | None,
    store_db: Path | None,
    reward_def: Path | None,
    fmt: str | None,
    out: Path,
    since: datetime | None,
    until: datetime | None,
    as_of: datetime | None,
    include_inactive: bool,
    quiet: bool,
    engine: str,
    spark_master: str | None,
) -> None:
    """Join decisions to their reward and write them as Parquet or DSJSON, or write
    the service's event store (--store) out as a Parquet event log (--format log)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from nba.logs import io
    from nba.logs.dsjson import export_dsjson, load_catalogs, window_pulls
    from nba.logs.dsjson_engine import LineExtras, export_dsjson_on_engine, lines_on_engine

    if fmt is None:
        if store_db is None:
            raise click.UsageError("missing option --format (parquet or dsjson)")
        fmt = "log"
    if fmt == "log":
        if store_db is None or logs_dir is not None:
            raise click.UsageError("--format log exports an event store: give --store DB only")
        if as_of is not None:
            raise click.UsageError(
                "--as-of does not apply to --format log: the export records its own time"
            )
        if engine != "duckdb" or spark_master is not None:
            raise click.UsageError(
                "--engine/--spark-master do not apply to --format log: it joins nothing"
            )
        from nba.logs.join import format_as_of, manifest_as_of

        try:
            counts = _open_store(store_db).export(out, since=_day(since), until=_day(until))
            recorded = manifest_as_of(out)
        except ValidationError as exc:
            raise click.ClickException(str(exc)) from exc
        for key, value in counts.items():
            click.echo(f"{key}: {value}")
        if recorded is not None:
            click.echo(f"as_of {format_as_of(recorded)} (store export time, in manifest.json)")
        click.echo(f"wrote the event log to {out}")
        return
    if out.is_dir():
        raise click.UsageError(f"--out {out} is a directory; --format {fmt} writes a file")
    sql_engine = resolve_engine(engine, spark_master)
    try:
        rd = _load_reward_def(reward_def)
        result, catalog_dir = _joined_from_source(
            logs_dir,
            rd,
            _day(since),
            _day(until),
            activated_only=not include_inactive,
            store=store_db,
            as_of=as_of,
            engine=sql_engine,
        )
        table = result.table
        written = table.num_rows
        if fmt == "parquet":
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp")
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(out)
        else:
            versions = table.column("catalog_version").unique().to_pylist()
            catalogs = load_catalogs(catalog_dir, versions) if catalog_dir is not None else {}
            # imported decisions carry their own features ({"dsjson": ...}): no catalog needed
            native = table.filter(pc.invert(pc.starts_with(table.column("context"), '{"dsjson"')))
            needed = set(native.column("catalog_version").unique().to_pylist())
            missing = sorted(needed - set(catalogs))
            if missing:
                click.echo(
                    f"note: no catalog snapshot for {', '.join(missing)}; "
                    "featurizing with the packaged catalog where its version matches",
                    err=True,
                )
            if lines_on_engine(sql_engine) and catalog_dir is not None:
                # one SQL statement calls the line writer: Spark's executors make the
                # lines and write part files, concatenated in order into --out; the
                # engine reads the outcomes and touches each line carries itself
                written = export_dsjson_on_engine(
                    sql_engine,
                    catalog_dir,
                    table,
                    out,
                    catalogs,
                    LineExtras(rd.window_days, result.as_of, since=_day(since)),
                    progress=not quiet,
                )
            else:
                # outcomes about other suggestions than the chosen one travel in each
                # line, and so do the HCP's pull touches of each reward window
                outcomes, pulls = None, None
                if catalog_dir is not None:
                    outcomes = io.read(catalog_dir, "outcomes", since=_day(since))
                    touches = io.read(catalog_dir, "touches", since=_day(since))
                    pulls = window_pulls(touches, table, rd.window_days, result.as_of)
                written = export_dsjson(
                    table, out, catalogs, progress=not quiet, outcomes=outcomes, pulls=pulls
                )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"reward definition: {result.reward_definition}")
    if sql_engine.name != "duckdb":
        click.echo(f"join engine: {sql_engine.describe()}")
    if fmt == "dsjson":
        where = sql_engine.describe() if lines_on_engine(sql_engine) else "this process"
        click.echo(f"dsjson lines made by: {where}")
    for line in result.horizon_lines():
        click.echo(line)
    for key, value in result.counts.as_dict().items():
        click.echo(f"{key}: {value}")
    click.echo(f"wrote {written} decisions ({fmt}) to {out}")


@logs.command("import")
@click.option("--format", "fmt", type=click.Choice(["dsjson"]), default="dsjson", show_default=True)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def import_cmd(fmt: str, file: Path, out: Path) -> None:
    """Import a DSJSON log (VW, Personalizer exports) into decisions + outcomes."""
    from nba.logs.dsjson import import_dsjson

    try:
        res = import_dsjson(file, out)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"lines: {res.lines}")
    click.echo(f"decisions: {res.decisions.num_rows}")
    click.echo(f"not_activated: {res.not_activated}")
    click.echo(f"outcomes: {res.outcomes.num_rows}")
    click.echo(f"touches: {res.touches.num_rows}")
    click.echo(f"wrote to {out}")
