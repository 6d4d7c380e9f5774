"""The simulated HCP world (see ``docs/simulator.md``).

>>> from simulators.hcp import simulate
>>> simulate(hcps=40, days=3, policy="campaign", seed=1).decisions > 0
True
"""

from simulators.hcp.config import WorldConfig
from simulators.hcp.policies import BatchPolicy, DecisionBatch, LearnBatch
from simulators.hcp.world import SimulationError, Summary, World, simulate

__all__ = [
    "BatchPolicy",
    "DecisionBatch",
    "LearnBatch",
    "SimulationError",
    "Summary",
    "World",
    "WorldConfig",
    "simulate",
]
