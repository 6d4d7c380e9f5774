"""The simulator emits on each channel only the outcome types the domain's
type -> channel table allows there, and every channel-bound type is emitted."""

from __future__ import annotations

from nba.domain import CHANNELS, OUTCOME_CHANNELS, outcome_channel_problem
from simulators.hcp.config import WorldConfig
from simulators.hcp.response import CHANNEL_MODELS


def test_simulated_outcomes_fit_the_domain_table() -> None:
    emitted: dict[str, set[str]] = {}
    assert set(CHANNEL_MODELS) == set(CHANNELS)
    for channel, model in CHANNEL_MODELS.items():
        for typ in (model.gate, model.primary, model.secondary, model.side):
            if typ is not None:
                assert outcome_channel_problem(typ, channel) is None, (typ, channel)
                emitted.setdefault(typ, set()).add(channel)
    # business value events follow the primary wherever their default rate is positive
    cfg = WorldConfig()
    for typ, rates in (
        ("sample_requested", cfg.sample_request_rate),
        ("rx_signal", cfg.rx_signal_rate),
    ):
        for channel, rate in rates.items():
            assert rate > 0
            assert outcome_channel_problem(typ, channel) is None, (typ, channel)
            emitted.setdefault(typ, set()).add(channel)
    # the table is not wider than what the simulator shows for channel-bound types
    for typ, channels in OUTCOME_CHANNELS.items():
        assert emitted.get(typ) == set(channels), typ
