"""DSJSON on the featurizer's side: VW lines as DSJSON namespaces, and contexts
imported from foreign DSJSON logs passed through as VW lines.

Contexts imported from other VW-based systems (``{"dsjson": {...}}``) carry
their own namespaces: each object-valued key is a namespace, scalar keys go to
VW's default namespace, and their ``_multi`` entries (or ``dsjson_actions``) are
the action lines, in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nba.features.config import FeaturizeError, clean, fixed3

#: a logged context that holds a foreign DSJSON feature object
DSJSON_PREFIX = re.compile(r'^\s*\{\s*"dsjson"\s*:')
#: the same test as a regular expression for Arrow's ``match_substring_regex``
DSJSON_PREFIX_PATTERN = DSJSON_PREFIX.pattern


def line_to_namespaces(line: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for chunk in line.split("|")[1:]:
        toks = chunk.split()
        if not toks:
            continue
        ns, feats = toks[0], toks[1:]
        d = out.setdefault(ns, {})
        for t in feats:
            name, sep, val = t.partition(":")
            d[name] = float(val) if sep else 1.0
    return out


def _dsjson_tokens(obj: Mapping[str, Any], prefix: str = "") -> list[str]:
    toks: list[str] = []
    for k, v in obj.items():
        name = clean(f"{prefix}{k}")
        if isinstance(v, bool):
            if v:
                toks.append(name)
        elif isinstance(v, int | float):
            toks.append(f"{name}:{fixed3(v)}")
        elif isinstance(v, str):
            toks.append(f"{name}={clean(v)}")
        elif isinstance(v, list):
            for j, e in enumerate(v):
                if isinstance(e, int | float) and not isinstance(e, bool):
                    toks.append(f"{name}_{j}:{fixed3(e)}")
                elif isinstance(e, str):
                    toks.append(f"{name}={clean(e)}")
        elif isinstance(v, Mapping):
            toks.extend(_dsjson_tokens(v, prefix=f"{name}_"))
    return toks


def _dsjson_namespaces(obj: Mapping[str, Any]) -> str:
    """VW namespaces from a DSJSON feature object: each object-valued key is a
    namespace; scalar keys go to the default namespace."""
    parts: list[str] = []
    scalars = {k: v for k, v in obj.items() if not k.startswith("_") and not isinstance(v, Mapping)}
    if scalars:
        parts.append("| " + " ".join(_dsjson_tokens(scalars)))
    for k, v in obj.items():
        if k.startswith("_") or not isinstance(v, Mapping):
            continue
        toks = _dsjson_tokens(v)
        parts.append(f"|{clean(k)} " + " ".join(toks) if toks else f"|{clean(k)}")
    return " ".join(parts)


def dsjson_passthrough_lines(context_json: str, action_ids: Sequence[str]) -> list[str]:
    """VW lines of an imported DSJSON context.

    Two forms are accepted: ``{"dsjson": {shared namespaces}, "dsjson_actions":
    {action_id: {namespaces}}}`` (what :mod:`nba.logs.dsjson` imports; an action
    without an entry gets ``{"action": {"id": action_id}}``), or ``{"dsjson": c}``
    where ``c`` holds ``_multi`` with one entry per action, in order.
    """
    try:
        d = json.loads(context_json)
    except json.JSONDecodeError as exc:
        raise FeaturizeError(f"DSJSON context: not valid JSON: {exc}") from exc
    c = d.get("dsjson") if isinstance(d, Mapping) else None
    if not isinstance(c, Mapping):
        raise FeaturizeError("DSJSON context: 'dsjson' must be an object (the shared features)")
    n_actions = len(action_ids)
    if "_multi" in c:
        multi = c["_multi"]
        if not isinstance(multi, list) or not all(isinstance(m, Mapping) for m in multi):
            raise FeaturizeError("DSJSON context: '_multi' must be a list of action objects")
        if len(multi) != n_actions:
            raise FeaturizeError(
                f"DSJSON context: '_multi' has {len(multi)} actions but the decision lists "
                f"{n_actions}"
            )
    else:
        per_action = d.get("dsjson_actions") or {}
        if not isinstance(per_action, Mapping):
            raise FeaturizeError("DSJSON context: 'dsjson_actions' must be an object")
        multi = [
            per_action[a] if isinstance(per_action.get(a), Mapping) else {"action": {"id": a}}
            for a in action_ids
        ]
    shared = _dsjson_namespaces(c)
    return [f"shared {shared}".rstrip(), *(_dsjson_namespaces(m) or "|" for m in multi)]
