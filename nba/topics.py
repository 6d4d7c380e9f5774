"""Which content topics suit which adoption stage: one table for the simulated
world (where a stage-matched topic raises the response) and for the reasons a
rep reads ("Safety content suits an HCP at the 'considering' stage").

A topic suits a stage when it is what an HCP at that stage is looking for to
move on: mechanism and efficacy for the unaware, safety, access and guidelines
for those considering, dosing and patient support while trialing, and so on.

>>> suits_stage("considering", "safety"), suits_stage("unaware", "dosing")
(True, False)
>>> stage_topic_matrix(("efficacy", "dosing")).tolist()[:2]
[[1.0, 0.0], [1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from nba.domain import ADOPTION_STAGES

#: adoption stage -> topics that suit it, in :data:`nba.domain.ADOPTION_STAGES` order.
#: Topics missing from a catalog's vocabulary simply match nothing there.
STAGE_TOPICS: Mapping[str, tuple[str, ...]] = {
    "unaware": ("mechanism", "efficacy", "clinical_data"),
    "aware": ("efficacy", "clinical_data", "guidelines"),
    "considering": ("safety", "access_coverage", "guidelines", "real_world_evidence"),
    "trialing": ("dosing", "patient_support", "safety"),
    "adopting": ("patient_support", "cost_savings", "real_world_evidence", "access_coverage"),
    "advocate": ("real_world_evidence", "clinical_data", "guidelines"),
}

if tuple(STAGE_TOPICS) != ADOPTION_STAGES:  # pragma: no cover - guards an edit of the table
    raise RuntimeError("nba.topics.STAGE_TOPICS must list every adoption stage, in order")


def suits_stage(stage: str, topic: str, table: Mapping[str, Sequence[str]] = STAGE_TOPICS) -> bool:
    """Whether content on ``topic`` suits an HCP at adoption ``stage`` (False for unknown ones)."""
    return topic in table.get(stage, ())


def stage_topic_matrix(
    topics: Sequence[str], table: Mapping[str, Sequence[str]] = STAGE_TOPICS
) -> npt.NDArray[np.float64]:
    """The table as a 0/1 matrix, shape (len(ADOPTION_STAGES), len(topics)).

    Parameters
    ----------
    topics : sequence of str
        Column order (a catalog's topic vocabulary).
    table : mapping stage -> topics, optional
        Another table of the same shape (the simulator's ``WorldConfig.stage_topics``).
    """
    out = np.zeros((len(ADOPTION_STAGES), len(topics)))
    for si, stage in enumerate(ADOPTION_STAGES):
        suited = table.get(stage, ())
        for ti, topic in enumerate(topics):
            out[si, ti] = float(topic in suited)
    return out
