"""Read touches (contacts and interest signals) from an uploaded Parquet or CSV file:
the activity export of a CLM, CRM, email or portal system.

Columns: ``hcp_id, ts, channel, content_id`` (required) and ``origin`` (default
``external``), ``kind`` (default ``contact``), ``topics``, ``content_ids``,
``dwell_s``; the ``touches`` schema of :mod:`nba.logs.schema`. In CSV, ``ts`` is
ISO 8601 with a time zone (``2026-01-05T10:00:00Z``), ``topics`` and
``content_ids`` separate their entries with ``;`` or ``|``, an empty ``dwell_s``
is unknown. A column outside these is refused, never dropped. Channels and
topics must be the catalog's. Any bad row fails the whole import with an error
naming the row (1-based, as in a spreadsheet without its header), the column,
the value and what is allowed, so an import is all or nothing.

>>> from nba.catalog import Catalog
>>> rows = read_touches(b"hcp_id,ts,channel,content_id,kind,topics,dwell_s\\n"
...     b"H1,2026-01-05T10:00:00Z,portal,page-7,portal_view,dosing;safety,42\\n",
...     "clm.csv", Catalog.default())
>>> rows[0].kind, rows[0].topics, rows[0].dwell_s
('portal_view', ('dosing', 'safety'), 42.0)
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from nba.catalog import Catalog
from nba.domain import Touch, ValidationError
from nba.logs.schema import TOUCH_KINDS
from serving.hcp_import import ImportError_, check_columns, detect_format, read_table, table_rows

REQUIRED = ("hcp_id", "ts", "channel", "content_id")
OPTIONAL = ("origin", "kind", "topics", "content_ids", "dwell_s")


def _list(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, list | tuple):
        vals = [str(x).strip() if x is not None else "" for x in v]
        if any(not x for x in vals):
            raise ImportError_(f"{where}: entries must be non-empty")
        return tuple(vals)
    s = str(v).replace("|", ";")
    return tuple(x.strip() for x in s.split(";") if x.strip())


def _ts(v: Any, where: str) -> datetime:
    if isinstance(v, datetime):
        ts = v
    else:
        try:
            ts = datetime.fromisoformat(str(v).strip())
        except ValueError:
            raise ImportError_(
                f"{where}: {v!r} is not an ISO 8601 timestamp (e.g. 2026-01-05T10:00:00Z)"
            ) from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ImportError_(f"{where}: {v!r} has no time zone (e.g. 2026-01-05T10:00:00Z)")
    return ts


def _dwell(v: Any, where: str) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise ImportError_(f"{where}: {v!r} is not a number of seconds >= 0")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ImportError_(f"{where}: {v!r} is not a number of seconds >= 0") from None
    if not (math.isfinite(x) and x >= 0):
        raise ImportError_(f"{where}: {v!r} is not a number of seconds >= 0")
    return x


def _text(v: Any, default: str) -> str:
    if v is None:
        return default
    s = str(v).strip()
    return s or default


def read_touches(data: bytes, filename: str | None, catalog: Catalog) -> list[Touch]:
    """Every row of the upload as a :class:`Touch`, or an error naming the row."""
    fmt = detect_format(data, filename)
    table = read_table(data, fmt)
    check_columns(table, fmt, REQUIRED, (*REQUIRED, *OPTIONAL))
    out: list[Touch] = []
    for i, row in enumerate(table_rows(table, fmt)):
        where = f"row {i + 1}"

        def col(name: str, where: str = where) -> str:
            return f"{where}: column '{name}'"

        hid = _text(row.get("hcp_id"), "")
        if not hid:
            raise ImportError_(f"{col('hcp_id')}: must not be empty")
        channel = _text(row.get("channel"), "")
        if channel not in catalog.channels:
            raise ImportError_(
                f"{col('channel')}: {row.get('channel')!r} is not one of the catalog's "
                f"channels: {', '.join(catalog.channels)}"
            )
        kind = _text(row.get("kind"), "contact")
        if kind not in TOUCH_KINDS:
            raise ImportError_(f"{col('kind')}: {kind!r} is not one of {', '.join(TOUCH_KINDS)}")
        origin = _text(row.get("origin"), "external")
        topics = _list(row.get("topics"), col("topics"))
        try:
            catalog.check_terms("topics", topics, col("topics"))
        except ValidationError as exc:
            raise ImportError_(str(exc)) from None
        try:
            touch = Touch(
                hcp_id=hid,
                ts=_ts(row.get("ts"), col("ts")),
                channel=channel,
                content_id=_text(row.get("content_id"), ""),
                origin=origin,
                kind=kind,
                topics=topics,
                content_ids=_list(row.get("content_ids"), col("content_ids")),
                dwell_s=_dwell(row.get("dwell_s"), col("dwell_s")),
            )
        except ValidationError as exc:
            if isinstance(exc, ImportError_):
                raise
            # "Touch for '<id>': field 'x': problem" -> the row and the column, not the id
            msg = str(exc)
            field, _, problem = msg.partition("field '")[2].partition("': ")
            raise ImportError_(f"{col(field)}: {problem}" if field else f"{where}: {msg}") from None
        out.append(touch)
    return out
