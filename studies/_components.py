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

if TYPE_CHECKING:
    from studies._spec import StudySpec

_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
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
    """Return ``(field, problem, value)`` if ``options`` don't suit Optuna's class, else None."""
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
        return "name", f"Optuna rejects these options: {exc}", name
    return None


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (the study's seed when None)."""
    options = dict(spec.sampler.options)
    options["seed"] = spec.seed if seed is None else seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _SAMPLERS[spec.sampler.name](**options)


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's pruner (``NopPruner`` for ``none``)."""
    return _PRUNERS[spec.pruner.name](**spec.pruner.options)
