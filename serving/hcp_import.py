"""Read HCP profiles from an uploaded Parquet or CSV file.

Columns: ``hcp_id, specialty, decile, market, adoption_stage, consents, no_see,
digital_affinity`` (the ``hcps`` schema of :mod:`nba.logs.schema`). In CSV,
``consents`` lists channels separated by ``;`` or ``|``; ``no_see`` is
true/false/1/0. ``no_see`` and ``digital_affinity`` may be absent (defaults
false and 0.5). Any bad row fails the whole import with an error naming the
row and the column, so an import is all or nothing.

>>> rows = read_profiles(b"hcp_id,specialty,decile,market,adoption_stage,consents\\n"
...                      b"H1,cardiology,7,US,aware,email;webinar\\n", "h.csv")
>>> rows[0].hcp_id, sorted(rows[0].consents)
('H1', ['email', 'webinar'])
"""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nba.domain import HCPProfile, ValidationError

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


def read_table(data: bytes, fmt: Format) -> pa.Table:
    try:
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
        else:
            opts = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in (*REQUIRED, *OPTIONAL)}
            )
            table = pacsv.read_csv(io.BytesIO(data), convert_options=opts)
        _ = table.column_names  # names must decode as UTF-8
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportError_(f"cannot read the {fmt} upload: {type(exc).__name__}: {exc}") from None
    return table


def read_profiles(data: bytes, filename: str | None) -> list[HCPProfile]:
    """Every row of the upload as an :class:`HCPProfile`, or an error naming the row."""
    fmt = detect_format(data, filename)
    table = read_table(data, fmt)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ImportError_(f"{fmt} upload: missing column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise ImportError_(f"{fmt} upload: no rows")
    if table.num_rows > MAX_ROWS:
        raise ImportError_(f"{fmt} upload: {table.num_rows} rows; at most {MAX_ROWS}")
    out: list[HCPProfile] = []
    seen: dict[str, int] = {}
    cols = [c for c in (*REQUIRED, *OPTIONAL) if c in table.column_names]
    try:
        rows = table.select(cols).to_pylist()
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise ImportError_(f"{fmt} upload: cannot read its rows: {exc}") from None
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
            out.append(
                HCPProfile(
                    hcp_id=hid,
                    specialty=str(row.get("specialty") or "").strip(),
                    decile=decile,
                    market=str(row.get("market") or "").strip(),
                    adoption_stage=str(row.get("adoption_stage") or "").strip(),
                    consents=_consents(row.get("consents"), f"{where}: column 'consents'"),
                    no_see=_bool(row.get("no_see"), f"{where}: column 'no_see'"),
                    digital_affinity=aff,
                )
            )
        except ValidationError as exc:
            if isinstance(exc, ImportError_):
                raise
            raise ImportError_(f"{where}: {exc}") from None
    return out
