"""How to choose and when to stop: Optuna samplers and pruners named by a study file.

Options in a study file's ``[sampler]`` or ``[pruner]`` table are passed as keyword
arguments to Optuna's own class, after checking they exist in its signature. Constraints
need no wiring: Optuna 5's samplers read what :meth:`optuna.trial.Trial.set_constraint`
stored on each trial.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

from nas_objectives.objective import EpochPruner
from studies._evolution import RegularizedEvolutionSampler
from studies._mo_pruners import MO_PRUNERS, build_mo_pruner, check_mo_pruner_options
from studies._reinforce import ReinforceSampler

if TYPE_CHECKING:
    from studies._spec import StudySpec

_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
    "evolution": RegularizedEvolutionSampler,
    "reinforce": ReinforceSampler,
}
_PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}
# Set by nas-study itself, never from a study file.
_RESERVED = {"seed", "constraints_func"}


def _factory(kind: str, name: str) -> Callable[..., Any]:
    return (_SAMPLERS if kind == "sampler" else _PRUNERS)[name]


def check_options(kind: str, name: str, options: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """Return ``(field, problem, value)`` if ``options`` don't suit the pruner or Optuna's
    class, else None."""
    if kind == "pruner" and name in MO_PRUNERS:
        return check_mo_pruner_options(name, options)
    factory = _factory(kind, name)
    accepted = set(inspect.signature(factory).parameters) - _RESERVED
    for key, value in options.items():
        if key not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            return key, f"unknown option for {kind} {name!r} (known: {known})", value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            factory(**options)
    except (TypeError, ValueError) as exc:
        return "name", f"{factory.__name__} rejects these options: {exc}", name
    return None


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (the study's seed when None)."""
    options = dict(spec.sampler.options)
    options["seed"] = spec.seed if seed is None else seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _SAMPLERS[spec.sampler.name](**options)


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's Optuna pruner: ``NopPruner`` for ``none`` and for our own pruners, which
    decide through :func:`build_epoch_pruner` instead."""
    if spec.pruner.name in MO_PRUNERS:
        return optuna.pruners.NopPruner()
    return _PRUNERS[spec.pruner.name](**spec.pruner.options)


def build_epoch_pruner(spec: StudySpec) -> EpochPruner | None:
    """The per-epoch decision of a ``pareto_rank`` or ``dominance`` pruner, else None.

    It compares the trial, at each epoch, with every other trial at the same epoch, as
    stored in the shared storage, so every worker decides from the same data.
    """
    if spec.pruner.name not in MO_PRUNERS:
        return None
    pruner = build_mo_pruner(spec.pruner.name, spec.pruner.options)
    pruner.bind(list(spec.objectives), list(spec.directions))

    def decide(trial: optuna.trial.BaseTrial, epoch: int, values: tuple[float, ...]) -> str | None:
        study = getattr(trial, "study", None)
        if study is None:  # a FixedTrial: no study to compare with
            return None
        return pruner.decide(study, trial.number, epoch, values)

    return decide
