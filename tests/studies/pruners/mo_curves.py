"""Synthetic learning curves in real in-memory Optuna studies, for the tests of the
multi-objective pruners (``test_pareto_rank``, ``test_dominance``, ``test_base``; the Pareto
maths they use is tested in ``tests/studies/test_pareto.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from studies.pruners import BaseMultiObjectivePruner

MAX_MIN: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
ACC_PARAMS = ["accuracy", "params"]
LOGGER = "studies.pruners._base"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def frozen(
    state: TrialState,
    curve: Mapping[int, float],
    params: Any = None,
    name: str = "",
    **attrs: Any,
) -> optuna.trial.FrozenTrial:
    user_attrs = dict(attrs, name=name)
    if params is not None:
        user_attrs["params"] = params
    values = [curve[max(curve)] if curve else 0.5, 0.0] if state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(
        state=state,
        values=values,
        intermediate_values=dict(curve),
        user_attrs=user_attrs,
        params={},
        distributions={},
    )


def study_of(trials: Sequence[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(directions=MAX_MIN)
    for t in trials:
        study.add_trial(t)
    return study


def number_of(study: optuna.Study, name: str) -> int:
    return next(t.number for t in study.trials if t.user_attrs.get("name") == name)


C, P, R = TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING

# Learning curves (epoch -> validation accuracy) with known dominance at epochs 1 and 3.
# Epoch 1: front A (smallest), C (most accurate); B and E are dominated by A.
# Epoch 3: only A, B, C, D reached it (E, F were pruned at epoch 1); front A, B, C.
BASE = [
    frozen(C, {1: 0.60, 2: 0.80, 3: 0.90}, 1000, "A"),
    frozen(C, {1: 0.58, 2: 0.85, 3: 0.92}, 2000, "B"),
    frozen(C, {1: 0.75, 2: 0.90, 3: 0.95}, 4000, "C"),
    frozen(R, {1: 0.50, 2: 0.55, 3: 0.60}, 8000, "D"),  # still training, past epoch 3
    frozen(P, {1: 0.55}, 3000, "E"),
    frozen(P, {1: 0.40}, 5000, "F"),
    # Failed trials are never compared, however good their curve.
    frozen(TrialState.FAIL, {1: 0.99, 2: 0.99, 3: 0.99}, 10, "failed"),
]
# Candidates, each decided as the RUNNING trial it is in the study.
CURVES = {
    "X": ({1: 0.52, 2: 0.75, 3: 0.80}, 6000),  # third front at 1: behind A, C, then B, E
    "Z": ({1: 0.74, 2: 0.78, 3: 0.80}, 2500),  # on the front at 1, behind A and B at 3
    "tiny": ({1: 0.30, 2: 0.35, 3: 0.40}, 100),  # least accurate, smallest: always on the front
}


def decide(pruner: BaseMultiObjectivePruner, who: str, epoch: int) -> str | None:
    curve, params = CURVES[who]
    study = study_of([*BASE, frozen(R, curve, params, who)])
    pruner.bind(ACC_PARAMS, MAX_MIN)
    return pruner.decide(study, number_of(study, who), epoch, [curve[epoch], params])
