"""Running wrk from the benchmarks: one Lua request script, one counter, parsed output.

``bench/serve.py`` and ``bench/outcomes.py`` drive the service with wrk (one
thread, N connections). Each gives the Lua functions that build its requests
and count its acknowledged answers in a global named ``counter``; this module
adds the summing of that counter over wrk's threads, runs wrk and reads its
report.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

#: appended to every script: sums the global ``%(counter)s`` over the threads
_COUNTER_TAIL = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local c = 0
  for _, t in ipairs(threads) do c = c + t:get("%(counter)s") end
  io.write("%(counter)s " .. c .. "\\n")
end
"""


def wrk_ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``3.41ms``, ``1.02s``, ``1.5m``) in milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"wrk latency {text!r} not understood")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports: requests sent, errors (non-2xx answers and socket
    errors), seconds, p50 and p99 latency in ms, and the script's counter."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    counted: int


def run_wrk(script: str, base: str, connections: int, seconds: float, counter: str) -> WrkResult:
    """Run wrk against ``base`` with ``script`` (Lua that sets ``request`` and
    ``response`` and keeps a global ``counter``) for ``seconds`` (at least 1).

    Raises
    ------
    RuntimeError
        When wrk's report lacks the request count, the latency distribution or
        the counter.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _COUNTER_TAIL % {"counter": counter})
    try:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        out = subprocess.run(
            [*cmd, "-s", f.name, base], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(f.name)
    done = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", out)
    # the distribution's own lines: a stdev column such as "62.50%" must not match
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    counted = re.search(rf"^{re.escape(counter)} (\d+)$", out, re.MULTILINE)
    if done is None or p50 is None or p99 is None or counted is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return WrkResult(
        int(done.group(1)),
        errors,
        wrk_ms(done.group(2) + done.group(3)) / 1e3,
        wrk_ms(p50.group(1)),
        wrk_ms(p99.group(1)),
        int(counted.group(1)),
    )


def add_loadgen_option(ap: argparse.ArgumentParser) -> None:
    """The ``--loadgen auto|wrk|python`` option of the HTTP benchmarks."""
    ap.add_argument(
        "--loadgen",
        default="auto",
        choices=["auto", "wrk", "python"],
        help="load generator (auto: wrk when on PATH, else Python/httpx)",
    )


def wants_wrk(loadgen: str) -> bool:
    """Whether ``--loadgen`` means wrk: ``wrk``, or ``auto`` with wrk on PATH.

    Raises
    ------
    SystemExit
        ``--loadgen wrk`` without wrk on PATH.
    """
    found = shutil.which("wrk") is not None
    if loadgen == "wrk" and not found:
        raise SystemExit("--loadgen wrk: wrk is not on PATH (Debian package wrk)")
    return loadgen == "wrk" or (loadgen == "auto" and found)
