"""record.py is the one list of what a trial stores: what the objective writes is in it."""

from __future__ import annotations

import optuna

from nas_objectives import Objective, ObjectiveConfig, load_dataset, record
from nas_objectives.metrics import OBJECTIVES

TRIAL_KEYS = {
    value
    for name, value in vars(record).items()
    if name.isupper() and isinstance(value, str) and name not in ("STUDY_SPEC", "DATASET")
}


def test_a_trial_stores_only_the_recorded_keys() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    cfg = ObjectiveConfig(epochs=1, constraints={"latency_ms": 1e9})
    study.optimize(Objective(cfg, load_dataset("digits")), n_trials=1)
    stored = set(study.trials[0].user_attrs)
    assert stored <= TRIAL_KEYS, stored - TRIAL_KEYS
    # Everything a successful, unpruned trial writes (no worker, since no worker loop ran).
    expected = TRIAL_KEYS - {
        record.WORKER,
        record.PRUNED_AT_EPOCH,
        record.PRUNED_BY,
        record.FAIL_REASON,
        # Only on CUDA, or where CUDA graphs were asked for.
        record.TRAIN_STEP,
        # Only on trials a one-shot search enqueued.
        record.PROPOSED_BY,
        record.ONESHOT_METHOD,
        record.ONESHOT_LAMBDA,
        record.ONESHOT_SEED,
        record.ONESHOT_SEARCH_SECONDS,
    }
    assert stored == expected


def test_objective_kinds_partition_the_objectives() -> None:
    assert set(record.CURVE_OBJECTIVES) | set(record.COST_OBJECTIVES) == set(OBJECTIVES)
    assert not set(record.CURVE_OBJECTIVES) & set(record.COST_OBJECTIVES)
    assert all(OBJECTIVES[o] == "maximize" for o in record.CURVE_OBJECTIVES)
    assert all(OBJECTIVES[o] == "minimize" for o in record.COST_OBJECTIVES)
