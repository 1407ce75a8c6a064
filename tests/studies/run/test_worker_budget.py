"""The worker loop's budget rule (``run_trials``, studies/run/_worker.py), on hand-built
studies (no training)."""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from studies import BUDGET_STATES, run_trials

X: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}


def _objective(trial: optuna.trial.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def test_a_requeued_copy_below_later_failures_still_respects_the_budget() -> None:
    study = optuna.create_study()
    # Two trials running elsewhere hold the budget of 2; a re-queued copy waits; a later
    # trial failed. The copy carries a lower number than that failure, which must not count
    # towards freeing a slot for it.
    for x in (0.1, 0.2):
        study.add_trial(create_trial(state=TrialState.RUNNING, params={"x": x}, distributions=X))
    study.enqueue_trial({"x": 0.3})
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.4}, distributions=X))

    run_trials(study, _objective, budget=2)

    copy = study.trials[2]
    assert copy.state == TrialState.FAIL
    assert copy.user_attrs["fail_reason"] == "budget reached"


def test_budget_counts_complete_and_pruned_trials_of_everyone() -> None:
    study = optuna.create_study()
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 0.5}, distributions=X)
    )
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.6}, distributions=X))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.7}, distributions=X))

    report = run_trials(study, _objective, budget=5)

    assert report.ran == 3
    assert len(study.get_trials(states=BUDGET_STATES)) == 5
