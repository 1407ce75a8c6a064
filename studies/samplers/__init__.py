"""How to choose the next trial: Optuna's samplers by name, and ours, regularized evolution
and REINFORCE, which rebuild their state from the stored trials; a history window caps
what TPE or GP reads of a long study."""

from __future__ import annotations

from studies.samplers._base import IndependentSampler
from studies.samplers._evolution import RegularizedEvolutionSampler
from studies.samplers._history import HistoryWindowSampler
from studies.samplers._registry import SAMPLERS, build_sampler, check_sampler_options
from studies.samplers._reinforce import ReinforceSampler

__all__ = [
    "SAMPLERS",
    "HistoryWindowSampler",
    "IndependentSampler",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
    "build_sampler",
    "check_sampler_options",
]
