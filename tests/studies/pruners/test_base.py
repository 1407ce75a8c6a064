"""BaseMultiObjectivePruner, what both rules share: the curve and costs a trial is compared
by, binding to the study's objectives, deterministic decisions, and never throwing."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import optuna
import pytest

from studies.pruners import (
    DominancePruner,
    ParetoRankPruner,
    trial_vector,
)
from tests.studies.pruners.mo_curves import (
    ACC_PARAMS,
    BASE,
    CURVES,
    LOGGER,
    MAX_MIN,
    C,
    P,
    R,
    decide,
    frozen,
    number_of,
    study_of,
)


def _as_attr_curve(t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """The same trial with its curve in the ``val_accuracy`` user attribute instead."""
    curve = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
    return optuna.trial.create_trial(
        state=t.state,
        values=t.values,
        user_attrs={**t.user_attrs, "val_accuracy": curve},
    )


@pytest.mark.parametrize("make", [lambda: ParetoRankPruner(1, 3, 4), lambda: DominancePruner(2)])
def test_a_curve_in_the_val_accuracy_attribute_decides_the_same(make: Any) -> None:
    for who, (curve, params) in CURVES.items():
        trials = [*BASE, frozen(R, curve, params, who)]
        with_values, with_attrs = study_of(trials), study_of([_as_attr_curve(t) for t in trials])
        assert not any(t.intermediate_values for t in with_attrs.trials)
        for epoch in (1, 2, 3):
            own = [curve[epoch], params]
            number = number_of(with_values, who)
            expected = make().bind(ACC_PARAMS, MAX_MIN).decide(with_values, number, epoch, own)
            got = make().bind(ACC_PARAMS, MAX_MIN).decide(with_attrs, number, epoch, own)
            assert got == expected


def test_a_pareto_optimal_small_model_survives_where_an_accuracy_median_rule_prunes_it() -> None:
    curve, _ = CURVES["tiny"]
    for epoch in (1, 3):
        assert decide(ParetoRankPruner(min_trials=4), "tiny", epoch) is None
        assert decide(DominancePruner(k=1), "tiny", epoch) is None
    # Optuna's MedianPruner on the same accuracy curves in a single-objective study.
    accuracy_only = optuna.create_study(direction="maximize")
    for t in BASE:
        if t.state == C:
            accuracy_only.add_trial(
                optuna.trial.create_trial(
                    state=C, value=t.values[0], intermediate_values=t.intermediate_values
                )
            )
    accuracy_only.add_trial(optuna.trial.create_trial(state=R, intermediate_values=curve))
    median = optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0)
    assert median.prune(accuracy_only, accuracy_only.trials[-1])


def _random_trials(seed: int) -> list[optuna.trial.FrozenTrial]:
    rng = random.Random(seed)
    trials = []
    for i in range(40):
        last = rng.choice([1, 2, 3, 3, 3])
        curve = {e: round(rng.uniform(0.3, 0.9), 1) for e in range(1, last + 1)}
        state = rng.choice([C, P, R]) if last == 3 else P
        trials.append(frozen(state, curve, rng.choice([100, 200, 400, 800]), f"t{i}"))
    return trials


@pytest.mark.parametrize("make", [lambda: ParetoRankPruner(1, 3, 4), lambda: DominancePruner(3)])
def test_decisions_are_deterministic_and_ignore_insertion_order(make: Any) -> None:
    # Rounded accuracies and four sizes: many ties and identical points.
    trials = _random_trials(7)
    shuffled = trials[:]
    random.Random(1).shuffle(shuffled)

    def decisions(order: list[optuna.trial.FrozenTrial]) -> dict[tuple[str, int], str | None]:
        study = study_of(order)
        pruner = make().bind(ACC_PARAMS, MAX_MIN)
        out = {}
        for t in order:
            for epoch, acc in t.intermediate_values.items():
                name = t.user_attrs["name"]
                own = [acc, t.user_attrs["params"]]
                first = pruner.decide(study, number_of(study, name), epoch, own)
                assert pruner.decide(study, number_of(study, name), epoch, own) == first
                out[name, epoch] = first
        return out

    forward = decisions(trials)
    assert forward == decisions(shuffled) == decisions(trials[::-1])
    assert any(r is None for r in forward.values())
    assert any(r is not None for r in forward.values())


def test_f1_follows_the_accuracy_curve_and_costs_come_from_user_attrs() -> None:
    t = frozen(C, {1: 0.5, 2: 0.6}, 1200, flops=5000, latency_ms=0.25)
    assert trial_vector(t, 2, ["f1", "flops", "latency_ms"]) == (0.6, 5000.0, 0.25)
    assert trial_vector(t, 3, ["accuracy"]) is None  # no value at that epoch
    # Without intermediate values, the val_accuracy list (epoch 1 first) is the curve.
    listed = frozen(C, {}, 1200, val_accuracy=[0.4, 0.7, None])
    assert trial_vector(listed, 2, ["accuracy", "params"]) == (0.7, 1200.0)
    assert trial_vector(listed, 3, ["accuracy"]) is None
    assert trial_vector(listed, 4, ["accuracy"]) is None
    assert trial_vector(listed, 0, ["accuracy"]) is None
    assert trial_vector(frozen(C, {1: 0.5}, 1), 1, ["accuracy", "latency_ms"]) is None


def test_trials_without_a_needed_cost_are_ignored_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pruner = DominancePruner(k=1, min_trials=1).bind(["accuracy", "latency_ms"], MAX_MIN)
    study = study_of([frozen(C, {1: 0.9}, 10), frozen(C, {1: 0.9}, 10, latency_ms=1.0)])
    # Only the second trial has a latency: one comparable trial, which dominates.
    assert pruner.decide(study, 99, 1, [0.5, 2.0]) == "dominated by 1 trial at epoch 1"
    strict = DominancePruner(k=1, min_trials=2).bind(["accuracy", "latency_ms"], MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert strict.decide(study, 99, 1, [0.5, 2.0]) is None  # warm-up: 1 < 2
    assert _warnings(caplog) == []  # missing is not garbage


def test_numpy_numbers_in_user_attrs_are_numbers(caplog: pytest.LogCaptureFixture) -> None:
    # An in-memory study keeps attributes as given, numpy scalars included.
    study = study_of([frozen(C, {1: 0.9}, np.int64(50)), frozen(C, {1: 0.8}, np.float64(60))])
    pruner = DominancePruner(k=2, min_trials=2).bind(ACC_PARAMS, MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pruner.decide(study, 99, 1, [0.5, 100]) == "dominated by 2 trials at epoch 1"
    assert _warnings(caplog) == []


def test_an_unbound_pruner_takes_the_studys_metric_names() -> None:
    study = study_of(BASE)
    study.set_metric_names(ACC_PARAMS)
    pruner = DominancePruner(k=1)
    assert pruner.decide(study, 99, 1, [0.1, 9000]) is not None
    assert pruner.objectives == ("accuracy", "params")
    assert pruner.directions == ("maximize", "minimize")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_garbage_attributes_ignore_the_trial_and_log_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbage = [
        frozen(C, {1: 0.9}, "abc", "text"),
        frozen(C, {1: 0.9}, float("nan"), "nan"),
        frozen(C, {1: 0.9}, True, "bool"),
        frozen(C, {1: 0.9}, [1, 2], "list"),
    ]
    pruner = DominancePruner(k=1, min_trials=1).bind(ACC_PARAMS, MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pruner.decide(study_of(garbage), 99, 1, [0.5, 100]) is None  # nothing comparable
        assert pruner.decide(study_of(garbage), 99, 1, [0.5, 100]) is None
        # Good trials next to garbage are still compared.
        mixed = study_of([*garbage, frozen(C, {1: 0.9}, 50, "good")])
        assert pruner.decide(mixed, 99, 1, [0.5, 100]) == "dominated by 1 trial at epoch 1"
    assert len(_warnings(caplog)) == 1
    assert "ignores trial" in _warnings(caplog)[0].getMessage()


@pytest.mark.parametrize("make", [lambda: ParetoRankPruner(1, 3, 0), lambda: DominancePruner(1)])
def test_a_failure_to_decide_keeps_training_and_is_logged_once(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = make().bind(ACC_PARAMS, MAX_MIN)
    study = study_of(BASE)
    broken: Any = object()  # not a study at all
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pruner.decide(broken, 99, 1, [0.1, 9000]) is None
        assert pruner.decide(broken, 99, 1, [0.1, 9000]) is None
        assert pruner.decide(study, 99, 1, [0.1]) is None  # a vector of the wrong length
        assert pruner.decide(study, 99, 1, [float("inf"), 1]) is None
    records = _warnings(caplog)
    assert len(records) == 1
    assert "could not decide for trial 99 at epoch 1" in records[0].getMessage()
    # A working call after the failures still decides.
    assert pruner.decide(study, 99, 1, [0.1, 9000]) is not None


def test_an_unbound_pruner_on_a_study_without_metric_names_keeps_training(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert DominancePruner(k=1).decide(study_of(BASE), 99, 1, [0.1, 9000]) is None
    assert len(_warnings(caplog)) == 1


def test_bind_and_constructors_reject_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="no per-epoch value"):
        DominancePruner().bind(["accuracy", "loss"], MAX_MIN)
    with pytest.raises(ValueError, match="one direction per objective"):
        DominancePruner().bind(ACC_PARAMS, ["maximize"])
    with pytest.raises(ValueError, match="maximize"):
        DominancePruner().bind(ACC_PARAMS, ["maximize", "min"])
    with pytest.raises(ValueError, match="both"):
        DominancePruner(objectives=ACC_PARAMS)
    with pytest.raises(ValueError, match="reduction_factor"):
        ParetoRankPruner(reduction_factor=1)
    with pytest.raises(ValueError, match="k must"):
        DominancePruner(k=0)
