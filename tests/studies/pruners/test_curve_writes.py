"""The curve is shared only at the epochs a pruner decides at, and that changes no decision.

Trials run interleaved, as on several workers: epoch by epoch in turn, each writing its
curve to a real SQLite study and asking the real pruner (built from a study spec as the
worker builds it) through :func:`nas_objectives.objective.share_and_decide`, once writing
at every epoch and once only where the pruner decides. The decisions must be the same.
"""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest

from nas_objectives import record
from nas_objectives.objective import share_and_decide
from storage import open_storage
from studies.pruners import build_epoch_pruner
from studies.spec import spec_from_data

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 12


def _decisions(
    url: str, pruner: dict[str, Any], every_epoch: bool, seed: int
) -> tuple[list[tuple[int, int, str]], int]:
    """(trial, epoch, reason) of every prune, and the number of curve writes."""
    spec = spec_from_data({"name": "curves", "dataset": "digits", "pruner": pruner}, "<test study>")
    decide = build_epoch_pruner(spec)
    assert decide is not None
    study = optuna.create_study(
        storage=open_storage(url, heartbeat=None), directions=["maximize", "minimize"]
    )
    rng = random.Random(seed)
    # 10 trials, started in three waves as workers free up, each with its own curve shape.
    trials = [study.ask() for _ in range(10)]
    start = {t.number: (t.number // 4) * 3 for t in trials}
    ceiling = {t.number: rng.uniform(0.5, 0.99) for t in trials}
    params = {t.number: rng.choice([100, 1_000, 10_000]) for t in trials}
    curves: dict[int, list[float]] = {t.number: [] for t in trials}
    alive = {t.number: t for t in trials}
    pruned: list[tuple[int, int, str]] = []
    writes = 0
    for tick in range(EPOCHS + 10):
        for number, trial in list(alive.items()):
            if tick < start[number]:
                continue
            curve = curves[number]
            epoch = len(curve) + 1
            curve.append(ceiling[number] * (1 - 0.7**epoch) + rng.uniform(-0.02, 0.02))
            trial.set_user_attr(record.PARAMS, params[number])
            reason = share_and_decide(
                trial, decide, curve, (curve[-1], params[number]), every_epoch=every_epoch
            )
            # The stored curve is the whole curve only right after a write at this epoch.
            writes += trial.user_attrs.get(record.VAL_ACCURACY) == curve
            if reason is not None:
                pruned.append((number, epoch, reason))
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                del alive[number]
            elif epoch == EPOCHS:
                trial.set_user_attr(record.VAL_ACCURACY, list(curve))
                study.tell(trial, [curve[-1], float(params[number])])
                del alive[number]
    return pruned, writes


@pytest.mark.parametrize(
    "pruner",
    [
        {"name": "pareto_rank", "min_epochs": 1, "reduction_factor": 3, "min_trials": 3},
        {"name": "pareto_rank", "min_epochs": 2, "reduction_factor": 2, "min_trials": 2},
        {"name": "dominance", "k": 2, "min_epochs": 3, "min_trials": 3},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_writing_the_curve_only_where_the_pruner_decides_changes_no_decision(
    tmp_path: Any, pruner: dict[str, Any], seed: int
) -> None:
    every, every_writes = _decisions(f"sqlite:///{tmp_path}/every.db", pruner, True, seed)
    sparse, sparse_writes = _decisions(f"sqlite:///{tmp_path}/sparse.db", pruner, False, seed)
    assert every, "the case must prune something, or it shows nothing"
    assert sparse == every
    # pareto_rank writes at its rungs only; dominance from its min_epochs on.
    assert sparse_writes < every_writes
