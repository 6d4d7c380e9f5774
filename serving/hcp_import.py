"""Read HCP profiles from an uploaded Parquet or CSV file.

Columns: ``hcp_id, specialty, decile, market, adoption_stage, consents, no_see,
digital_affinity`` (the ``hcps`` schema of :mod:`nba.logs.schema`), plus one
column per attribute declared in the features config
(:class:`nba.hcp_features.HCPFeatures`). In CSV, ``consents`` and list
attributes separate their entries with ``;`` or ``|``; ``no_see`` and bool
attributes are true/false/1/0. ``no_see``, ``digital_affinity`` and every
attribute may be absent (defaults false, 0.5 and none); an empty attribute cell
is no value. A column that is neither a profile field nor a declared attribute
is refused, never dropped. Specialty and market must be in the features
config's vocabularies, consents among the catalog's channels. Any bad row
fails the whole import with an error naming the row and the column, so an
import is all or nothing.

>>> from nba.catalog import Catalog
>>> from nba.hcp_features import HCPFeatures
>>> rows = read_hcps(b"hcp_id,specialty,decile,market,adoption_stage,consents,rx_volume_decile\\n"
...                  b"H1,cardiology,7,US,aware,email;webinar,9\\n", "h.csv",
...                  HCPFeatures.default(), Catalog.default())
>>> rows[0][0].hcp_id, sorted(rows[0][0].consents), rows[0][1]
('H1', ['email', 'webinar'], {'rx_volume_decile': 9})
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nba.catalog import Catalog
from nba.domain import HCPProfile, ValidationError
from nba.hcp_features import HCPFeatures

REQUIRED = ("hcp_id", "specialty", "decile", "market", "adoption_stage", "consents")
OPTIONAL = ("no_see", "digital_affinity")
MAX_ROWS = 1_000_000

Format = Literal["parquet", "csv"]


class ImportError_(ValidationError):
    """An uploaded HCP file is unreadable or has a bad row."""


def detect_format(data: bytes, filename: str | None) -> Format:
    name = (filename or "").lower()
    if data[:4] == b"PAR1" or name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".txt")) or not name:
        return "csv"
    raise ImportError_(f"{filename}: not a Parquet or CSV file")


def _bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if v is None:
        return False
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "y", "t"):
        return True
    if s in ("false", "0", "no", "n", "f", ""):
        return False
    raise ImportError_(f"{where}: {v!r} is not a boolean")


def _consents(v: Any, where: str) -> frozenset[str]:
    if v is None:
        return frozenset()
    if isinstance(v, list | tuple):
        vals = [str(x).strip() for x in v]
    else:
        s = str(v).replace("|", ";").replace(",", ";")
        vals = [x.strip() for x in s.split(";")]
    return frozenset(x for x in vals if x)


def _csv_header(data: bytes) -> list[str]:
    """Column names of a CSV upload (its first line)."""
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    return next(csv.reader([first.decode("utf-8")]), [])


def read_table(data: bytes, fmt: Format) -> pa.Table:
    """The upload as a table; every CSV column is read as text (the caller parses it)."""
    try:
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
        else:
            opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in _csv_header(data)})
            table = pacsv.read_csv(io.BytesIO(data), convert_options=opts)
        _ = table.column_names  # names must decode as UTF-8
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportError_(f"cannot read the {fmt} upload: {type(exc).__name__}: {exc}") from None
    return table


def check_columns(
    table: pa.Table, fmt: str, required: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    """Refuse a missing required column, an unknown column, an empty or huge upload."""
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ImportError_(f"{fmt} upload: missing column(s) {', '.join(missing)}")
    unknown = [c for c in table.column_names if c not in allowed]
    if unknown:
        raise ImportError_(
            f"{fmt} upload: column {unknown[0]!r} is not known; columns are {', '.join(allowed)}"
        )
    if table.num_rows == 0:
        raise ImportError_(f"{fmt} upload: no rows")
    if table.num_rows > MAX_ROWS:
        raise ImportError_(f"{fmt} upload: {table.num_rows} rows; at most {MAX_ROWS}")


def table_rows(table: pa.Table, fmt: str) -> list[dict[str, Any]]:
    try:
        rows: list[dict[str, Any]] = table.to_pylist()
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise ImportError_(f"{fmt} upload: cannot read its rows: {exc}") from None
    return rows


def read_hcps(
    data: bytes, filename: str | None, features: HCPFeatures, catalog: Catalog
) -> list[tuple[HCPProfile, dict[str, Any]]]:
    """Every row of the upload as a profile and its declared attributes, or an error
    naming the row, the column, the value and what is allowed."""
    fmt = detect_format(data, filename)
    table = read_table(data, fmt)
    check_columns(table, fmt, REQUIRED, (*REQUIRED, *OPTIONAL, *features.by_name))
    out: list[tuple[HCPProfile, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    attr_cols = [c for c in table.column_names if c in features.by_name]
    rows = table_rows(table, fmt)
    for i, row in enumerate(rows):
        where = f"row {i + 1}"
        hid = row.get("hcp_id")
        if hid is None or not str(hid).strip():
            raise ImportError_(f"{where}: column 'hcp_id': must not be empty")
        hid = str(hid).strip()
        if hid in seen:
            raise ImportError_(f"{where}: column 'hcp_id': {hid!r} repeats row {seen[hid] + 1}")
        seen[hid] = i
        try:
            decile_raw = row.get("decile")
            decile = int(str(decile_raw).strip()) if decile_raw is not None else 0
        except ValueError:
            raise ImportError_(
                f"{where}: column 'decile': {row.get('decile')!r} is not an integer"
            ) from None
        aff_raw = row.get("digital_affinity")
        try:
            aff = 0.5 if aff_raw in (None, "") else float(aff_raw)
        except (TypeError, ValueError):
            raise ImportError_(
                f"{where}: column 'digital_affinity': {aff_raw!r} is not a number"
            ) from None
        if not math.isfinite(aff):
            raise ImportError_(f"{where}: column 'digital_affinity': must be finite")
        try:
            profile = HCPProfile(
                hcp_id=hid,
                specialty=str(row.get("specialty") or "").strip(),
                decile=decile,
                market=str(row.get("market") or "").strip(),
                adoption_stage=str(row.get("adoption_stage") or "").strip(),
                consents=_consents(row.get("consents"), f"{where}: column 'consents'"),
                no_see=_bool(row.get("no_see"), f"{where}: column 'no_see'"),
                digital_affinity=aff,
            )
        except ValidationError as exc:
            if isinstance(exc, ImportError_):
                raise
            raise ImportError_(f"{where}: {exc}") from None
        try:
            features.check_profile(profile, catalog)
        except ValidationError as exc:
            column, _, problem = str(exc).partition(": ")
            raise ImportError_(f"{where}: column '{column}': {problem}") from None
        attrs: dict[str, Any] = {}
        for col in attr_cols:
            spec = features.by_name[col]
            raw = row.get(col)
            try:
                value = spec.parse_text(raw) if isinstance(raw, str) else raw
                if value is not None:
                    attrs[col] = spec.check(value, catalog)
            except ValidationError as exc:
                raise ImportError_(f"{where}: column '{col}': {exc}") from None
        out.append((profile, attrs))
    return out
