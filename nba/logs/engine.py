"""The SQL engines of the log pipeline: DuckDB (embedded, the default) and Spark SQL.

The pipeline's SQL (:data:`nba.logs.join.JOIN_SQL` and its companions) is
written once, in DuckDB's dialect, with named parameters (``$window_us``).
:class:`DuckDBEngine` runs it as written, parameters bound by DuckDB.
:class:`SparkEngine` runs the same text through :func:`to_spark_sql`: sqlglot
parses it as DuckDB SQL, each parameter becomes a literal (an integer as
itself, a float as ``CAST(<repr> AS DOUBLE)``, which reads back the same
double), the few DuckDB functions Spark names otherwise are renamed
(``epoch_us`` -> ``unix_micros``), the input tables get the names of this
call's temporary views, and sqlglot writes Spark SQL. sqlglot keeps DuckDB's
semantics where the dialects differ silently (``ORDER BY x`` sorts nulls last
in DuckDB, first in Spark: the Spark text says ``NULLS LAST``).

Both engines take and give Arrow tables: :meth:`SqlEngine.run` registers the
inputs, runs every statement over them and returns one table per statement.
:func:`get_engine` builds one from the ``--engine`` / ``--spark-master`` of
the commands; a missing pyspark or Java is an :class:`EngineError` that says
what to install. The Spark session (one per process, :func:`spark_session`)
runs on the UTC time zone, binds a local driver to 127.0.0.1, and has no UI;
it never downloads anything (no ``spark.jars.packages``).

>>> print(to_spark_sql("SELECT epoch_us(ts) + $w AS t FROM x", {"w": 2}, {"x": "v1"}))
SELECT UNIX_MICROS(ts) + 2 AS t FROM v1 AS x
>>> DuckDBEngine().run({"x": pa.table({"a": [1, 2]})},
...     [("SELECT MAX(a) + $k AS s FROM x", {"k": 1})])[0].column("s").to_pylist()
[3]
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nba.logs.io import LogError

#: ``--engine`` values, the default first.
ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"
#: The master a Spark engine uses when none is given: two local cores.
DEFAULT_SPARK_MASTER = "local[2]"

#: A statement and its named parameters (``$name`` in the text).
Statement = tuple[str, Mapping[str, int | float]]

#: Columns every :class:`ParquetSource` view has besides its schema's: the file a
#: row was read from (as the engine names it) and the row's index in that file.
FILE_COLUMN = "nba_file"
ROW_COLUMN = "nba_row"


@dataclass(frozen=True)
class ParquetSource:
    """A table the engine reads from Parquet files itself (no Arrow in between).

    The view the SQL sees has every column of ``schema`` (those absent from
    every file read as nulls, so only nullable columns may be absent) plus
    :data:`FILE_COLUMN` (the file's path; it ends with the path relative to
    the log table, e.g. ``date=2026-01-05/part-00000.parquet``) and
    :data:`ROW_COLUMN` (the row's 0-based index in its file).

    Attributes
    ----------
    files : tuple of Path
        The Parquet files, possibly none (an empty view).
    schema : pyarrow.Schema
        The columns of the view and their types.
    """

    files: tuple[Path, ...]
    schema: pa.Schema


@dataclass(frozen=True)
class ArrowFunction:
    """A vectorized Python function the SQL of :meth:`SqlEngine.write_lines` calls.

    Attributes
    ----------
    function : callable
        Takes one :class:`pyarrow.Array` per argument, each of shape (n,), and
        returns one of shape (n,). Spark pickles it to its executors.
    arg_types : tuple of str
        The arguments' DuckDB types (``VARCHAR``, ``DOUBLE[]``, ...).
    return_type : str
        The result's DuckDB type; ``VARCHAR`` only (Spark ``string``).
    """

    function: Callable[..., pa.Array]
    arg_types: tuple[str, ...]
    return_type: str = "VARCHAR"


_MASTER = re.compile(
    r"^(local(\[(\*|[1-9][0-9]*)(,[1-9][0-9]*)?\])?"
    r"|spark://[^\s/:,]+:[0-9]{1,5}(,[^\s/:,]+:[0-9]{1,5})*"
    r"|k8s://\S+|yarn)$"
)


class EngineError(LogError):
    """An engine cannot be built or run (bad option, missing pyspark or Java)."""


def first_missing_context(table: pa.Table) -> str | None:
    """The event id of the first row of ``table`` whose ``context`` is null, or None.

    An engine function that joins its rows back to the log's decisions by event
    id gets a null context for a row whose decision is no longer in the part
    files (the log changed under the command); each caller words its own error.

    Parameters
    ----------
    table : pyarrow.Table
        Rows with ``event_id`` and ``context`` columns, shape (n rows,).
    """
    lost = table.column("context").is_null()
    if not pc.any(lost).as_py():
        return None
    return str(table.column("event_id").filter(lost)[0].as_py())


class SqlEngine(ABC):
    """Runs the pipeline's SQL (DuckDB dialect) over Arrow tables."""

    #: ``--engine`` value of this engine.
    name: str = ""

    @abstractmethod
    def run(
        self, tables: Mapping[str, pa.Table], statements: Sequence[Statement]
    ) -> list[pa.Table]:
        """Run ``statements`` over ``tables`` (name -> table), one result each.

        Parameters
        ----------
        tables : mapping of str to pyarrow.Table
            The inputs, by the name the SQL uses.
        statements : sequence of (str, mapping)
            DuckDB SQL and its named parameters (ints or floats).

        Returns
        -------
        list of pyarrow.Table
            One per statement, in order.
        """

    @abstractmethod
    def run_parquet(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        views: Sequence[tuple[str, str]],
        statements: Sequence[Statement],
    ) -> list[pa.Table]:
        """Run ``statements`` over Parquet files the engine reads itself.

        Parameters
        ----------
        parquet : mapping of str to ParquetSource
            Inputs read from Parquet by the engine, by the name the SQL uses.
        tables : mapping of str to pyarrow.Table
            Small inputs given as Arrow (parameters as tables: weights, costs).
        views : sequence of (str, str)
            Named views (DuckDB SQL without parameters) defined in order over
            the inputs and the views before them; each is computed once and
            kept for the statements (a DuckDB temporary table, a cached Spark
            DataFrame), so the files are read once however many statements
            read a view.
        statements : sequence of (str, mapping)
            DuckDB SQL over all of them and its named parameters.

        Returns
        -------
        list of pyarrow.Table
            One per statement, in order.
        """

    @abstractmethod
    def write_parquet(
        self,
        parquet: Mapping[str, Sequence[str | Path]],
        views: Sequence[tuple[str, str]],
        statement: Statement,
        out: str | Path,
    ) -> None:
        """Run ``statement`` over Parquet files and write its result as Parquet.

        The engine reads the files itself (no Arrow in between), as a cluster
        job would.

        Parameters
        ----------
        parquet : mapping of str to sequence of path
            Input tables by name, each the Parquet files it is made of.
        views : sequence of (str, str)
            Named views (DuckDB SQL without parameters) defined in order over
            the inputs and the views before them.
        statement : (str, mapping)
            DuckDB SQL over the inputs and views, and its parameters.
        out : path
            Where the result goes: a file (DuckDB) or a directory of part
            files (Spark); :func:`pyarrow.parquet.read_table` reads either.
        """

    @abstractmethod
    def write_lines(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        statement: Statement,
        functions: Mapping[str, ArrowFunction],
        out: str | Path,
    ) -> list[Path]:
        """Run ``statement``, which may call ``functions``, and write its rows as text.

        Parameters
        ----------
        parquet : mapping of str to ParquetSource
            Inputs the engine reads from Parquet itself (as in :meth:`run_parquet`).
        tables : mapping of str to pyarrow.Table
            Inputs given as Arrow.
        statement : (str, mapping)
            DuckDB SQL whose result is one string column, and its parameters;
            its ``ORDER BY`` is the order of the written lines.
        functions : mapping of str to ArrowFunction
            Functions the SQL calls by these names, registered for this call
            (DuckDB: ``create_function(type="arrow")``; Spark: an Arrow UDF
            that runs on the executors).
        out : path
            A directory, created if needed; its previous ``part-*`` files are
            removed.

        Returns
        -------
        list of Path
            The part files written, in order: their concatenation is every
            row of the result followed by a newline (Spark: one file per
            partition that has rows, written by the executors; DuckDB: one
            file, written by this process).

        Raises
        ------
        EngineError
            When the statement fails, with the engine's message (a function's
            exception included).
        """

    @contextmanager
    def function_errors(self, error: type[Exception], doing: str) -> Iterator[None]:
        """Give a function's refusal, raised where the engine ran it, back as ``error``.

        A function called by :meth:`write_lines` that raises ``error`` fails the
        statement; the engine reports it as an :class:`EngineError` whose text
        carries ``<error's class name>: <message>`` (DuckDB's message, or the
        Python traceback a Spark executor sent back). Inside this block such an
        error becomes ``error(f"{doing} on {engine}: {message}")``; any other
        :class:`EngineError` passes as it is.

        Parameters
        ----------
        error : type of Exception
            The function's own error class (its name is looked for in the text).
        doing : str
            What the statement was doing, for the message (``"featurizing"``).

        Examples
        --------
        >>> class RowError(ValueError):
        ...     pass
        >>> with DuckDBEngine().function_errors(RowError, "scoring"):
        ...     raise EngineError("duckdb: Invalid Input Error: RowError: event 'e7': bad")
        Traceback (most recent call last):
        ...
        nba.logs.engine.RowError: scoring on duckdb: event 'e7': bad
        """
        found_in = re.compile(rf"(?<!\w){re.escape(error.__name__)}: (.+)")
        try:
            yield
        except EngineError as exc:
            found = found_in.search(str(exc))
            if found is None:
                raise
            raise error(f"{doing} on {self.describe()}: {found.group(1)}") from exc

    def describe(self) -> str:
        """One line for the commands' output (which engine ran the SQL)."""
        return self.name


class DuckDBEngine(SqlEngine):
    """An in-memory DuckDB connection per call (the default engine)."""

    name = "duckdb"

    def run(
        self, tables: Mapping[str, pa.Table], statements: Sequence[Statement]
    ) -> list[pa.Table]:
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            for table_name, table in tables.items():
                con.register(table_name, table)
            return [
                con.sql(sql, params=dict(params) if params else None).to_arrow_table()
                for sql, params in statements
            ]
        finally:
            con.close()

    def run_parquet(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        views: Sequence[tuple[str, str]],
        statements: Sequence[Statement],
    ) -> list[pa.Table]:
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            _duckdb_sources(con, parquet, tables, views)
            return [
                con.sql(sql, params=dict(params) if params else None).to_arrow_table()
                for sql, params in statements
            ]
        except duckdb.Error as exc:  # e.g. a part file that is not Parquet: DuckDB names it
            raise EngineError(f"duckdb could not read the log: {_first_line(exc)}") from exc
        finally:
            con.close()

    def write_lines(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        statement: Statement,
        functions: Mapping[str, ArrowFunction],
        out: str | Path,
    ) -> list[Path]:
        import duckdb
        from duckdb.func import FunctionNullHandling, PythonUDFType

        from nba.features.batch import concat_buffer

        target = _empty_dir(out) / "part-00000.txt"
        con = duckdb.connect(":memory:")
        try:
            _duckdb_sources(con, parquet, tables, ())
            for name, fn in functions.items():
                con.create_function(
                    name,
                    fn.function,
                    [duckdb.sqltype(t) for t in fn.arg_types],
                    duckdb.sqltype(fn.return_type),
                    type=PythonUDFType.ARROW,
                    null_handling=FunctionNullHandling.SPECIAL,  # nulls: the function's to read
                )
            sql, params = statement
            reader = con.sql(sql, params=dict(params) if params else None).to_arrow_reader()
            with open(target, "wb") as fh:
                for batch in reader:
                    lines = batch.column(0)
                    fh.write(concat_buffer(pc.binary_join_element_wise(lines, "", "\n")))
        except duckdb.Error as exc:
            raise EngineError(f"duckdb: {_first_line(exc)}") from exc
        finally:
            con.close()
        return [target]

    def write_parquet(
        self,
        parquet: Mapping[str, Sequence[str | Path]],
        views: Sequence[tuple[str, str]],
        statement: Statement,
        out: str | Path,
    ) -> None:
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            for name, files in parquet.items():
                listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")
            for name, sql in views:
                con.execute(f"CREATE VIEW {name} AS {sql}")
            sql, params = statement
            con.sql(sql, params=dict(params) if params else None).write_parquet(
                str(out), compression="zstd"
            )
        finally:
            con.close()


def _duckdb_sources(
    con: Any,
    parquet: Mapping[str, ParquetSource],
    tables: Mapping[str, pa.Table],
    views: Sequence[tuple[str, str]],
) -> None:
    """Register ``tables``, views of the ``parquet`` sources and ``views`` on ``con``."""
    for name, table in tables.items():
        con.register(name, table)
    for name, source in parquet.items():
        empty = _empty_source(source.schema)
        con.register(f"{name}__empty", empty)
        if not source.files:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}__empty")
            continue
        listed = ", ".join(_quote(f) for f in source.files)
        # UNION BY NAME with the empty typed table: the schema's columns, in
        # its order and types, nulls for those no file has
        cols = ", ".join(f'"{c}"' for c in empty.column_names)
        con.execute(
            f"CREATE VIEW {name} AS SELECT {cols} FROM ("
            f"SELECT * EXCLUDE (filename, file_row_number), filename AS {FILE_COLUMN}, "
            f"file_row_number AS {ROW_COLUMN} FROM read_parquet([{listed}], "
            f"filename = true, file_row_number = true, union_by_name = true) "
            f"UNION ALL BY NAME SELECT * FROM {name}__empty)"
        )
    for name, sql in views:
        # materialized: each statement reads it, the Parquet files are read once
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")


def _empty_dir(out: str | Path) -> Path:
    """``out`` as a directory without ``part-*`` files (created if needed)."""
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("part-*"):
        old.unlink()
    return target


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an engine's error message (the rest is its SQL)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


#: the line of a Python exception in a traceback: ``module.Name: message``
_PY_ERROR = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception): .+$")


def _python_error(exc: BaseException) -> str:
    """The Python exception a Spark error carries from a worker (the last one raised,
    when a traceback chains several), else the error's first line."""
    text = str(exc)
    java = getattr(exc, "java_exception", None)
    if java is not None:
        text = str(java.toString()) + "\n" + text
    lines = [ln.strip() for ln in text.splitlines()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call")]
    if starts:
        after = [ln for ln in lines[starts[-1] + 1 :] if _PY_ERROR.match(ln)]
        if after:
            return after[0]
    return _first_line(exc)


def _file_named(exc: BaseException, parquet: Mapping[str, ParquetSource]) -> str:
    """`` (part file PATH)`` for the first input file the error's text names, else ``""``."""
    text = str(exc)
    for source in parquet.values():
        for f in source.files:
            if str(f) in text:
                return f" (part file {f})"
    return ""


def _quote(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _empty_source(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` and the file and row columns."""
    return pa.schema(
        [*schema, pa.field(FILE_COLUMN, pa.string()), pa.field(ROW_COLUMN, pa.int64())]
    ).empty_table()


def _literal(value: int | float) -> Any:
    from sqlglot import exp

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EngineError(f"SQL parameter {value!r}: expected an int or a float")
    if isinstance(value, int):
        return exp.Literal.number(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise EngineError(f"SQL parameter {value!r}: not a finite number")
    return exp.cast(exp.Literal.number(repr(float(value))), exp.DataType.build("DOUBLE"))


#: DuckDB functions Spark SQL spells otherwise (sqlglot leaves these as written).
_SPARK_FUNCTIONS = {"EPOCH_US": "UNIX_MICROS"}

#: DuckDB list functions sqlglot 30 leaves as written, whose Spark form differs in
#: more than the name (see :func:`_spark_list_function`).
_SPARK_LIST_FUNCTIONS = frozenset({"LIST_REDUCE", "LIST_EXTRACT"})


def _spark_list_function(node: Any) -> Any:
    """The Spark form of a DuckDB ``list_reduce`` or ``list_extract`` call.

    - ``list_reduce(l, lambda a, b: ..., init)`` (a left fold from ``init``, in
      list order) -> ``aggregate(l, init, (a, b) -> ...)``; without ``init``
      DuckDB folds from the first element, which Spark has no form for: refused.
    - ``list_extract(l, k)`` (1-based, NULL past the end) ->
      ``try_element_at(l, k)`` (1-based, NULL past the end). Both fail or
      differ on ``k <= 0``: the SQL guards the index.

    >>> print(to_spark_sql("SELECT list_reduce(l, lambda a, b: a + b, 0) AS s FROM t"))
    SELECT AGGREGATE(l, 0, (a, b) -> a + b) AS s FROM t
    >>> print(to_spark_sql("SELECT list_extract(l, i + 1) AS e FROM t"))
    SELECT TRY_ELEMENT_AT(l, i + 1) AS e FROM t
    """
    from sqlglot import exp

    name = str(node.this).upper()
    args = list(node.expressions)
    if name == "LIST_REDUCE":
        if len(args) != 3:
            raise EngineError(
                "list_reduce without an initial value has no Spark form: give one "
                "(list_reduce(l, lambda a, b: ..., init))"
            )
        return exp.Anonymous(this="AGGREGATE", expressions=[args[0], args[2], args[1]])
    if len(args) != 2:
        raise EngineError(f"list_extract takes 2 arguments, got {len(args)}")
    return exp.Anonymous(this="TRY_ELEMENT_AT", expressions=args)


def to_spark_sql(
    sql: str,
    params: Mapping[str, int | float] | None = None,
    tables: Mapping[str, str] | None = None,
) -> str:
    """Spark SQL text of the DuckDB statement ``sql``.

    Parameters
    ----------
    sql : str
        DuckDB SQL, with named parameters written ``$name``.
    params : mapping of str to int or float, optional
        The parameters' values, written as literals.
    tables : mapping of str to str, optional
        Table names to replace (the SQL's name -> the name to use).

    Raises
    ------
    EngineError
        When sqlglot cannot parse ``sql`` or a parameter has no value.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        raise EngineError(f"SQL not parsed as DuckDB SQL: {exc}") from exc
    values = dict(params or {})
    names = dict(tables or {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Placeholder):
            key = str(node.this)
            if key not in values:
                raise EngineError(f"SQL parameter ${key} has no value")
            return _literal(values[key])
        if isinstance(node, exp.Anonymous) and str(node.this).upper() in _SPARK_FUNCTIONS:
            return exp.Anonymous(
                this=_SPARK_FUNCTIONS[str(node.this).upper()], expressions=node.expressions
            )
        if isinstance(node, exp.Anonymous) and str(node.this).upper() in _SPARK_LIST_FUNCTIONS:
            return _spark_list_function(node)
        if isinstance(node, exp.Table) and node.name in names and not node.args.get("db"):
            return exp.to_table(names[node.name]).as_(node.alias_or_name)
        return node

    return tree.transform(rewrite).sql(dialect="spark")


# ------------------------------------------------------------------ Spark
_SESSION_LOCK = threading.Lock()
_SESSION: Any = None
_SESSION_MASTER: str | None = None
_VIEW_IDS = itertools.count()


def check_spark_master(master: str) -> str:
    """``master`` if it is a Spark master URL this project accepts, else an error.

    >>> check_spark_master("spark://10.0.0.5:7077")
    'spark://10.0.0.5:7077'
    >>> check_spark_master("local[0]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nba.logs.engine.EngineError: --spark-master 'local[0]': expected local, local[N], ...
    """
    if not _MASTER.match(master.strip()):
        raise EngineError(
            f"--spark-master {master!r}: expected local, local[N], local[*], "
            "spark://HOST:PORT, k8s://URL or yarn"
        )
    return master.strip()


def java_executable() -> str | None:
    """The ``java`` Spark would start: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java")


def spark_missing() -> str | None:
    """What the Spark engine lacks on this machine (None when nothing)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return (
            "the Spark engine needs pyspark, which is not installed: "
            "pip install 'nba[spark]' (pyspark and sqlglot)"
        )
    try:
        import sqlglot  # noqa: F401
    except ImportError:
        return (
            "the Spark engine needs sqlglot (it transpiles the pipeline's SQL), "
            "which is not installed: pip install 'nba[spark]'"
        )
    if java_executable() is None:
        where = "$JAVA_HOME/bin/java" if os.environ.get("JAVA_HOME") else "java on PATH"
        return (
            f"the Spark engine needs a Java 17+ runtime and found none ({where}): "
            "install one, e.g. apt-get install default-jre-headless"
        )
    return None


def spark_session(master: str | None = None) -> Any:
    """The process's Spark session, started on first use (JVM start takes seconds).

    Parameters
    ----------
    master : str, optional
        Spark master URL (default :data:`DEFAULT_SPARK_MASTER`). A local master
        binds the driver to 127.0.0.1; a cluster master leaves the driver's
        address to Spark's own settings (``SPARK_LOCAL_IP``,
        ``spark.driver.host``), since executors must reach it.

    Raises
    ------
    EngineError
        When pyspark or Java is missing, the master URL is malformed, or a
        session with another master already runs in this process.
    """
    global _SESSION, _SESSION_MASTER
    wanted = check_spark_master(master or DEFAULT_SPARK_MASTER)
    missing = spark_missing()
    if missing is not None:
        raise EngineError(missing)
    with _SESSION_LOCK:
        if _SESSION is not None and _SESSION_MASTER == wanted:
            return _SESSION
        if _SESSION is not None:
            raise EngineError(
                f"--spark-master {wanted!r}: this process already runs a Spark session on "
                f"{_SESSION_MASTER!r}"
            )
        from pyspark.sql import SparkSession

        local = wanted.startswith("local")
        if local:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            # the Python workers (the featurizing function) run this interpreter, with
            # this project and its dependencies; pyspark reads it when the session
            # starts. A cluster's executors run the Python its configuration names.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(wanted)
            .appName("nba-log-pipeline")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.shuffle.partitions", "4" if local else "200")
            # a log's timestamps are TIMESTAMP(MICROS, isAdjustedToUTC): read as instants
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        )
        if local:
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1"
            )
            # list the part files on the driver however many there are: past 32
            # paths (the default) Spark lists them with a job of its own, which on
            # one machine only adds the job's cost (seconds under load)
            builder = builder.config(
                "spark.sql.sources.parallelPartitionDiscovery.threshold", "100000"
            )
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # the JVM did not start: say so, with Spark's reason
            raise EngineError(f"Spark ({wanted}) did not start: {exc}") from exc
        session.sparkContext.setLogLevel("ERROR")
        _SESSION, _SESSION_MASTER = session, wanted
        return session


def _spark_path(path: str | Path) -> str:
    """``path`` as Spark should be given it: a local path made absolute against this
    process's working directory, a URI (``scheme://...``, ``scheme:/...``) as is.

    Spark resolves a relative path against its JVM's working directory, which is
    the one this process had when the session started: in a process that changed
    directory since (a notebook, a test), a relative path would name another file.

    >>> import os
    >>> _spark_path("logs/a.parquet") == os.path.join(os.getcwd(), "logs", "a.parquet")
    True
    >>> _spark_path("hdfs://nn/logs/a.parquet"), _spark_path("file:/tmp/a")
    ('hdfs://nn/logs/a.parquet', 'file:/tmp/a')
    """
    text = str(path)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", text):
        return text
    return os.path.abspath(text)


def stop_spark_session() -> None:
    """Stop the process's Spark session, if one was started."""
    global _SESSION, _SESSION_MASTER
    with _SESSION_LOCK:
        if _SESSION is not None:
            _SESSION.stop()
        _SESSION = _SESSION_MASTER = None


class SparkEngine(SqlEngine):
    """Spark SQL on the process's session (:func:`spark_session`).

    Inputs become temporary views named for this call (so concurrent calls do
    not see each other's tables), dropped afterwards; results come back as
    Arrow tables (``DataFrame.toArrow``).
    """

    name = "spark"

    def __init__(self, master: str | None = None) -> None:
        self.master = check_spark_master(master or DEFAULT_SPARK_MASTER)

    def describe(self) -> str:
        return f"spark ({self.master})"

    @property
    def session(self) -> Any:
        return spark_session(self.master)

    def run(
        self, tables: Mapping[str, pa.Table], statements: Sequence[Statement]
    ) -> list[pa.Table]:
        spark = self.session
        call = next(_VIEW_IDS)
        views = {name: f"nba_{os.getpid()}_{call}_{name}" for name in tables}
        try:
            for name, table in tables.items():
                spark.createDataFrame(table).createOrReplaceTempView(views[name])
            return [
                spark.sql(to_spark_sql(sql, params, views)).toArrow() for sql, params in statements
            ]
        finally:
            for view in views.values():
                spark.catalog.dropTempView(view)

    def run_parquet(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        views: Sequence[tuple[str, str]],
        statements: Sequence[Statement],
    ) -> list[pa.Table]:
        spark = self.session
        names: dict[str, str] = {}
        cached: list[Any] = []
        try:
            _spark_sources(spark, parquet, tables, views, names, cached)
            return [
                spark.sql(to_spark_sql(sql, params, names)).toArrow() for sql, params in statements
            ]
        except Exception as exc:
            from py4j.protocol import Py4JJavaError
            from pyspark.errors import PySparkException

            if not isinstance(exc, PySparkException | Py4JJavaError):
                raise
            # e.g. a part file that is not Parquet: named when Spark's message names it
            reason = _first_line(exc)
            if isinstance(exc, Py4JJavaError):  # the JVM's message, not py4j's call
                reason = _first_line(Exception(str(exc.java_exception.getMessage())))
            raise EngineError(
                f"Spark could not read the log{_file_named(exc, parquet)}: {reason}"
            ) from exc
        finally:
            for df in cached:
                df.unpersist()
            for v in names.values():
                spark.catalog.dropTempView(v)

    def write_parquet(
        self,
        parquet: Mapping[str, Sequence[str | Path]],
        views: Sequence[tuple[str, str]],
        statement: Statement,
        out: str | Path,
    ) -> None:
        spark = self.session
        call = next(_VIEW_IDS)
        names: dict[str, str] = {}
        try:
            for name, files in parquet.items():
                names[name] = f"nba_{os.getpid()}_{call}_{name}"
                spark.read.parquet(*map(_spark_path, files)).createOrReplaceTempView(names[name])
            for name, sql in views:
                df = spark.sql(to_spark_sql(sql, {}, names))
                names[name] = f"nba_{os.getpid()}_{call}_{name}"
                df.createOrReplaceTempView(names[name])
            sql, params = statement
            out_df = spark.sql(to_spark_sql(sql, params, names))
            out_df.write.mode("overwrite").option("compression", "zstd").parquet(_spark_path(out))
        finally:
            for view in names.values():
                spark.catalog.dropTempView(view)

    def write_lines(
        self,
        parquet: Mapping[str, ParquetSource],
        tables: Mapping[str, pa.Table],
        statement: Statement,
        functions: Mapping[str, ArrowFunction],
        out: str | Path,
    ) -> list[Path]:
        from pyspark.sql.functions import ArrowUDFType, arrow_udf

        spark = self.session
        names: dict[str, str] = {}
        cached: list[Any] = []
        target = _empty_dir(out)
        try:
            _spark_sources(spark, parquet, tables, (), names, cached)
            for name, fn in functions.items():
                if fn.return_type != "VARCHAR":
                    raise EngineError(f"function {name}: only VARCHAR results are supported")
                with warnings.catch_warnings():  # the type is given, not read from hints
                    warnings.simplefilter("ignore", UserWarning)
                    udf = arrow_udf(fn.function, "string", ArrowUDFType.SCALAR)
                spark.udf.register(name, udf)
            sql, params = statement
            result = spark.sql(to_spark_sql(sql, params, names))
            # each partition's rows, written by its executor, in the ORDER BY's order
            result.write.mode("overwrite").option("compression", "none").text(_spark_path(target))
        except Exception as exc:
            from py4j.protocol import Py4JJavaError
            from pyspark.errors import PySparkException

            if not isinstance(exc, PySparkException | Py4JJavaError):
                raise
            raise EngineError(f"Spark: {_python_error(exc)}") from exc
        finally:
            for v in names.values():
                spark.catalog.dropTempView(v)
        return sorted(target.glob("part-*"))


def _spark_sources(
    spark: Any,
    parquet: Mapping[str, ParquetSource],
    tables: Mapping[str, pa.Table],
    views: Sequence[tuple[str, str]],
    names: dict[str, str],
    cached: list[Any],
) -> None:
    """Temporary views of ``tables``, the ``parquet`` sources and ``views``, named for
    this call in ``names`` (SQL name -> view); the cached DataFrames go to ``cached``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    call = next(_VIEW_IDS)

    def view(name: str, df: Any) -> None:
        names[name] = f"nba_{os.getpid()}_{call}_{name}"
        df.createOrReplaceTempView(names[name])

    for name, table in tables.items():
        view(name, spark.createDataFrame(table))
    for name, source in parquet.items():
        empty = spark.createDataFrame(_empty_source(source.schema))
        if not source.files:
            view(name, empty)
            continue
        # The schema is given, not inferred: Spark reads no footer on the
        # driver and merges no schemas (a job per input with mergeSchema);
        # a column a file lacks reads as nulls, as DuckDB's union_by_name.
        given = StructType(
            [f for f in empty.schema.fields if f.name not in (FILE_COLUMN, ROW_COLUMN)]
        )
        read = (
            spark.read.schema(given)
            .parquet(*map(_spark_path, source.files))
            .select(
                *[F.col(c) for c in given.fieldNames()],
                F.col("_metadata.file_path").alias(FILE_COLUMN),
                F.col("_metadata.row_index").alias(ROW_COLUMN),
            )
        )
        view(name, read)
    for name, sql in views:
        # cached: each statement reads it, the Parquet files are read once
        df = spark.sql(to_spark_sql(sql, {}, names)).cache()
        cached.append(df)
        view(name, df)


def get_engine(engine: str | SqlEngine | None = None, spark_master: str | None = None) -> SqlEngine:
    """The engine named ``engine`` (``--engine``), with ``spark_master`` (``--spark-master``).

    Raises
    ------
    EngineError
        On an unknown engine, a master given with DuckDB, a malformed master,
        or (Spark) a missing pyspark or Java.
    """
    if isinstance(engine, SqlEngine):
        if spark_master is not None:
            raise EngineError("--spark-master: give it with an engine name, not an engine")
        return engine
    name = DEFAULT_ENGINE if engine is None else str(engine).strip().lower()
    if name not in ENGINES:
        raise EngineError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if name == "duckdb":
        if spark_master is not None:
            raise EngineError("--spark-master applies to --engine spark only")
        return DuckDBEngine()
    missing = spark_missing()
    if missing is not None:
        raise EngineError(f"--engine spark: {missing}")
    return SparkEngine(spark_master)
