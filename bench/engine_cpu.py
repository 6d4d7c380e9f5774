"""The decision engine's own CPU per decision, in-process, with no HTTP server.

Calls :meth:`serving.engine.DecisionEngine.decide` (and ``decide_batch``) the way
the decision routes do -- the request already validated, the answer serialized by
pydantic -- on a real SQLite store and the benchmark's VW model (the one
``bench/serve.py`` trains), and prints the CPU time (user + system of the
process, ``time.process_time``) per decision and per batch decision, best of
``--rounds`` rounds of ``--decisions`` decisions each. After the warm-up the
collector is settled as a started worker settles it (``serving.heap.settle``
with the settings' values, in trees that have it): without that, collections at
Python's thresholds take a share of the time the server does not pay. A batch's
count of decisions is read from its answer, parsed once the clock has stopped.

The store runs with ``synchronous=NORMAL`` and without the group committer, so
that no fsync is timed and storing each decision (its record's JSON, the insert,
its own commit) is counted in the calling thread; on the server that work is the
group committer's and is shared by a group.

A reference is measured in the same process and rounds: the bare FastAPI app's
own work per request, done in-process (validating the same request body and
serializing a response of the same shape), so that figures from runs at
different machine loads can be compared by their ratio to it.

With ``--tree DIR`` (repeatable) each measurement runs in a subprocess that
imports ``nba`` and ``serving`` from that source tree instead of this one, the
trees alternating round by round (e.g. the code before a change, exported with
``git archive``, against the current one): the same HCPs, history and model for
each.

Usage::

    .venv/bin/python bench/engine_cpu.py [--decisions 1000] [--rounds 3]
    .venv/bin/python bench/engine_cpu.py --tree /tmp/before --tree . --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
CHANNELS = ["email"]
K = 3


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the engine of the source tree first on ``sys.path``; returns the
    figures (CPU ms per decision, best and all rounds)."""

    import numpy as np

    sys.path.insert(0, str(ROOT / "tests" / "serving"))
    from serving_testkit import add_population, make_settings

    from serving import schemas
    from serving.main import open_services

    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-engine-"))
    settings = make_settings(
        tmp, model_uri=args.model, store_synchronous="NORMAL", group_commit=False
    )
    svc = open_services(settings)
    engine, store = svc.engine, svc.store
    rng = np.random.default_rng(1)
    # a third of the HCPs have some history: touches of ours
    hcp_ids = add_population(store, svc.catalog, args.hcps, rng)
    principal = "decide-client"
    reqs = [
        schemas.DecisionRequest(hcp_id=hcp_ids[int(i)], channels=CHANNELS, k=K)
        for i in rng.integers(0, len(hcp_ids), args.decisions)
    ]
    body = json.dumps({"hcp_id": hcp_ids[0], "channels": CHANNELS, "k": K}).encode()

    def single() -> float:
        t0 = time.process_time()
        for r in reqs:
            _, out = engine.decide(r, principal)
            out.model_dump_json()
        return (time.process_time() - t0) * 1e3 / len(reqs)

    def batch() -> float:
        size = args.batch_size
        answers: list[bytes] = []
        t0 = time.process_time()
        for b in range(max(1, args.decisions // size)):
            ids = [hcp_ids[(b * size + j) % len(hcp_ids)] for j in range(size)]
            req = schemas.BatchDecisionRequest(
                hcp_ids=ids, channels=CHANNELS, k=K, context={"requester": "bench"}
            )
            if hasattr(engine, "decide_batch_json"):  # the route's call, its JSON
                answers.append(engine.decide_batch_json(req, principal, max_batch=10_000))
            else:  # a tree from before it (--tree): the model, serialized
                out = engine.decide_batch(req, principal, max_batch=10_000)
                answers.append(out.model_dump_json().encode())
        cpu = time.process_time() - t0
        # the count, read from each answer parsed whole once the clock is stopped
        n = sum(int(json.loads(a)["n_decisions"]) for a in answers)
        return cpu * 1e3 / n

    def reference() -> float:
        # the bare app's own work per request, in-process: validate, answer, serialize
        m = 20 * len(reqs)
        t0 = time.process_time()
        for _ in range(m):
            b = schemas.DecisionRequest.model_validate_json(body)
            schemas.DecisionResponse(
                event_id="00000000000000000000000000",
                model_version="noop",
                policy="noop",
                suggestions=[],
                chosen_action_id=None,
                activated=not b.defer_activation,
            ).model_dump_json()
        return (time.process_time() - t0) * 1e3 / m

    for r in reqs[:200]:  # warm-up: caches, the model's first predictions
        engine.decide(r, principal)
    try:  # the collector as a started worker has it (serving/heap.py), where the tree has it
        from serving import heap

        heap.settle(settings.gc_freeze, settings.gc_young_threshold)
    except ImportError:
        pass
    if args.components:
        return _components(engine, store, svc.catalog, hcp_ids, args.rounds)
    if args.profile:  # one profiled round of single decisions, instead of the figures
        import cProfile

        cProfile.runctx("single()", globals(), {"single": single}, args.profile)
        return {}
    figures: dict[str, list[float]] = {"single": [], "batch": [], "reference": []}
    for _ in range(args.rounds):
        figures["reference"].append(reference())
        figures["single"].append(single())
        figures["batch"].append(batch())
    store.close()
    return {"best": {k: min(v) for k, v in figures.items()}, "rounds": figures}


def _components(
    engine: Any, store: Any, catalog: Any, hcp_ids: list[str], rounds: int
) -> dict[str, Any]:
    """The parts of a decision this step changed, old and new way alternating in
    this process (best of ``rounds``, microseconds of CPU a call): the HCP's state
    read part by part as before against the merged statements, event ids one
    numpy draw each against drawn a block ahead, the decision row's JSON columns
    by ``json.dumps`` against without its set-up, VW's scores normalized with
    numpy against on a list. Each pair gives the same values (the tests say so)."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from nba.ids import EventIdSource, new_event_id
    from nba.policies.vw import _normalized
    from serving import store as store_mod

    now = datetime.now(UTC)
    since = now - timedelta(days=90)
    ids = hcp_ids[:300]

    def old_parts(h: str) -> Any:
        parts = store._state_parts(h, now, since, True)
        parts.update(store_mod._history_parts_built(store.dialect, h, now.date()))
        return store._fetch_parts(parts)

    def new_parts(h: str) -> Any:
        return store._fetch_state_parts(store._state_parts(h, now, since, True))

    decisions = []
    for h in ids[:50]:
        _, out = engine.decide(
            __import__("serving.schemas", fromlist=["x"]).DecisionRequest(
                hcp_id=h, channels=CHANNELS, k=K
            ),
            "decide-client",
        )
        decisions.append(store.get_decision(out.event_id))

    def old_json(d: Any) -> Any:
        return (
            json.dumps(list(d.channels_requested)),
            json.dumps(list(d.action_ids)),
            json.dumps([float(p) for p in d.probabilities]),
            json.dumps([[s.action_id, s.rule] for s in d.suppressed]),
            json.dumps([[s.action_id, float(s.probability)] for s in d.slate]),
        )

    def new_json(d: Any) -> Any:
        return store_mod.EventStore._decision_row(d, False)

    rng_old, src = np.random.default_rng(1), EventIdSource(np.random.default_rng(1))
    score_rng = np.random.default_rng(2)
    scores = [[float(np.float32(x)) for x in score_rng.dirichlet(np.ones(12))] for _ in range(300)]

    def old_pmf(raw: list[float]) -> Any:
        p = np.asarray(raw, dtype=np.float64)
        p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
        return p / math.fsum(p.tolist())

    pairs: dict[str, tuple[Any, Any, list[Any]]] = {
        "HCP state rows (all parts)": (old_parts, new_parts, ids),
        "event id": (
            lambda _: new_event_id(now, rng_old),
            lambda _: src.new(now),
            list(range(2000)),
        ),
        "decision row JSON columns": (old_json, new_json, decisions * 20),
        "VW scores to probabilities": (old_pmf, lambda r: _normalized(r, 12), scores * 5),
    }
    best: dict[str, dict[str, float]] = {k: {"old": math.inf, "new": math.inf} for k in pairs}
    for _ in range(rounds):
        for name, (old, new, inputs) in pairs.items():
            for label, fn in (("old", old), ("new", new)):
                t0 = time.process_time()
                for x in inputs:
                    fn(x)
                us = (time.process_time() - t0) * 1e6 / len(inputs)
                best[name][label] = min(best[name][label], us)
    return {"components": best}


def _run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree.resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable,
        str(HERE),
        "--child",
        "--model",
        args.model,
        "--decisions",
        str(args.decisions),
        "--rounds",
        str(args.rounds),
        "--hcps",
        str(args.hcps),
        "--batch-size",
        str(args.batch_size),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"engine bench of {tree} failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1000, help="per round")
    ap.add_argument("--rounds", type=int, default=3, help="best of, per process")
    ap.add_argument("--hcps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--model", default=None, help="model path (default: trained here)")
    ap.add_argument("--tree", action="append", type=Path, default=[], help="source tree to measure")
    ap.add_argument("--repeat", type=int, default=1, help="processes per tree, alternating")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--components",
        action="store_true",
        help="old and new way of each changed part, alternating, in one process (--model)",
    )
    ap.add_argument(
        "--profile", default=None, help="write cProfile stats of one round here (with --model)"
    )
    args = ap.parse_args(argv)
    if args.child or args.profile:
        print(json.dumps(_child(args)))
        return 0
    if args.components:
        if args.model is None:
            args.model = _train_model(Path(tempfile.mkdtemp(prefix="nba-bench-engine-model-")))
        out = _child(args)["components"]
        print(f"changed parts, best of {args.rounds} alternating rounds, CPU us a call:")
        print(f"{'part':<30}{'old us':>10}{'new us':>10}{'saved us':>10}")
        for name, v in out.items():
            print(f"{name:<30}{v['old']:>10.1f}{v['new']:>10.1f}{v['old'] - v['new']:>10.1f}")
        return 0
    if args.model is None:
        tmp = Path(tempfile.mkdtemp(prefix="nba-bench-engine-model-"))
        args.model = _train_model(tmp)
    trees = args.tree or [ROOT]
    print(
        f"engine in-process: {args.decisions} decisions a round, best of {args.rounds} "
        f"rounds; batches of {args.batch_size}; {args.hcps} HCPs; model {args.model}"
    )
    print(
        f"{'tree':<34}{'decision ms':>12}{'batch ms':>10}{'ref ms':>8}"
        f"{'decision/ref':>13}{'batch/ref':>10}{'single/batch':>13}"
    )
    results: dict[str, list[dict[str, float]]] = {str(t): [] for t in trees}
    for _ in range(args.repeat):
        for tree in trees:
            best = _run_tree(tree, args)["best"]
            results[str(tree)].append(best)
            s, b, r = best["single"], best["batch"], best["reference"]
            print(
                f"{str(tree)[-34:]:<34}{s:>12.3f}{b:>10.3f}{r:>8.3f}"
                f"{s / r:>13.1f}{b / r:>10.1f}{s / b:>13.2f}",
                flush=True,
            )
    if len(trees) > 1 or args.repeat > 1:
        print("best over processes:")
        for tree, runs in results.items():
            s = min(x["single"] for x in runs)
            b = min(x["batch"] for x in runs)
            r = min(x["reference"] for x in runs)
            print(f"  {tree}: {s:.3f} ms a decision, {b:.3f} ms a batch decision, ref {r:.3f}")
    return 0


def _train_model(tmp: Path) -> str:
    """The small VW model ``bench/serve.py`` trains when no registry has a champion
    (an empty registry here, so it is always trained: the same model every run)."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests" / "serving"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    from serve import bench_model

    return bench_model(tmp, None)


if __name__ == "__main__":
    raise SystemExit(main())
