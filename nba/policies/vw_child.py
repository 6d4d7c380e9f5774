"""The child process of :class:`nba.policies.vw.NativeLearner`: VW's native parser
learning from its standard input.

Run as ``python -m nba.policies.vw_child SPEC`` where ``SPEC`` is JSON with
``args`` (VW's command line, reading ``-d /dev/stdin``), ``model`` (where the
model is saved) and ``stats`` (where the example count and loss are written).

It imports nothing but the standard library and ``vowpalwabbit``, not
:mod:`nba.policies.vw` and its dependencies (NumPy, Arrow, the featurizer):
the child starts while training joins the logs, on the same two cores, so the
CPU its imports take is taken from the training run (about half a second of
CPU before this module had its own entry point).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import vowpalwabbit


def main(spec_json: str) -> int:
    """Learn from ``-d``, save the model, write the statistics; the exit code.

    Parameters
    ----------
    spec_json : str
        ``{"args": [...], "model": path, "stats": path}``.
    """
    spec = json.loads(spec_json)
    args = [*spec["args"], "--quiet"]
    try:
        ws = vowpalwabbit.Workspace(arg_list=args)
    except Exception as exc:  # VW raises plain RuntimeError/Exception types
        print(f"VW refused the command line {' '.join(spec['args'])!r}: {exc}", file=sys.stderr)
        return 2
    stats = {"weighted_examples": ws.get_weighted_examples(), "sum_loss": ws.get_sum_loss()}
    ws.save(spec["model"])
    ws.finish()
    Path(spec["stats"]).write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
