"""The trained policy as an ``mlflow.pyfunc`` model.

The model directory carries the saved VW policy (model bytes, VW config,
featurizer config, catalog snapshot) as the artifact ``policy``; loading it
gives a predict-only :class:`nba.policies.vw.VWPolicy`.

Input: a DataFrame with columns ``context`` (the logged context JSON) and
``action_ids`` (list of eligible action ids, in scoring order). Output: a
DataFrame with column ``probabilities`` (one list per row, same order, sums to 1).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

POLICY_ARTIFACT = "policy"


class NBAPyfuncModel(PythonModel):
    """pyfunc wrapper of a saved VW policy (loaded predict-only)."""

    def load_context(self, context: Any) -> None:
        from nba.policies.vw import VWPolicy

        self.policy = VWPolicy.load(context.artifacts[POLICY_ARTIFACT], predict_only=True)

    def predict(self, context, model_input, params=None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        missing = [c for c in ("context", "action_ids") if c not in model_input.columns]
        if missing:
            raise ValueError(f"nba model input: missing column(s) {', '.join(missing)}")
        out = []
        for ctx, aids in zip(model_input["context"], model_input["action_ids"], strict=True):
            out.append(self.policy.probabilities_json(str(ctx), [str(a) for a in aids]).tolist())
        return pd.DataFrame({"probabilities": out})
