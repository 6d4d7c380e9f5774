"""Configuration of the simulated HCP world: every distribution and rate in one
frozen record, with a flat ``params`` dict for MLflow.

The defaults are the calibration documented in ``docs/simulator.md``.

>>> cfg = WorldConfig()
>>> cfg.params["no_see_rate"]
0.45
>>> try:
...     WorldConfig(no_see_rate=1.5)
... except SimulatorConfigError as exc:
...     print(exc)
WorldConfig: field 'no_see_rate': must be in [0, 1], got 1.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from nba.domain import ADOPTION_STAGES, ValidationError, read_toml
from nba.hcp_features import HCPFeatures
from nba.topics import STAGE_TOPICS


class SimulatorConfigError(ValidationError):
    """A simulator parameter is invalid; the message names the field."""


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(d)


@lru_cache(maxsize=1)
def specialty_vocabulary() -> tuple[str, ...]:
    """The specialties an HCP profile may name, in their file order: the service's
    vocabulary (``nba/data/hcp_features.toml``, :class:`nba.hcp_features.HCPFeatures`).
    The simulated population's specialty names are this list; the tables below give
    numbers to some of its names (a specialty without a share is never drawn)."""
    return HCPFeatures.default().specialties


#: specialty -> share of the population (names from :func:`specialty_vocabulary`)
DEFAULT_SPECIALTY_SHARES: Mapping[str, float] = {
    "general_practice": 0.28,
    "internal_medicine": 0.18,
    "cardiology": 0.15,
    "endocrinology": 0.08,
    "lipidology": 0.04,
    "nephrology": 0.07,
    "nurse_practitioner": 0.12,
    "pharmacist": 0.08,
}

#: specialty -> email open probability of a neutral HCP (before interest, fatigue, ...)
DEFAULT_SPECIALTY_OPEN_RATE: Mapping[str, float] = {
    "general_practice": 0.12,
    "internal_medicine": 0.13,
    "cardiology": 0.16,
    "endocrinology": 0.18,
    "lipidology": 0.21,
    "nephrology": 0.08,
    "nurse_practitioner": 0.034,
    "pharmacist": 0.026,
}

#: specialty -> topic -> mean interest shift (logit)
DEFAULT_SPECIALTY_TOPIC_BIAS: Mapping[str, Mapping[str, float]] = {
    "general_practice": {"dosing": 0.4, "cost_savings": 0.4, "patient_support": 0.3},
    "internal_medicine": {"guidelines": 0.4, "dosing": 0.3, "safety": 0.2},
    "cardiology": {"clinical_data": 0.5, "efficacy": 0.4, "real_world_evidence": 0.2},
    "endocrinology": {"mechanism": 0.4, "clinical_data": 0.3, "guidelines": 0.2},
    "lipidology": {"mechanism": 0.5, "clinical_data": 0.5, "efficacy": 0.3},
    "nephrology": {"safety": 0.5, "dosing": 0.4},
    "nurse_practitioner": {"patient_support": 0.5, "dosing": 0.3, "access_coverage": 0.2},
    "pharmacist": {"access_coverage": 0.5, "cost_savings": 0.4, "safety": 0.3},
}

#: adoption stage -> topics that match it (content at the right stage works better):
#: the table the rep-facing reasons use too (:data:`nba.topics.STAGE_TOPICS`)
DEFAULT_STAGE_TOPICS: Mapping[str, tuple[str, ...]] = STAGE_TOPICS

DEFAULT_CONSENT_RATES: Mapping[str, float] = {
    "rep_visit": 0.92,
    "remote_call": 0.70,
    "email": 0.72,
    "webinar": 0.80,
    "portal": 0.78,
}

#: channel -> probability of the primary response of a neutral HCP
#: (email: open given delivery; rep_visit: meeting held; remote_call: call held;
#: webinar: registered; portal: visited)
DEFAULT_PRIMARY_RATE: Mapping[str, float] = {
    "rep_visit": 0.45,
    "remote_call": 0.30,
    "webinar": 0.07,
    "portal": 0.12,
}

#: channel -> probability of the follow-up response given the primary one
#: (email: click given open; webinar: attended given registered; portal: download given visit)
DEFAULT_SECONDARY_RATE: Mapping[str, float] = {
    "email": 0.14,
    "webinar": 0.45,
    "portal": 0.30,
}

#: Chance of a sample request given the meeting or call was held (docs/simulator.md,
#: "Business value outcomes"); other channels take no sample requests.
DEFAULT_SAMPLE_REQUEST_RATE: Mapping[str, float] = {
    "rep_visit": 0.12,
    "remote_call": 0.06,
}

#: Chance of a prescription (Rx) signal given the channel's primary engagement
#: (opened, meeting or call held, registered, visited).
DEFAULT_RX_SIGNAL_RATE: Mapping[str, float] = {
    "rep_visit": 0.05,
    "remote_call": 0.03,
    "email": 0.01,
    "webinar": 0.03,
    "portal": 0.01,
}

DEFAULT_FATIGUE_HALFLIFE: Mapping[str, float] = {
    "rep_visit": 14.0,
    "remote_call": 10.0,
    "email": 7.0,
    "webinar": 21.0,
    "portal": 5.0,
}

DEFAULT_FATIGUE_COEF: Mapping[str, float] = {
    "rep_visit": 0.35,
    "remote_call": 0.30,
    "email": 0.22,
    "webinar": 0.30,
    "portal": 0.15,
}


@dataclass(frozen=True)
class WorldConfig:
    """Distributions and rates of the simulated world (all have defaults).

    Population
    ----------
    specialty_shares, specialty_open_rate, specialty_topic_bias : mappings
    decile_skew : float
        ``P(decile = d)`` is proportional to ``d ** -decile_skew`` (many low deciles).
    stage_shares : tuple of 6 floats
        Initial adoption stage shares, in :data:`nba.domain.ADOPTION_STAGES` order.
    no_see_rate : float
        Share of HCPs who restrict in-person rep access.
    consent_rates : mapping channel -> float
    digital_affinity_beta : (a, b)
        Beta distribution of the observable digital affinity.

    Hidden state
    ------------
    channel_affinity_sd, topic_interest_sd : float
        Spread (logit) of per-HCP channel and topic preferences.
    stage_match_bonus : float
        Logit bonus of content whose topic matches the HCP's adoption stage.
    novelty_coef : float
        Logit bonus of content on topics the HCP knows little about.
    repeat_coef : float
        Logit penalty per earlier touch with the same content item.
    fatigue_halflife, fatigue_coef : mappings channel -> float
        Fatigue rises by 1 per touch on a channel, halves every ``halflife`` days,
        and lowers the response logit by ``coef`` per unit.
    unsubscribe_base : float
        Median per-email unsubscribe probability of a rested HCP.
    unsubscribe_fatigue : float
        Unsubscribe probability multiplies by ``exp(unsubscribe_fatigue * fatigue)``.
    knowledge_gain, advance_prob : float
        Per engagement: knowledge of the topic moves ``gain`` of the way to 1; the
        stage advances with ``advance_prob`` (doubled for stage-matched content).
    sample_request_rate, rx_signal_rate : mappings channel -> float
        Business value outcomes: chance of a ``sample_requested`` / ``rx_signal``
        given the channel's primary event (docs/simulator.md, "Business value
        outcomes"); a channel left out never produces one.

    Requesters
    ----------
    email_due_prob, email_cap_share, email_min_gap_days
        Each weekday every email-consented HCP last emailed at least ``gap``
        days ago is due with ``due_prob``; at most ``cap_share * n`` are sent.
    rep_capacity_share, rep_min_gap_days
        Reps see at most ``capacity_share * n`` HCPs a weekday, higher deciles first.
    digital_due_prob
        Daily chance (scaled by ``0.5 + digital_affinity``) that the portal/webinar
        platform asks for a decision.
    max_delay_days : int
        Outcome delays are capped here (must exceed any reward window used).

    Pull signals (``simulators.hcp.pulls``; docs/simulator.md, "Pull signals")
    ------------
    pull_interest_coef : float
        How sharply pulls follow interest: HCP ``h`` pulls topic ``t`` with weight
        ``exp(pull_interest_coef * topic_interest[h, t]) * (1 - knowledge[h, t])``.
    pull_knowledge_gain : float
        Each pulled topic moves knowledge of it ``gain`` of the way to 1 (the day
        after), so pulls on a topic fade as the HCP learns it.
    detail_extra_topics : float
        Topics pulled in a held rep visit or remote call: ``1 + Poisson(extra * w)``,
        ``w`` the HCP's mean pull weight.
    detail_dwell_median_s, portal_dwell_median_s, dwell_sigma : float
        Seconds spent per pulled topic in a detail / per portal view: log-normal
        around ``median * (0.5 + (1 - knowledge))``.
    portal_view_rate : float
        Daily portal views (Poisson) of a portal-registered HCP with mean pull weight
        1 and digital affinity 0.5; scales with ``0.5 + digital_affinity`` and ``w``.
    webinar_question_rate : float
        Questions asked per attended webinar (Poisson mean, times ``w``).

    Visit requests (docs/simulator.md, "Visit requests"; off at rate 0)
    --------------
    visit_request_rate : float
        Daily chance that an HCP who may be visited or called asks for a visit on the
        portal, times ``exp(channel_affinity[h, rep_visit])`` (HCPs who like rep
        contact ask more). 0 (default): no requests, and the world is exactly as
        without this feature.
    visit_request_logit : float
        While the request waits (at most ``visit_request_days`` days, until a rep
        visit or call happens), the HCP's response logit to rep visits and remote
        calls is raised by this much.
    visit_request_days : int
        How long a request waits before the HCP gives up.
    """

    specialty_shares: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_SPECIALTY_SHARES)
    )
    specialty_open_rate: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_SPECIALTY_OPEN_RATE)
    )
    specialty_topic_bias: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: _frozen(DEFAULT_SPECIALTY_TOPIC_BIAS)
    )
    stage_topics: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: _frozen(DEFAULT_STAGE_TOPICS)
    )
    decile_skew: float = 0.7
    stage_shares: tuple[float, ...] = (0.25, 0.30, 0.20, 0.12, 0.10, 0.03)
    no_see_rate: float = 0.45
    consent_rates: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_CONSENT_RATES)
    )
    digital_affinity_beta: tuple[float, float] = (2.0, 2.0)
    channel_affinity_sd: float = 0.3
    topic_interest_sd: float = 0.35
    stage_match_bonus: float = 0.4
    novelty_coef: float = 0.4
    repeat_coef: float = 0.35
    digital_affinity_coef: float = 1.0
    delivery_rate: float = 0.97
    primary_rate: Mapping[str, float] = field(default_factory=lambda: _frozen(DEFAULT_PRIMARY_RATE))
    secondary_rate: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_SECONDARY_RATE)
    )
    sample_request_rate: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_SAMPLE_REQUEST_RATE)
    )
    rx_signal_rate: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_RX_SIGNAL_RATE)
    )
    fatigue_halflife: Mapping[str, float] = field(
        default_factory=lambda: _frozen(DEFAULT_FATIGUE_HALFLIFE)
    )
    fatigue_coef: Mapping[str, float] = field(default_factory=lambda: _frozen(DEFAULT_FATIGUE_COEF))
    unsubscribe_base: float = 0.0012
    unsubscribe_sd: float = 0.6
    unsubscribe_fatigue: float = 0.6
    knowledge_gain: float = 0.2
    advance_prob: float = 0.05
    email_due_prob: float = 0.45
    email_cap_share: float = 0.10
    email_min_gap_days: int = 3
    rep_capacity_share: float = 0.035
    rep_min_gap_days: int = 10
    digital_due_prob: float = 0.06
    max_delay_days: int = 45
    pull_interest_coef: float = 1.5
    pull_knowledge_gain: float = 0.05
    detail_extra_topics: float = 0.8
    detail_dwell_median_s: float = 40.0
    portal_dwell_median_s: float = 70.0
    dwell_sigma: float = 0.6
    portal_view_rate: float = 0.02
    webinar_question_rate: float = 0.5
    visit_request_rate: float = 0.0
    visit_request_logit: float = 1.5
    visit_request_days: int = 3

    def __post_init__(self) -> None:
        def err(name: str, problem: str) -> SimulatorConfigError:
            return SimulatorConfigError(f"WorldConfig: field '{name}': {problem}")

        def unit(name: str, v: float) -> None:
            if not (isinstance(v, int | float) and 0.0 <= float(v) <= 1.0):
                raise err(name, f"must be in [0, 1], got {v!r}")

        def positive(name: str, v: float) -> None:
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise err(name, f"must be a positive number, got {v!r}")

        for name in (
            "no_see_rate",
            "delivery_rate",
            "unsubscribe_base",
            "knowledge_gain",
            "advance_prob",
            "email_due_prob",
            "email_cap_share",
            "rep_capacity_share",
            "digital_due_prob",
            "pull_knowledge_gain",
            "visit_request_rate",
        ):
            unit(name, getattr(self, name))
        for name in (
            "specialty_open_rate",
            "consent_rates",
            "primary_rate",
            "secondary_rate",
            "sample_request_rate",
            "rx_signal_rate",
        ):
            for k, v in getattr(self, name).items():
                unit(f"{name}.{k}", v)
        for k, v in self.fatigue_halflife.items():
            positive(f"fatigue_halflife.{k}", v)
        if not self.specialty_shares or any(v < 0 for v in self.specialty_shares.values()):
            raise err("specialty_shares", "must give non-negative shares to >= 1 specialty")
        if sum(self.specialty_shares.values()) <= 0:
            raise err("specialty_shares", "shares sum to 0")
        vocabulary = specialty_vocabulary()
        for name in ("specialty_shares", "specialty_open_rate", "specialty_topic_bias"):
            unknown = [s for s in getattr(self, name) if s not in vocabulary]
            if unknown:
                raise err(
                    f"{name}.{unknown[0]}",
                    "not a specialty of the HCP vocabulary (nba/data/hcp_features.toml): "
                    + ", ".join(vocabulary),
                )
        missing = sorted(set(self.specialty_shares) - set(self.specialty_open_rate))
        if missing:
            raise err("specialty_open_rate", f"no open rate for specialty {missing[0]!r}")
        if len(self.stage_shares) != len(ADOPTION_STAGES) or any(s < 0 for s in self.stage_shares):
            raise err("stage_shares", f"must be {len(ADOPTION_STAGES)} non-negative shares")
        if sum(self.stage_shares) <= 0:
            raise err("stage_shares", "shares sum to 0")
        if not (
            isinstance(self.visit_request_logit, int | float)
            and math.isfinite(self.visit_request_logit)
            and self.visit_request_logit >= 0
        ):
            raise err(
                "visit_request_logit", f"must be a number >= 0, got {self.visit_request_logit!r}"
            )
        for name in (
            "email_min_gap_days",
            "rep_min_gap_days",
            "max_delay_days",
            "visit_request_days",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise err(name, f"must be an integer >= 1, got {v!r}")
        for name in (
            "channel_affinity_sd",
            "topic_interest_sd",
            "unsubscribe_sd",
            "decile_skew",
            "repeat_coef",
            "novelty_coef",
            "stage_match_bonus",
            "unsubscribe_fatigue",
            "digital_affinity_coef",
            "pull_interest_coef",
            "detail_extra_topics",
            "dwell_sigma",
            "portal_view_rate",
            "webinar_question_rate",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise err(name, f"must be a finite number >= 0, got {v!r}")
        positive("detail_dwell_median_s", self.detail_dwell_median_s)
        positive("portal_dwell_median_s", self.portal_dwell_median_s)
        a, b = self.digital_affinity_beta
        positive("digital_affinity_beta", a)
        positive("digital_affinity_beta", b)

    @property
    def specialties(self) -> tuple[str, ...]:
        """Names behind the population's specialty codes: the HCP vocabulary
        (:func:`specialty_vocabulary`), whether or not a specialty has a share."""
        return specialty_vocabulary()

    @property
    def params(self) -> dict[str, Any]:
        """Flat parameters for ``mlflow.log_params`` and the manifest."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("visit_request_") and self.visit_request_rate == 0:
                continue  # off: the manifest is what it was before visit requests existed
            v = getattr(self, f.name)
            if isinstance(v, Mapping):
                for k, sub in v.items():
                    out[f"{f.name}.{k}"] = (
                        list(sub)
                        if isinstance(sub, tuple)
                        else (dict(sub) if isinstance(sub, Mapping) else sub)
                    )
            elif isinstance(v, tuple):
                out[f.name] = list(v)
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_params(cls, overrides: Mapping[str, Any]) -> WorldConfig:
        """Defaults with some top-level fields replaced; unknown names are refused."""
        names = {f.name for f in fields(cls)}
        for k in overrides:
            if k not in names:
                raise SimulatorConfigError(f"WorldConfig: unknown field {k!r}")
        tuples = {"stage_shares", "digital_affinity_beta"}
        clean: dict[str, Any] = {
            k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in overrides.items()
        }
        return cls(**clean)

    @classmethod
    def load(cls, path: str | Path) -> WorldConfig:
        """Defaults overridden by the top-level fields of a TOML file; errors name the file."""
        p = Path(path)
        data = read_toml(p, SimulatorConfigError)
        try:
            return cls.from_params(data)
        except (SimulatorConfigError, TypeError, AttributeError) as exc:
            raise SimulatorConfigError(f"{p}: {exc}") from exc
