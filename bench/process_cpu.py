"""Benchmark of what a process the tests start costs in CPU: importing the heavy
libraries and the service, and ``nba train`` refusing an unreachable tracking
server, each with the bytecode ``make test`` compiles and without it, in one run.

"Without bytecode" is a fresh interpreter that finds no ``.pyc`` file
(``PYTHONPYCACHEPREFIX`` pointing at an empty directory, with
``PYTHONDONTWRITEBYTECODE=1`` so that none is written): what every process
paid when ``PYTHONDONTWRITEBYTECODE`` was set and nothing had compiled the
virtual environment. The reference, ``python -c pass``, runs in the same way.

Each case runs ``--repeat`` times; the figure is the median CPU time (user +
system) of the child, from ``resource.getrusage(RUSAGE_CHILDREN)``.

Usage::

    .venv/bin/python bench/process_cpu.py [--repeat 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

#: name -> Python code run with ``python -c``
CASES: dict[str, str] = {
    "pass": "pass",
    "pandas": "import pandas",
    "scipy.stats": "import scipy.stats",
    "mlflow": "import mlflow",
    "serving.main": "import serving.main",
    "nba train refusal": "from nba_cli.main import main; main()",
}


def _dead_server() -> str:
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def cpu_seconds(argv: list[str], env: dict[str, str], repeat: int) -> float:
    """Median CPU seconds (user + system) of ``argv`` run ``repeat`` times."""
    runs: list[float] = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), help="run these cases only")
    args = ap.parse_args(argv)
    names = ["pass", *(n for n in (args.only or CASES) if n != "pass")]
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"median CPU seconds of {args.repeat} runs each")
    print(f"{'case':<20}{'bytecode':>10}{'none':>10}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "logs")
        os.mkdir(logs)
        base = {
            **os.environ,
            "MLFLOW_TRACKING_URI": _dead_server(),
            "NBA_DATA_DIR": os.path.join(tmp, "data"),
        }
        cold = {
            **base,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPYCACHEPREFIX": os.path.join(tmp, "no-bytecode"),
        }
        for name in names:
            code = [sys.executable, "-c", CASES[name]]
            if name == "nba train refusal":
                code += ["train", "--logs", logs]
            warm = cpu_seconds(code, base, args.repeat)
            none = cpu_seconds(code, cold, args.repeat)
            print(f"{name:<20}{warm:10.2f}{none:10.2f}{none / max(warm, 1e-3):7.1f}x")
    print(f"run finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
