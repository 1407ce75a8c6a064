"""The samplers a study file can name, and building one from a spec.

Options in a study file's ``[sampler]`` table are passed as keyword arguments to the class,
after checking they exist in its signature, except ``history`` (``tpe`` and ``gp`` only),
which wraps the sampler in a :class:`HistoryWindowSampler`. Constraints need no wiring:
Optuna 5's samplers read what :meth:`optuna.trial.Trial.set_constraint` stored on each trial.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

from studies._keywords import Problem, keyword_problem
from studies.samplers._evolution import RegularizedEvolutionSampler
from studies.samplers._history import HistoryWindowSampler
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
#: The option that wraps a sampler in a HistoryWindowSampler.
HISTORY = "history"
#: Samplers that take ``history``: those that model every finished trial before each trial.
#: Evolution already keeps a window (its population); NSGA-II/III find their parents by
#: generation, which a window could hide; the others do not read the history.
HISTORY_SAMPLERS = ("tpe", "gp")


def check_sampler_options(name: str, options: Mapping[str, Any]) -> Problem | None:
    """``(field, problem, value)`` if ``options`` don't suit sampler ``name``, else None."""
    if name not in _FACTORIES:
        return "name", f"unknown sampler (known: {', '.join(SAMPLERS)})", name
    options = dict(options)
    if HISTORY in options:
        problem = _history_problem(name, options.pop(HISTORY), options)
        if problem is not None:
            return problem
    return keyword_problem("sampler", name, _FACTORIES[name], options, _RESERVED)


def _history_problem(name: str, value: Any, options: Mapping[str, Any]) -> Problem | None:
    if name not in HISTORY_SAMPLERS:
        return HISTORY, f"only {' and '.join(HISTORY_SAMPLERS)} take a history window", value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return HISTORY, "expected a whole number of trials, at least 1", value
    # Below its startup count the sampler would see too few trials ever to leave it.
    startup = options.get("n_startup_trials")
    if startup is None:
        default = inspect.signature(_FACTORIES[name]).parameters.get("n_startup_trials")
        startup = None if default is None else default.default
    if isinstance(startup, int) and value < startup:
        return HISTORY, f"must be at least n_startup_trials ({startup})", value
    return None


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (the study's seed when None)."""
    options = dict(spec.sampler.options)
    history = options.pop(HISTORY, None)
    options["seed"] = spec.seed if seed is None else seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _FACTORIES[spec.sampler.name](**options)
    return sampler if history is None else HistoryWindowSampler(sampler, history)
