"""The samplers a study file can name, and building one from a spec.

Options in a study file's ``[sampler]`` table are passed as keyword arguments to the class,
after checking they exist in its signature. Constraints need no wiring: Optuna 5's samplers
read what :meth:`optuna.trial.Trial.set_constraint` stored on each trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

from studies._keywords import Problem, keyword_problem
from studies.samplers._evolution import RegularizedEvolutionSampler
from studies.samplers._reinforce import ReinforceSampler

if TYPE_CHECKING:
    from studies.spec import StudySpec

_FACTORIES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
    "evolution": RegularizedEvolutionSampler,
    "reinforce": ReinforceSampler,
}
#: Sampler names a study file may give.
SAMPLERS = tuple(_FACTORIES)
# Set by nas-study itself, never from a study file.
_RESERVED = frozenset({"seed", "constraints_func"})


def check_sampler_options(name: str, options: Mapping[str, Any]) -> Problem | None:
    """``(field, problem, value)`` if ``options`` don't suit sampler ``name``, else None."""
    if name not in _FACTORIES:
        return "name", f"unknown sampler (known: {', '.join(SAMPLERS)})", name
    return keyword_problem("sampler", name, _FACTORIES[name], options, _RESERVED)


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (the study's seed when None)."""
    options = dict(spec.sampler.options)
    options["seed"] = spec.seed if seed is None else seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _FACTORIES[spec.sampler.name](**options)
