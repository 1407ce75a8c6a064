"""When to stop a trial: Optuna's pruners for single-objective studies, and ours, which
prune multi-objective studies too (``pareto_rank``, ``dominance``)."""

from __future__ import annotations

from studies.pruners._base import (
    COMPARED_STATES,
    CURVE_ATTR,
    BaseMultiObjectivePruner,
    trial_vector,
)
from studies.pruners._dominance import DominancePruner
from studies.pruners._pareto_rank import ParetoRankPruner
from studies.pruners._registry import (
    MO_PRUNERS,
    OPTUNA_PRUNERS,
    PRUNERS,
    build_epoch_pruner,
    build_mo_pruner,
    build_pruner,
    check_mo_pruner_options,
    check_pruner_options,
)

__all__ = [
    "COMPARED_STATES",
    "CURVE_ATTR",
    "MO_PRUNERS",
    "OPTUNA_PRUNERS",
    "PRUNERS",
    "BaseMultiObjectivePruner",
    "DominancePruner",
    "ParetoRankPruner",
    "build_epoch_pruner",
    "build_mo_pruner",
    "build_pruner",
    "check_mo_pruner_options",
    "check_pruner_options",
    "trial_vector",
]
