"""Push vs pull: does a learning policy beat the campaign timetable?

Runs the push campaign, segment rules, uniform, VW contextual bandits and the
oracle on the same simulated populations and seeds, and reports weekly
engagement, total reward, unsubscribes and the normalized score
``(V - V_uniform) / (V_oracle - V_uniform)`` (see ``docs/push_vs_pull.md``).

``python -m experiments.push_vs_pull --out DIR`` or ``nba experiment push-vs-pull``.
"""

from experiments.push_vs_pull.experiment import (
    DEFAULT_POLICIES,
    EXPERIMENT_NAME,
    ExperimentConfig,
    ExperimentResult,
    RunFigures,
    normalized_score,
    run,
)
from experiments.push_vs_pull.measure import ExperimentError, PolicyRun, run_policy

__all__ = [
    "DEFAULT_POLICIES",
    "EXPERIMENT_NAME",
    "ExperimentConfig",
    "ExperimentError",
    "ExperimentResult",
    "PolicyRun",
    "RunFigures",
    "normalized_score",
    "run",
    "run_policy",
]
