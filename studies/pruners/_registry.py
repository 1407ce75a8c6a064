"""The pruners a study file can name, and building one from a spec.

Optuna's own pruners (``median``, ``percentile``, ``successive_halving``, ``hyperband``)
decide single-objective studies through ``trial.report``; ours (``pareto_rank``,
``dominance``) decide any study, every epoch, through :func:`build_epoch_pruner`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

from studies._keywords import Problem, keyword_problem
from studies.pruners._base import BaseMultiObjectivePruner
from studies.pruners._dominance import DominancePruner
from studies.pruners._pareto_rank import ParetoRankPruner

if TYPE_CHECKING:
    from nas_objectives.objective import EpochPruner
    from studies.spec import StudySpec

_OPTUNA: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}
#: Optuna's own pruners (single-objective studies only) ...
OPTUNA_PRUNERS = tuple(_OPTUNA)
_OPTIONS: dict[str, dict[str, int]] = {  # option -> smallest allowed value
    "pareto_rank": {"min_epochs": 1, "reduction_factor": 2, "min_trials": 0},
    "dominance": {"k": 1, "min_epochs": 1, "min_trials": 0},
}
_CLASSES: dict[str, type[ParetoRankPruner] | type[DominancePruner]] = {
    "pareto_rank": ParetoRankPruner,
    "dominance": DominancePruner,
}
#: Our pruners, which also prune multi-objective studies.
MO_PRUNERS = tuple(_CLASSES)
#: Every pruner a study file may name.
PRUNERS = OPTUNA_PRUNERS + MO_PRUNERS


def check_mo_pruner_options(name: str, options: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """Return ``(field, problem, value)`` if ``options`` don't suit pruner ``name``, else None.

    ``field`` is ``"name"`` for an unknown pruner, else the option's key.

    Example:
        >>> check_mo_pruner_options("pareto_rank", {"reduction_factor": 1})
        ('reduction_factor', 'must be an integer greater than 1', 1)
    """
    if name not in _OPTIONS:
        return "name", f"unknown multi-objective pruner (known: {', '.join(MO_PRUNERS)})", name
    allowed = _OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            return key, f"unknown option for pruner {name!r} (known: {known})", value
        least = allowed[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            if least == 2:
                return key, "must be an integer greater than 1", value
            return key, f"must be an integer >= {least}", value
    return None


def build_mo_pruner(name: str, options: Mapping[str, Any]) -> BaseMultiObjectivePruner:
    """The multi-objective pruner ``name`` (one of :data:`MO_PRUNERS`), still unbound.

    Raises:
        ValueError: the options :func:`check_mo_pruner_options` rejects.

    Example:
        >>> build_mo_pruner("dominance", {"k": 2}).k
        2
    """
    problem = check_mo_pruner_options(name, options)
    if problem is not None:
        field, message, value = problem
        raise ValueError(f"pruner {name!r}, {field}={value!r}: {message}")
    return _CLASSES[name](**options)


def check_pruner_options(name: str, options: Mapping[str, Any]) -> Problem | None:
    """``(field, problem, value)`` if ``options`` don't suit pruner ``name``, else None."""
    if name in MO_PRUNERS:
        return check_mo_pruner_options(name, options)
    if name not in _OPTUNA:
        return "name", f"unknown pruner (known: {', '.join(PRUNERS)})", name
    return keyword_problem("pruner", name, _OPTUNA[name], options)


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's Optuna pruner: ``NopPruner`` for ``none`` and for our own pruners, which
    decide through :func:`build_epoch_pruner` instead."""
    if spec.pruner.name in MO_PRUNERS:
        return optuna.pruners.NopPruner()
    return _OPTUNA[spec.pruner.name](**spec.pruner.options)


def build_epoch_pruner(spec: StudySpec) -> EpochPruner | None:
    """The per-epoch decision of a ``pareto_rank`` or ``dominance`` pruner, else None.

    It compares the trial, at each epoch, with every other trial at the same epoch, as
    stored in the shared storage, so every worker decides from the same data. Its
    ``decides_at(epoch)`` tells the objective at which epochs a decision can prune.
    """
    if spec.pruner.name not in MO_PRUNERS:
        return None
    pruner = build_mo_pruner(spec.pruner.name, spec.pruner.options)
    pruner.bind(list(spec.objectives), list(spec.directions))
    return _EpochDecision(pruner)


class _EpochDecision:
    """A bound multi-objective pruner as the objective calls it (an ``EpochPruner``)."""

    def __init__(self, pruner: BaseMultiObjectivePruner) -> None:
        self.pruner = pruner
        self.decides_at = pruner.decides_at

    def __call__(
        self, trial: optuna.trial.BaseTrial, epoch: int, values: tuple[float, ...]
    ) -> str | None:
        study = getattr(trial, "study", None)
        if study is None:  # a FixedTrial: no study to compare with
            return None
        return self.pruner.decide(study, trial.number, epoch, values)
