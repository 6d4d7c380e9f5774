"""Time of `make test` on a clean clone, as CI runs it (goal: <= 8 minutes of pytest).

Clones the checkout's committed ``HEAD`` into a scratch directory and runs
``CI=true .ci/run`` there (``make test``: a fresh virtual environment, the
Debian packages when missing, lint, type checks, then the suite on two xdist
workers), printing its output as it goes. Then prints pytest's own time, the
whole run's time with the set-up, the tests counted and the 15 slowest tests
pytest reported, and publishes the figures as a record (``bench/record.py``)
for the README's table.

    .venv/bin/python bench/suite.py                 # the clean clone, about 12 min
    .venv/bin/python bench/suite.py --tests tests/bench/test_bench_table.py
                                                    # only those tests, here, this venv

``--tests`` runs pytest on the given paths in this checkout with this
interpreter, the way ``make test`` calls it, instead of a clone's ``.ci/run``:
what the tests of this script use; its figures are recorded under their own
measure, never as the suite's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from record import Figure, publish

ROOT = Path(__file__).resolve().parent.parent
GOAL_MINUTES = 8.0
_SUMMARY = re.compile(
    r"^=*\s*(?P<counts>\d+ (?:passed|failed|errors?|skipped|deselected|x?failed|xpassed|warnings?)"
    r".*?) in (?P<s>[\d.]+)s(?: \([\d:]+\))?\s*=*$"
)
_SLOW = re.compile(r"^(?P<s>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S.*)$")


@dataclass(frozen=True)
class Summary:
    """What pytest's output says of a run.

    Attributes
    ----------
    seconds : float
        pytest's own time for the session.
    counts : str
        Its counts line, e.g. ``"2871 passed, 3 warnings"``.
    passed : int
        Tests passed.
    failed : int
        Tests failed or in error.
    slowest : list of tuple of (float, str, str)
        The slowest test phases it listed: seconds, phase, test id.
    """

    seconds: float
    counts: str
    passed: int
    failed: int
    slowest: list[tuple[float, str, str]]


def parse(output: str) -> Summary:
    """pytest's final counts line and ``--durations`` list in ``output``.

    Raises
    ------
    ValueError
        No counts line with a time (the run did not finish).

    >>> s = parse("x\\n12.50s call     tests/a.py::t\\n"
    ...           "3 passed, 1 failed, 2 warnings in 61.20s (0:01:01)\\n")
    >>> s.seconds, s.passed, s.failed, s.slowest
    (61.2, 3, 1, [(12.5, 'call', 'tests/a.py::t')])
    """
    summary = None
    slowest = []
    for line in output.splitlines():
        line = line.strip()
        m = _SUMMARY.match(line)
        if m:
            summary = m
            continue
        d = _SLOW.match(line)
        if d:
            slowest.append((float(d["s"]), d["phase"], d["test"]))
    if summary is None:
        raise ValueError("pytest printed no counts line with its time: the run did not finish")
    counts = summary["counts"]

    def count(word: str) -> int:
        m = re.search(rf"(\d+) {word}", counts)
        return int(m.group(1)) if m else 0

    return Summary(
        float(summary["s"]), counts, count("passed"), count("failed") + count("error"), slowest
    )


def run_streaming(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv``, echoing its output line by line (progress); its exit code and
    output."""
    lines = []
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    return proc.returncode, "".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--tests", nargs="+", default=None, help="only these test paths, here (see above)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the clone")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; load average {load0:.1f}", flush=True)
    env = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-suite-"))
    t0 = time.perf_counter()
    if args.tests is None:
        clone = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env["CI"] = "true"
        code, output = run_streaming([str(clone / ".ci" / "run")], clone, env)
        what = "`make test` on a clean clone (`CI=true .ci/run`), pytest's time"
    else:
        command = [sys.executable, "-m", "pytest", "-q", "--durations=15", "-p",
                   "no:cacheprovider", *args.tests]  # fmt: skip
        code, output = run_streaming(command, ROOT, env)
        what = f"pytest on {' '.join(args.tests)}, this checkout"
    whole = time.perf_counter() - t0
    try:
        summary = parse(output)
    except ValueError as e:
        print(f"error: {e} (exit code {code}); output kept in {tmp}", file=sys.stderr)
        (tmp / "output.txt").write_text(output)
        return 1
    finally:
        if args.tests is None and not args.keep:
            shutil.rmtree(tmp / "clone", ignore_errors=True)
    minutes = summary.seconds / 60
    print()
    print(f"pytest: {summary.counts} in {summary.seconds:.1f} s ({minutes:.2f} min)")
    print(f"the whole run, set-up included: {whole:.1f} s ({whole / 60:.2f} min)")
    print(f"the {len(summary.slowest)} slowest test phases pytest listed:")
    for seconds, phase, test in summary.slowest:
        print(f"  {seconds:8.2f} s  {phase:<8} {test}")
    ok = code == 0 and summary.failed == 0
    met = ok and minutes <= GOAL_MINUTES
    print(
        f"exit code {code}; goal <= {GOAL_MINUTES:.0f} min of pytest with every test run: "
        f"{'met' if met else 'NOT met'}"
    )
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    if not ok:
        return 1
    publish(
        "bench/suite.py",
        [
            Figure(f"{what}, {summary.passed:,} tests passed", minutes, "min",
                   reference_name="no code reference: the goal", ratio=minutes / GOAL_MINUTES,
                   ratio_name="× goal", goal=f"≤ {GOAL_MINUTES:.0f} min", met=met),
            Figure(f"{what.split(', pytest')[0]}, the whole run with its set-up", whole / 60,
                   "min"),
        ],
        argv,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
