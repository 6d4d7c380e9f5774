"""The decision row's JSON columns are written without json.dumps's per-call set-up:
the text must be json.dumps's, on varied strings and floats."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np

from nba.domain import Decision, SlateSlot, Suppression
from serving.store import EventStore, _json_floats, _json_strings, _slate_json

ODD = ["a@email", 'q"uote', "back\\slash", "tab\t\n", "\x01ctl", "é", "𝄞", "", " ", "/"]


def _old_row_json(d: Decision) -> tuple[str, str, str, str, str | None]:
    """The columns as they were written before (json.dumps)."""
    return (
        json.dumps(list(d.channels_requested)),
        json.dumps(list(d.action_ids)),
        json.dumps([float(p) for p in d.probabilities]),
        json.dumps([[s.action_id, s.rule] for s in d.suppressed]),
        json.dumps([[s.action_id, float(s.probability)] for s in d.slate]) if d.slate else None,
    )


def test_strings_and_floats_as_json_dumps() -> None:
    rng = np.random.default_rng(3)
    for n in range(0, len(ODD) + 1):
        assert _json_strings(ODD[:n]) == json.dumps(ODD[:n])
        assert _json_strings(tuple(ODD[n:])) == json.dumps(ODD[n:])
    for _ in range(300):
        k = int(rng.integers(0, 12))
        xs = list(rng.dirichlet(np.ones(k))) if k else []
        xs += [float(x) for x in rng.choice([0.0, 1.0, 1e-300, 5e-324, 0.1, 1 / 3, 1e17], 2)]
        assert _json_floats(xs) == json.dumps([float(x) for x in xs])
        assert _json_floats(np.asarray(xs)) == json.dumps([float(x) for x in xs])
    for bad in ([math.nan], [0.5, math.inf], [-math.inf]):
        assert _json_floats(bad) == json.dumps(bad)
    assert _slate_json([SlateSlot("x", math.nan), SlateSlot("y", 1.0)]) == json.dumps(
        [["x", math.nan], ["y", 1.0]]
    )


def test_floats_of_every_magnitude_as_json_dumps() -> None:
    """The numbers' text is taken from orjson where it writes what ``repr`` writes
    and from ``repr`` elsewhere: magnitudes from 1e-8 to 1e20 (``repr`` turns to an
    exponent below 1e-4 and from 1e16, orjson at other bounds), both signs, zeros,
    and numbers whose digits hold four zeros after the point."""
    rng = np.random.default_rng(11)
    edges = [1e-4, 9.999e-05, 1e-05, 4e-05, 1e-06, 1e15, 9999999999999998.0, 1e16, 1e21]
    edges += [10.00001, 0.00010001, -0.0, 0.0, 1.0, -2.5e-05, 123456.789]
    for x in edges:
        assert _json_floats([0.5, x]) == json.dumps([0.5, x])
    for _ in range(3000):
        k = int(rng.integers(1, 13))
        xs = (rng.random(k) * 10.0 ** rng.integers(-8, 21, k) * rng.choice([-1, 1], k)).tolist()
        assert _json_floats(xs) == json.dumps(xs)


def test_decision_rows_as_before() -> None:
    rng = np.random.default_rng(8)
    for i in range(200):
        n = int(rng.integers(1, 9))
        ids = tuple(f"c{j}{ODD[j % len(ODD)][:2]}@ch{j % 3}" for j in range(n))
        p = rng.dirichlet(np.ones(n))
        chosen = int(rng.integers(n))
        k = int(rng.integers(1, n + 1))
        rest = [j for j in rng.permutation(n) if j != chosen][: k - 1]
        taken: list[int] = []
        slate = []
        for j in [chosen, *rest]:
            left = [m for m in range(n) if m not in taken]
            slate.append(SlateSlot(ids[j], float(p[j]) / math.fsum(float(p[m]) for m in left)))
            taken.append(j)
        d = Decision(
            event_id=f"E{i}",
            ts=datetime(2026, 3, 1, tzinfo=UTC),
            hcp_id="h",
            requester="r",
            channels_requested=tuple(ODD[: i % 4 + 1]),
            context="{}",
            catalog_version="c",
            action_ids=ids,
            probabilities=tuple(float(x) for x in p),
            chosen_index=chosen,
            chosen_action_id=ids[chosen],
            propensity=float(p[chosen]),
            policy="vw",
            model_version="m",
            suppressed=tuple(Suppression(f"s{j}@e", ODD[j % len(ODD)]) for j in range(i % 3)),
            slate=tuple(slate) if k > 1 else (),
        )
        row = EventStore._decision_row(d, deferred=False)
        assert (row[4], row[7], row[8], row[14], row[18]) == _old_row_json(d)
