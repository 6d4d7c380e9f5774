"""The README's performance table, generated from benchmark records.

Each script under ``bench/`` prints its headline figures as a ``bench-record:``
line and, with ``NBA_BENCH_RECORDS=FILE`` set, appends them to ``FILE``
(``bench/record.py``). This script renders the newest figure of each
(command, measure) found in the record files as a Markdown table, with the
machine each ran on named above it::

    NBA_BENCH_RECORDS=bench/records.jsonl .venv/bin/python bench/serve.py --workers 1
    .venv/bin/python bench/table.py bench/records.jsonl              # print the table
    .venv/bin/python bench/table.py bench/records.jsonl --readme README.md   # rewrite it
    .venv/bin/python bench/table.py bench/records.jsonl --readme README.md --check

In the README the table sits between the lines ``<!-- bench-table -->`` and
``<!-- /bench-table -->``; ``--readme`` replaces what is between them and
``--check`` exits with 1 when the README's table is not the records' (the
tests run it, so the README cannot drift from the records).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START, END = "<!-- bench-table -->", "<!-- /bench-table -->"
_FIGURE_KEYS = {"measure", "value", "unit"}


class RecordError(ValueError):
    """A record file that cannot be read, naming the file and line."""


@dataclass(frozen=True)
class Row:
    """A figure with the run it came from."""

    command: str
    figure: dict[str, Any]
    finished: str
    commit: str | None
    machine: dict[str, Any]
    load: list[float]


def read_records(paths: list[Path]) -> list[Row]:
    """Every figure of every record in ``paths``, in the order read.

    Raises
    ------
    RecordError
        A line is not JSON, or a record or figure lacks a field; the message names
        the file, the line and what was wrong.
    """
    rows: list[Row] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise RecordError(f"{path}: cannot read the records: {e.strerror}") from e
        for no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{no}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{where}: not a JSON record ({e.msg})") from e
            if not isinstance(rec, dict):
                raise RecordError(f"{where}: a record is a JSON object, got {type(rec).__name__}")
            missing = {"benchmark", "argv", "figures", "finished", "machine", "load"} - set(rec)
            if missing:
                raise RecordError(f"{where}: the record lacks {', '.join(sorted(missing))}")
            figures = rec["figures"]
            if not isinstance(figures, list) or not figures:
                raise RecordError(f"{where}: the record has no figures")
            command = " ".join([rec["benchmark"], *rec["argv"]])
            for i, fig in enumerate(figures):
                lacks = _FIGURE_KEYS - set(fig) if isinstance(fig, dict) else _FIGURE_KEYS
                if lacks:
                    raise RecordError(f"{where}: figure {i + 1} lacks {', '.join(sorted(lacks))}")
                rows.append(
                    Row(command, fig, rec["finished"], rec.get("commit"), rec["machine"],
                        rec["load"])
                )  # fmt: skip
    return rows


def latest(rows: list[Row]) -> list[Row]:
    """The newest row of each (command, measure), in the order each first appeared."""
    order: dict[tuple[str, str], Row] = {}
    for r in rows:
        key = (r.command, r.figure["measure"])
        if key not in order or r.finished >= order[key].finished:
            order[key] = r
    return list(order.values())


def number(x: float) -> str:
    """A figure as the table prints it: thousands separated, three or four digits.

    >>> [number(x) for x in (139591.2, 734.66, 3.32, 0.2587)]
    ['139,591', '734.7', '3.32', '0.259']
    """
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _machine_name(m: dict[str, Any]) -> str:
    mem = f", {m['memory_gib']} GiB" if m.get("memory_gib") else ""
    return f"{m['cpu']}, {m['cores']} cores{mem}, Python {m['python']}, {m['system']}"


def render(rows: list[Row]) -> str:
    """The Markdown table of ``rows`` (already reduced by :func:`latest`), with the
    machines they ran on listed above it."""
    machines: list[str] = []
    for r in rows:
        name = _machine_name(r.machine)
        if name not in machines:
            machines.append(name)
    label = {m: (f"machine {chr(ord('A') + i)}" if len(machines) > 1 else "") for i, m in
             enumerate(machines)}  # fmt: skip
    out = []
    if len(machines) == 1:
        out.append(f"Machine: {machines[0]}.")
    else:
        out.extend(f"- {label[m]}: {m}" for m in machines)
    out.append("")
    out.append("| command | measure | figure | reference in the same run | ratio | goal | run |")
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        f = r.figure
        ref = "—"
        if f.get("reference") is not None:
            ref = f"{f.get('reference_name', '')}: {number(f['reference'])} {f['unit']}".strip()
        elif f.get("reference_name"):
            ref = f["reference_name"]
        ratio = "—"
        if f.get("ratio") is not None:
            ratio = f"{f['ratio']:.2f}{f.get('ratio_name', 'x')}"
        goal = f.get("goal") or "no goal"
        if f.get("met") is True:
            goal += ": met"
        elif f.get("met") is False:
            goal += ": **not met**"
        when = r.finished.replace("T", " ")[:16] + " UTC"
        run = f"{when}, load {r.load[0]:.1f}–{r.load[1]:.1f}"
        if r.commit:
            run += f", `{r.commit}`"
        if len(machines) > 1:
            run += f", {label[_machine_name(r.machine)]}"
        out.append(
            f"| `{r.command}` | {f['measure']} | {number(f['value'])} {f['unit']} | {ref} | "
            f"{ratio} | {goal} | {run} |"
        )
    return "\n".join(out) + "\n"


def replace_block(text: str, table: str, where: str) -> str:
    """``text`` with what is between the table's markers replaced by ``table``.

    Raises
    ------
    RecordError
        The markers are missing, repeated or out of order in ``text``.
    """
    if text.count(START) != 1 or text.count(END) != 1:
        raise RecordError(
            f"{where}: needs exactly one {START!r} line and one {END!r} line around the table"
        )
    head, rest = text.split(START, 1)
    if END not in rest:
        raise RecordError(f"{where}: {END!r} comes before {START!r}")
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("records", nargs="+", type=Path, help="JSON-lines record files")
    ap.add_argument("--readme", type=Path, default=None, help="rewrite the table in this file")
    ap.add_argument("--check", action="store_true", help="with --readme: only compare")
    args = ap.parse_args(argv)
    try:
        table = render(latest(read_records(args.records)))
        if args.readme is None:
            print(table, end="")
            return 0
        text = args.readme.read_text(encoding="utf-8")
        new = replace_block(text, table, str(args.readme))
    except RecordError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(
                f"{args.readme}: the performance table is not the records' "
                f"(run bench/table.py {' '.join(map(str, args.records))} --readme {args.readme})",
                file=sys.stderr,
            )
            return 1
        return 0
    args.readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
