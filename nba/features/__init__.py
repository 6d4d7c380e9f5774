"""The one featurizer: decision context + eligible actions -> VW examples.

Training (a whole Arrow table of logged decisions at once) and serving (one
decision at a time) go through this module, and both paths produce the same
bytes for the same decision, so what the model saw in training is exactly what
it sees when serving.

An example is VW's multi-line ADF text: one ``shared`` line built from the
context, then one line per eligible action, in the given order::

    shared |p spec=cardiology mkt=US stage=aware dec=7 aff:0.650 cons=email |h ... |r ... |c ...
    |T efficacy |K email |F video |I VEL-EFF-02 |x ch_t30:2 aff_email:0.650 st_top=aware_efficacy

Namespaces (the first letter is what VW's ``-q`` interactions refer to):

========  =====================================================================
``p``     HCP profile: specialty, market, adoption stage, decile, digital
          affinity, no-see flag, consents
``h``     history: touches per channel over 7/30/90 days, engagements per
          channel (30 days) and per topic (90 days), days since the last touch
          per channel, last content seen
``r``     request features supplied by the caller (strings are categorical,
          numbers numeric, booleans ``true``/``false``)
``c``     calendar: day of week, month
``T``     action topic
``K``     action channel
``F``     action format
``I``     action content id
``x``     crosses of the action with the context: touches and engagements on
          this action's channel, engagements on its topic, days since a touch
          on its channel (value and age bucket), repeat of the last content,
          channel x digital affinity, stage x topic, missing consent,
          engagements on this topic *on this channel*, and how long ago this
          action's content item last reached the HCP (age bucket)
========  =====================================================================

History features from context version 2 (see :mod:`nba.context`):

========================  =================================================
``x ch_dstb=<bucket>``    age bucket of the last touch on the action's
                          channel (beside the raw ``ch_dst:<days>``)
``x tc_e90:n``            engagements on the action's topic via its
                          channel in 90 days (left out when 0)
``x it_ago=<bucket>``     the action's content item last reached the HCP
                          that long ago; left out when not within 90 days
                          (so "never" is the baseline every bucket is
                          learned against)
========================  =================================================

Age buckets (:data:`~nba.features.config.AGE_BUCKETS`) are named by their
upper bound in days: ``0d``, ``1d``, ``3d`` (2-3), ``1w`` (4-7), ``2w``
(8-14), ``1m`` (15-30), ``3m`` (31-90), ``old``. Ages are categorical
because what they stand for (fatigue that wears off, a repeat that still
annoys) is not linear in days; counts stay numeric because they are small.
The topic x channel map is featurized per action only: writing all of it
into ``h`` as well (crossed with ``T`` and ``K``) gained 0.7 points of the
observable ceiling (one seed) for a quarter more featurizing CPU. A context
of version 1 lacks both new maps and gets no ``tc_e90`` or ``it_ago`` token;
the new tokens only add features, so a model trained before them scores the
same lines as before (bar hash collisions).

Features from context version 3 (interest, stated preferences, declared
attributes; see :mod:`nba.context`):

==========================  ===============================================
``p a_<name>=<value>``      a declared attribute (category, bucket name,
                            ``true``/``false``; one token per list value);
                            ``a_<name>:<number>`` for numeric ones
``h int_<topic>:<value>``   decayed interest per topic (crossed with ``T``
                            and ``K`` by the ``hT``/``hK`` interactions)
``h top_int=<topic>``       the topic of highest interest (the first in
                            name order among equals)
``x it_int:<value>``        interest in the action's own topic
``x sp_top``, ``x sp_ch``   the HCP stated the action's topic, its channel
==========================  ===============================================

Features from context version 4 (see :mod:`nba.context`):

==============================  ===========================================
``x it_pull:<n>``               pulls of the action's topic in 90 days
``x it_pull_<channel>:<n>``     the same count, keyed by the action's channel
==============================  ===========================================

Features from context version 5 (see :mod:`nba.context`):

==============================  ===========================================
``h ovr90:<n>``                 the HCP's decisions a rep overrode in 90
                                days (left out when 0; last in ``h``)
==============================  ===========================================

Numbers are written as integers (counts) or with exactly three decimals
(affinity, numeric request values), so both paths format them identically.
Names are cleaned: whitespace, ``:`` and ``|`` become ``_``.

Contexts imported from foreign DSJSON logs (``{"dsjson": {...}}``) carry their
own namespaces; they are passed through (their ``_multi`` entries are the action
lines, in order).

The package is split along its seams: :mod:`nba.features.config` (settings,
name and number formats), :mod:`nba.features.tokens` (the per-decision path),
:mod:`nba.features.bulk` (the Arrow path), :mod:`nba.features.batch` (the
columnar result), :mod:`nba.features.dsjson` (DSJSON in and out) and
:mod:`nba.features.featurizer` (the :class:`Featurizer` that ties them).

>>> from datetime import date
>>> from nba.catalog import Catalog
>>> from nba.context import DecisionContext, History
>>> from nba.domain import Action, HCPProfile
>>> hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.65)
>>> ctx = DecisionContext(hcp, date(2026, 1, 5), History(touches_30d={"email": 2}))
>>> f = Featurizer(Catalog.default())
>>> lines = f.featurize_one(ctx, [Action("VEL-EFF-02", "email")])
>>> print(lines[0])  # doctest: +NORMALIZE_WHITESPACE
shared |p spec=cardiology mkt=US stage=aware dec=7 aff:0.650 cons=email
       |h t30_email:2 |r |c dow=mon mon=1
>>> print(lines[1])  # doctest: +NORMALIZE_WHITESPACE
|T efficacy |K email |F video |I VEL-EFF-02
|x ch_t30:2 ch_dst_none aff_email:0.650 st_top=aware_efficacy
"""

from __future__ import annotations

from nba.features.batch import FeaturizedBatch
from nba.features.config import (
    ACTION_NAMESPACES,
    FEATURIZER_VERSION,
    NAMESPACE_DOC,
    SHARED_NAMESPACES,
    FeaturizeError,
    FeaturizerConfig,
    clean,
    fixed3,
)
from nba.features.dsjson import dsjson_passthrough_lines
from nba.features.featurizer import Featurizer

__all__ = [
    "ACTION_NAMESPACES",
    "FEATURIZER_VERSION",
    "NAMESPACE_DOC",
    "SHARED_NAMESPACES",
    "FeaturizeError",
    "FeaturizedBatch",
    "Featurizer",
    "FeaturizerConfig",
    "clean",
    "dsjson_passthrough_lines",
    "fixed3",
]
