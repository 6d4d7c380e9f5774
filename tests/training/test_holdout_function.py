"""The held-out scoring function's refusal of a decision missing from the log, and
the shared check behind it (:func:`nba.logs.engine.first_missing_context`)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nba.logs.engine import first_missing_context
from training.holdout import HoldoutError, HoldoutFunction


def test_first_missing_context_names_the_first_row_without_one() -> None:
    ids = ["e1", "e2", "e3"]
    whole = pa.table({"event_id": ids, "context": ["{}", "{}", "{}"]})
    assert first_missing_context(whole) is None
    holed = pa.table({"event_id": ids, "context": ["{}", None, None]})
    assert first_missing_context(holed) == "e2"
    assert first_missing_context(holed.slice(0, 0)) is None


def test_holdout_function_names_a_decision_gone_from_the_log() -> None:
    # no policy files: the check comes before the policy is loaded
    fn = HoldoutFunction(())
    with pytest.raises(HoldoutError, match=r"event 'e2' was held out but is not an activated"):
        fn(
            pa.array(["{}", None], pa.string()),
            pa.array([["a@email"], ["b@email"]], pa.list_(pa.string())),
            pa.array(["e1", "e2"], pa.string()),
        )
