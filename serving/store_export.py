"""The event store's export: its events as the Parquet event log that training and
evaluation read (:mod:`nba.logs.io`, schemas identical to the simulator's).

:class:`StoreExport` is a mixin of :class:`serving.store.EventStore`: the same
SQL runs on SQLite and PostgreSQL (:mod:`serving.store_sql`). Each export reads
one snapshot (a read transaction), so it is consistent while writers go on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from nba.catalog import Catalog
from nba.logs import io as logio
from nba.logs.schema import DECISIONS, OUTCOMES, STATED_PREFERENCES, TOUCHES
from serving.store_sql import SQLITE, Connection, Cursor, Dialect

_EXPORT_CHUNK = 50_000


def _bound_us(value: date | datetime, end: bool, name: str) -> int:
    from serving.store import _bound_us as bound

    return bound(value, end, name)


class StoreExport:
    """The export methods of :class:`serving.store.EventStore`."""

    dialect: Dialect = SQLITE
    path: Path | str
    _DECISION_COLS: str

    def _conn(self) -> Connection:
        raise NotImplementedError

    def export(
        self,
        out_dir: str | Path,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
    ) -> dict[str, int]:
        """Write the Parquet event log (decisions, outcomes, touches, stated
        preferences, catalog snapshots) under ``out_dir`` with :func:`nba.logs.io.append`.

        Decisions, touches and stated preferences are selected by their ``ts``
        (``since`` inclusive;
        ``until`` exclusive for datetimes, inclusive for whole dates); outcomes
        are those of the exported decisions, late ones included, so every
        exported decision is joined completely. Export each range once: parts
        are appended, so exporting the same range twice duplicates rows.

        ``out_dir/manifest.json`` records the export time as ``as_of`` (with
        ``as_of_basis``): the outcomes known then. A later
        :func:`nba.logs.join.load_joined` of ``out_dir`` uses it, so decisions
        whose reward window was still open at export are not taken as final.
        Exporting again into the same directory keeps the earlier time.

        Returns
        -------
        dict
            Rows written per table and the number of catalog snapshots written
            (``catalogs``); ``missing_catalogs`` counts catalog versions referred
            to by decisions that the store does not hold.
        """
        lo = None if since is None else _bound_us(since, end=False, name="since")
        hi = None if until is None else _bound_us(until, end=True, name="until")
        cond, args = self._range("d.ts_us", lo, hi)
        con = self._conn()
        # one read transaction: a consistent snapshot even while writers go on
        con.execute("BEGIN")
        # taken before the snapshot's first read, so the horizon never runs ahead of
        # what the snapshot holds (an outcome stamped later is ignored by the join)
        as_of = datetime.now(UTC)
        try:
            n_dec = self._export_decisions(con, out_dir, cond, args)
            n_out = self._export_outcomes(con, out_dir, cond, args)
            tcond, targs = self._range("t.ts_us", lo, hi)
            n_tch = self._export_touches(con, out_dir, tcond, targs)
            scond, sargs = self._range("s.ts_us", lo, hi)
            n_st = self._export_stated(con, out_dir, scond, sargs)
            versions = [
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT d.catalog_version FROM decisions d WHERE {cond}", args
                )
            ]
            written = missing = 0
            for v in versions:
                snap = con.execute("SELECT snapshot FROM catalogs WHERE version=?", (v,)).fetchone()
                if snap is None:
                    missing += 1
                    continue
                cat = Catalog.from_dict(json.loads(snap[0]), source=f"{self.path}:catalog/{v}")
                cat.write_snapshot(Path(out_dir) / "catalog")
                written += 1
        finally:
            con.execute("COMMIT")
        self._record_export_time(Path(out_dir), as_of)
        return {
            "decisions": n_dec,
            "outcomes": n_out,
            "touches": n_tch,
            "stated_preferences": n_st,
            "catalogs": written,
            "missing_catalogs": missing,
        }

    #: tables :meth:`export_increment` follows, with the row id that orders them
    INCREMENT_KEYS: tuple[tuple[str, str], ...] = (
        ("decisions", "rowid"),  # ``seq`` on PostgreSQL (Dialect.decision_order)
        ("outcomes", "id"),
        ("touches", "id"),
        ("stated_preferences", "id"),
    )

    def export_increment(
        self, out_dir: str | Path, after: Mapping[str, int]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Append to the Parquet log under ``out_dir`` only the rows stored since a
        previous increment: those whose row id exceeds ``after[table]`` (0 or
        missing: from the first row), up to the last row present when this call
        began (one read snapshot).

        Rows are selected by insertion order, not by ``ts``, so an outcome that
        arrives late for a decision exported earlier is exported with the next
        increment. Catalog snapshots of the new decisions are written too. The
        manifest is not touched: the caller states the horizon. Known limit: a
        decision stored deferred and activated after it was exported keeps the
        ``activated`` flag it had at export.

        Returns
        -------
        (dict, dict)
            Rows written per table, and the new high-water marks (row ids) to
            pass as ``after`` next time.
        """
        con = self._conn()
        counts: dict[str, int] = {}
        marks: dict[str, int] = {}
        con.execute("BEGIN")
        try:
            bounds: dict[str, tuple[int, int]] = {}
            for table, key in self.INCREMENT_KEYS:
                if key == "rowid":
                    key = self.dialect.decision_order
                lo = int(after.get(table, 0) or 0)
                hi = con.execute(f"SELECT COALESCE(MAX({key}), 0) FROM {table}").fetchone()[0]
                bounds[table] = (lo, max(lo, int(hi)))
                marks[table] = bounds[table][1]
            lo, hi = bounds["decisions"]
            order = self.dialect.decision_order
            cond, args = f"d.{order}>? AND d.{order}<=?", (lo, hi)
            counts["decisions"] = self._export_decisions(con, out_dir, cond, args)
            lo, hi = bounds["outcomes"]
            counts["outcomes"] = self._export_outcomes(con, out_dir, "o.id>? AND o.id<=?", (lo, hi))
            lo, hi = bounds["touches"]
            counts["touches"] = self._export_touches(con, out_dir, "t.id>? AND t.id<=?", (lo, hi))
            lo, hi = bounds["stated_preferences"]
            counts["stated_preferences"] = self._export_stated(
                con, out_dir, "s.id>? AND s.id<=?", (lo, hi)
            )
            lo, hi = bounds["decisions"]
            versions = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT catalog_version FROM decisions"
                    f" WHERE {order}>? AND {order}<=?",
                    (lo, hi),
                )
            ]
            counts["catalogs"] = 0
            for v in versions:
                snap = con.execute("SELECT snapshot FROM catalogs WHERE version=?", (v,)).fetchone()
                if snap is not None:
                    cat = Catalog.from_dict(json.loads(snap[0]), source=f"{self.path}:catalog/{v}")
                    cat.write_snapshot(Path(out_dir) / "catalog")
                    counts["catalogs"] += 1
        finally:
            con.execute("COMMIT")
        return counts, marks

    @staticmethod
    def _record_export_time(out: Path, as_of: datetime) -> None:
        from nba.logs.join import (
            MANIFEST_AS_OF,
            MANIFEST_AS_OF_BASIS,
            manifest_as_of,
            update_manifest,
        )

        earlier = manifest_as_of(out)
        if earlier is not None and earlier < as_of:
            as_of = earlier
        update_manifest(
            out,
            {
                "writer": "serving.store",
                MANIFEST_AS_OF: as_of.isoformat(),
                MANIFEST_AS_OF_BASIS: "store export time",
            },
        )

    @staticmethod
    def _range(col: str, lo: int | None, hi: int | None) -> tuple[str, tuple[Any, ...]]:
        parts, args = ["1=1"], []
        if lo is not None:
            parts.append(f"{col}>=?")
            args.append(lo)
        if hi is not None:
            parts.append(f"{col}<?")
            args.append(hi)
        return " AND ".join(parts), tuple(args)

    def _export_decisions(
        self, con: Connection, out_dir: str | Path, cond: str, args: tuple[Any, ...]
    ) -> int:
        cur = con.execute(
            f"SELECT {', '.join('d.' + c.strip() for c in self._DECISION_COLS.split(','))}"
            f" FROM decisions d WHERE {cond} ORDER BY d.ts_us, d.event_id",
            args,
        )
        total = 0
        while rows := cur.fetchmany(_EXPORT_CHUNK):
            cols: dict[str, list[Any]] = {f.name: [] for f in DECISIONS}
            for r in rows:
                cols["event_id"].append(r[0])
                cols["ts"].append(r[1])
                cols["hcp_id"].append(r[2])
                cols["requester"].append(r[3])
                cols["channels_requested"].append(json.loads(r[4]))
                cols["context"].append(r[5])
                cols["catalog_version"].append(r[6])
                cols["action_ids"].append(json.loads(r[7]))
                cols["probabilities"].append(json.loads(r[8]))
                cols["chosen_index"].append(r[9])
                cols["chosen_action_id"].append(r[10])
                cols["propensity"].append(r[11])
                cols["policy"].append(r[12])
                cols["model_version"].append(r[13])
                cols["suppressed"].append(
                    [{"action_id": a, "rule": rule} for a, rule in json.loads(r[14])]
                )
                cols["activated"].append(bool(r[15]))
                cols["slate"].append(
                    None
                    if r[16] is None
                    else [{"action_id": a, "probability": p} for a, p in json.loads(r[16])]
                )
                cols["rules_version"].append(r[17])
                cols["rules_market"].append(r[18])
                cols["journey"].append(r[19])
            table = pa.Table.from_pydict(
                {f.name: pa.array(cols[f.name], type=f.type) for f in DECISIONS},
                schema=DECISIONS,
            )
            logio.append(out_dir, "decisions", table)
            total += len(rows)
        return total

    @staticmethod
    def _export_plain(cur: Cursor, out_dir: str | Path, name: str, schema: pa.Schema) -> int:
        """Append the rows of ``cur`` (columns in ``schema`` order) to log ``name``."""
        total = 0
        while rows := cur.fetchmany(_EXPORT_CHUNK):
            columns = zip(*rows, strict=True)
            table = pa.Table.from_pydict(
                {
                    f.name: pa.array(list(col), type=f.type)
                    for f, col in zip(schema, columns, strict=True)
                },
                schema=schema,
            )
            logio.append(out_dir, name, table)
            total += len(rows)
        return total

    def _export_outcomes(
        self, con: Connection, out_dir: str | Path, cond: str, args: tuple[Any, ...]
    ) -> int:
        cur = con.execute(
            "SELECT o.event_id, o.ts_us, o.type, o.value, o.source, o.source_id, o.action_id"
            f" FROM outcomes o JOIN decisions d ON d.event_id=o.event_id WHERE {cond}"
            " ORDER BY o.ts_us, o.id",
            args,
        )
        return self._export_plain(cur, out_dir, "outcomes", OUTCOMES)

    def _export_touches(
        self, con: Connection, out_dir: str | Path, cond: str, args: tuple[Any, ...]
    ) -> int:
        cur = con.execute(
            "SELECT t.hcp_id, t.ts_us, t.channel, t.content_id, t.origin, t.kind, t.topics,"
            " t.content_ids, t.dwell_s, t.overrides_event_id"
            f" FROM touches t WHERE {cond} ORDER BY t.ts_us, t.id",
            args,
        )
        total = 0
        while rows := cur.fetchmany(_EXPORT_CHUNK):
            cols = [list(col) for col in zip(*rows, strict=True)]
            cols[6] = [json.loads(v) for v in cols[6]]
            cols[7] = [json.loads(v) for v in cols[7]]
            table = pa.Table.from_pydict(
                {f.name: pa.array(col, type=f.type) for f, col in zip(TOUCHES, cols, strict=True)},
                schema=TOUCHES,
            )
            logio.append(out_dir, "touches", table)
            total += len(rows)
        return total

    @staticmethod
    def _export_stated(
        con: Connection, out_dir: str | Path, cond: str, args: tuple[Any, ...]
    ) -> int:
        cur = con.execute(
            "SELECT s.hcp_id, s.ts_us, s.recorded_by, s.topics, s.channels"
            f" FROM stated_preferences s WHERE {cond} ORDER BY s.ts_us, s.id",
            args,
        )
        total = 0
        while rows := cur.fetchmany(_EXPORT_CHUNK):
            cols = [list(col) for col in zip(*rows, strict=True)]
            cols[3] = [json.loads(v) for v in cols[3]]
            cols[4] = [json.loads(v) for v in cols[4]]
            table = pa.Table.from_pydict(
                {
                    f.name: pa.array(col, type=f.type)
                    for f, col in zip(STATED_PREFERENCES, cols, strict=True)
                },
                schema=STATED_PREFERENCES,
            )
            logio.append(out_dir, "stated_preferences", table)
            total += len(rows)
        return total
