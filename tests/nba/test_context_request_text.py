"""A batch's request text, written once for all its decisions' logged contexts, gives
the same context JSON as each decision's own request (:func:`nba.context.request_json`)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_decision_cpu_eighth import _contexts

from nba.context import ContextJSON, request_json


def test_context_json_with_the_request_text_equals_to_json() -> None:
    encode = ContextJSON()
    for ctx in _contexts(200, seed=11):
        # the text made from the mapping the context's request was copied from
        assert encode(ctx, request_json(dict(ctx.request))) == ctx.to_json()
        assert encode(ctx) == ctx.to_json()


def test_request_text_of_equal_values_keeps_their_own_notation() -> None:
    # 1 == 1.0 and True == 1, yet each is logged as written: the text is made from
    # the request object itself, never found by an equal value
    ctx = _contexts(1, seed=12)[0]
    encode = ContextJSON()
    texts = set()
    for value in (1, 1.0, True):
        c = replace(ctx, request={"n": value})
        text = encode(c, request_json({"n": value}))
        assert text == c.to_json()
        texts.add(text)
    assert len(texts) == 3
