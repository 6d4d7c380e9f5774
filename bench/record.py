"""A benchmark's figures as one machine-readable record, for the README's table.

Each benchmark script ends by calling :func:`publish` with its headline figures:
what was measured, the reference measured in the same run, their ratio and the
goal. :func:`publish` prints the record as one line that starts with
``bench-record:`` (the script's human-readable output stays as it was) and, when
the environment names a file in ``NBA_BENCH_RECORDS``, appends the same JSON
object to it as one line. ``bench/table.py`` turns such a file into the README's
performance table, naming the machine each figure ran on.

>>> f = Figure("nba --help", 0.11, "CPU s", reference=0.03,
...            reference_name="python -c pass", goal="<= 0.5 CPU s", met=True)
>>> round(f.ratio or 0, 2)
3.67
>>> Figure("x", 1.0, "s", goal="", met=None, ratio=-1.0)
Traceback (most recent call last):
...
ValueError: figure 'x': ratio must be a finite number, 0 or more, or None, got -1.0
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The environment variable naming the JSON-lines file records are appended to.
RECORDS_ENV = "NBA_BENCH_RECORDS"
#: What starts the printed record's line.
PREFIX = "bench-record: "

_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


@dataclass(frozen=True)
class Figure:
    """One headline figure of a benchmark run.

    Parameters
    ----------
    measure : str
        What was measured, e.g. ``"POST /v1/decisions, 16 clients"``.
    value : float
        The figure.
    unit : str
        Its unit, e.g. ``"req/s"`` or ``"CPU s"``.
    reference : float or None
        The reference measured in the same run, in the same unit (None when the
        goal itself is the only reference).
    reference_name : str
        What the reference is.
    ratio : float or None
        How the figure compares; ``value / reference`` when left out and there is
        a reference. Give it when the goal is stated on another ratio (e.g. a
        median of per-pair ratios).
    ratio_name : str
        What the ratio is of, e.g. ``"x bare"`` (printed after the number).
    goal : str
        The goal in words, empty when the figure has none.
    met : bool or None
        Whether the goal was met (None: no goal).
    """

    measure: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    ratio: float | None = None
    ratio_name: str = "x"
    goal: str = ""
    met: bool | None = None

    def __post_init__(self) -> None:
        if not self.measure.strip():
            raise ValueError("a figure needs a measure (what was measured)")
        for name in ("value", "reference"):
            x = getattr(self, name)
            if x is not None and not math.isfinite(x):
                raise ValueError(f"figure {self.measure!r}: {name} must be finite, got {x}")
        if self.ratio is None and self.reference:
            object.__setattr__(self, "ratio", self.value / self.reference)
        if self.ratio is not None and not (math.isfinite(self.ratio) and self.ratio >= 0):
            raise ValueError(
                f"figure {self.measure!r}: ratio must be a finite number, 0 or more, or None, "
                f"got {self.ratio}"
            )
        if self.met is not None and not self.goal:
            raise ValueError(f"figure {self.measure!r}: met is given without a goal")


def machine() -> dict[str, Any]:
    """The machine the benchmark ran on: CPU model, cores, memory, Python, system."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = round(pages * size / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _commit() -> str | None:
    """The checkout's commit (``-dirty`` when it has changes), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        # the records file itself is left out: appending to it is not a change
        # of the code measured
        records = os.environ.get(RECORDS_ENV)
        skip = []
        if records:
            path = Path(records).resolve()
            if path.is_relative_to(root):
                skip = [f":(exclude){path.relative_to(root)}"]
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *skip,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@dataclass
class Record:
    """A run's figures with where and when they were measured."""

    benchmark: str
    argv: list[str]
    figures: list[Figure]
    finished: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    commit: str | None = field(default_factory=_commit)
    machine: dict[str, Any] = field(default_factory=machine)
    load: tuple[float, float] = field(
        default_factory=lambda: (round(_LOAD_AT_START, 2), round(os.getloadavg()[0], 2))
    )

    def to_json(self) -> str:
        """The record as one line of JSON."""
        d = asdict(self)
        d["load"] = list(self.load)
        return json.dumps(d, ensure_ascii=False, allow_nan=False)


def publish(benchmark: str, figures: list[Figure], argv: list[str] | None = None) -> Record:
    """Print the run's record (one ``bench-record:`` line) and append it to the file
    named by ``NBA_BENCH_RECORDS`` when that is set.

    Parameters
    ----------
    benchmark : str
        The script, as run from the project's root (``"bench/serve.py"``).
    figures : list of Figure
        The run's headline figures, at least one.
    argv : list of str, optional
        The options it ran with (default: ``sys.argv[1:]``).
    """
    if not figures:
        raise ValueError(f"{benchmark}: a record needs at least one figure")
    rec = Record(benchmark, list(sys.argv[1:] if argv is None else argv), figures)
    line = rec.to_json()
    print(PREFIX + line, flush=True)
    path = os.environ.get(RECORDS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return rec
