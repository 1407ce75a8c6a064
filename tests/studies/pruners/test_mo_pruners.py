"""Multi-objective pruning: both rules on real in-memory Optuna studies built from
synthetic learning curves (the Pareto maths they use is tested in tests/studies/test_pareto.py)."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from studies.pruners import (
    MO_PRUNERS,
    BaseMultiObjectivePruner,
    DominancePruner,
    ParetoRankPruner,
    build_mo_pruner,
    check_mo_pruner_options,
    trial_vector,
)

MAX_MIN: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
ACC_PARAMS = ["accuracy", "params"]
LOGGER = "studies.pruners._base"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial(
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


def _study(trials: Sequence[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(directions=MAX_MIN)
    for t in trials:
        study.add_trial(t)
    return study


def _number(study: optuna.Study, name: str) -> int:
    return next(t.number for t in study.trials if t.user_attrs.get("name") == name)


C, P, R = TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING

# Learning curves (epoch -> validation accuracy) with known dominance at epochs 1 and 3.
# Epoch 1: front A (smallest), C (most accurate); B and E are dominated by A.
# Epoch 3: only A, B, C, D reached it (E, F were pruned at epoch 1); front A, B, C.
BASE = [
    _trial(C, {1: 0.60, 2: 0.80, 3: 0.90}, 1000, "A"),
    _trial(C, {1: 0.58, 2: 0.85, 3: 0.92}, 2000, "B"),
    _trial(C, {1: 0.75, 2: 0.90, 3: 0.95}, 4000, "C"),
    _trial(R, {1: 0.50, 2: 0.55, 3: 0.60}, 8000, "D"),  # still training, past epoch 3
    _trial(P, {1: 0.55}, 3000, "E"),
    _trial(P, {1: 0.40}, 5000, "F"),
    # Failed trials are never compared, however good their curve.
    _trial(TrialState.FAIL, {1: 0.99, 2: 0.99, 3: 0.99}, 10, "failed"),
]
# Candidates, each decided as the RUNNING trial it is in the study.
CURVES = {
    "X": ({1: 0.52, 2: 0.75, 3: 0.80}, 6000),  # third front at 1: behind A, C, then B, E
    "Z": ({1: 0.74, 2: 0.78, 3: 0.80}, 2500),  # on the front at 1, behind A and B at 3
    "tiny": ({1: 0.30, 2: 0.35, 3: 0.40}, 100),  # least accurate, smallest: always on the front
}


def _decide(pruner: BaseMultiObjectivePruner, who: str, epoch: int) -> str | None:
    curve, params = CURVES[who]
    study = _study([*BASE, _trial(R, curve, params, who)])
    pruner.bind(ACC_PARAMS, MAX_MIN)
    return pruner.decide(study, _number(study, who), epoch, [curve[epoch], params])


def test_rungs_are_min_epochs_times_powers_of_the_reduction_factor() -> None:
    assert [e for e in range(1, 40) if ParetoRankPruner(1, 3).is_rung(e)] == [1, 3, 9, 27]
    assert [e for e in range(1, 40) if ParetoRankPruner(2, 2).is_rung(e)] == [2, 4, 8, 16, 32]


def test_pareto_rank_prunes_the_right_trials_at_the_right_rungs() -> None:
    pruner = ParetoRankPruner(min_epochs=1, reduction_factor=3, min_trials=4)
    # Epoch 1: 7 trials (E, F count; the failed one doesn't), the best 3 are A, C and Z.
    assert _decide(pruner, "X", 1) == "pareto rank: not in the best 1/3 of 7 trials at epoch 1"
    assert _decide(pruner, "Z", 1) is None
    # Epoch 2 is no rung: nothing is pruned there, however dominated.
    assert _decide(pruner, "X", 2) is None
    assert _decide(pruner, "Z", 2) is None
    # Epoch 3: E and F never reached it, so 5 trials; Z fell behind A and B.
    assert _decide(pruner, "Z", 3) == "pareto rank: not in the best 1/3 of 5 trials at epoch 3"
    assert _decide(pruner, "tiny", 3) is None


def test_pareto_rank_warm_up_counts_only_trials_that_reached_the_rung() -> None:
    # Six others at epoch 1, only four (A, B, C, D) at epoch 3.
    assert _decide(ParetoRankPruner(min_trials=6), "X", 1) is not None
    assert _decide(ParetoRankPruner(min_trials=7), "X", 1) is None
    assert _decide(ParetoRankPruner(min_trials=4), "Z", 3) is not None
    assert _decide(ParetoRankPruner(min_trials=5), "Z", 3) is None
    # No decision before min_epochs: epoch 1 is then no rung.
    assert _decide(ParetoRankPruner(min_epochs=3), "X", 1) is None
    assert _decide(ParetoRankPruner(min_epochs=3), "X", 3) is not None


def test_dominance_prunes_at_every_epoch_from_min_epochs() -> None:
    assert _decide(DominancePruner(k=4), "X", 1) == "dominated by 4 trials at epoch 1"  # ABCE
    assert _decide(DominancePruner(k=5), "X", 1) is None
    assert _decide(DominancePruner(k=3), "X", 2) == "dominated by 3 trials at epoch 2"  # ABC
    assert _decide(DominancePruner(k=3), "X", 3) == "dominated by 3 trials at epoch 3"
    assert _decide(DominancePruner(k=4), "X", 3) is None  # D is worse, E and F stopped at 1
    assert _decide(DominancePruner(k=1), "Z", 3) == "dominated by 2 trials at epoch 3"  # A, B
    assert _decide(DominancePruner(k=1), "Z", 1) is None
    assert _decide(DominancePruner(k=1, min_epochs=2), "X", 1) is None
    assert _decide(DominancePruner(k=1, min_trials=5), "X", 3) is None  # 4 reached epoch 3


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
        trials = [*BASE, _trial(R, curve, params, who)]
        with_values, with_attrs = _study(trials), _study([_as_attr_curve(t) for t in trials])
        assert not any(t.intermediate_values for t in with_attrs.trials)
        for epoch in (1, 2, 3):
            own = [curve[epoch], params]
            number = _number(with_values, who)
            expected = make().bind(ACC_PARAMS, MAX_MIN).decide(with_values, number, epoch, own)
            got = make().bind(ACC_PARAMS, MAX_MIN).decide(with_attrs, number, epoch, own)
            assert got == expected


def test_a_pareto_optimal_small_model_survives_where_an_accuracy_median_rule_prunes_it() -> None:
    curve, _ = CURVES["tiny"]
    for epoch in (1, 3):
        assert _decide(ParetoRankPruner(min_trials=4), "tiny", epoch) is None
        assert _decide(DominancePruner(k=1), "tiny", epoch) is None
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
        trials.append(_trial(state, curve, rng.choice([100, 200, 400, 800]), f"t{i}"))
    return trials


@pytest.mark.parametrize("make", [lambda: ParetoRankPruner(1, 3, 4), lambda: DominancePruner(3)])
def test_decisions_are_deterministic_and_ignore_insertion_order(make: Any) -> None:
    # Rounded accuracies and four sizes: many ties and identical points.
    trials = _random_trials(7)
    shuffled = trials[:]
    random.Random(1).shuffle(shuffled)

    def decisions(order: list[optuna.trial.FrozenTrial]) -> dict[tuple[str, int], str | None]:
        study = _study(order)
        pruner = make().bind(ACC_PARAMS, MAX_MIN)
        out = {}
        for t in order:
            for epoch, acc in t.intermediate_values.items():
                name = t.user_attrs["name"]
                own = [acc, t.user_attrs["params"]]
                first = pruner.decide(study, _number(study, name), epoch, own)
                assert pruner.decide(study, _number(study, name), epoch, own) == first
                out[name, epoch] = first
        return out

    forward = decisions(trials)
    assert forward == decisions(shuffled) == decisions(trials[::-1])
    assert any(r is None for r in forward.values())
    assert any(r is not None for r in forward.values())


def test_f1_follows_the_accuracy_curve_and_costs_come_from_user_attrs() -> None:
    t = _trial(C, {1: 0.5, 2: 0.6}, 1200, flops=5000, latency_ms=0.25)
    assert trial_vector(t, 2, ["f1", "flops", "latency_ms"]) == (0.6, 5000.0, 0.25)
    assert trial_vector(t, 3, ["accuracy"]) is None  # no value at that epoch
    # Without intermediate values, the val_accuracy list (epoch 1 first) is the curve.
    listed = _trial(C, {}, 1200, val_accuracy=[0.4, 0.7, None])
    assert trial_vector(listed, 2, ["accuracy", "params"]) == (0.7, 1200.0)
    assert trial_vector(listed, 3, ["accuracy"]) is None
    assert trial_vector(listed, 4, ["accuracy"]) is None
    assert trial_vector(listed, 0, ["accuracy"]) is None
    assert trial_vector(_trial(C, {1: 0.5}, 1), 1, ["accuracy", "latency_ms"]) is None


def test_trials_without_a_needed_cost_are_ignored_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pruner = DominancePruner(k=1, min_trials=1).bind(["accuracy", "latency_ms"], MAX_MIN)
    study = _study([_trial(C, {1: 0.9}, 10), _trial(C, {1: 0.9}, 10, latency_ms=1.0)])
    # Only the second trial has a latency: one comparable trial, which dominates.
    assert pruner.decide(study, 99, 1, [0.5, 2.0]) == "dominated by 1 trial at epoch 1"
    strict = DominancePruner(k=1, min_trials=2).bind(["accuracy", "latency_ms"], MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert strict.decide(study, 99, 1, [0.5, 2.0]) is None  # warm-up: 1 < 2
    assert _warnings(caplog) == []  # missing is not garbage


def test_numpy_numbers_in_user_attrs_are_numbers(caplog: pytest.LogCaptureFixture) -> None:
    # An in-memory study keeps attributes as given, numpy scalars included.
    study = _study([_trial(C, {1: 0.9}, np.int64(50)), _trial(C, {1: 0.8}, np.float64(60))])
    pruner = DominancePruner(k=2, min_trials=2).bind(ACC_PARAMS, MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pruner.decide(study, 99, 1, [0.5, 100]) == "dominated by 2 trials at epoch 1"
    assert _warnings(caplog) == []


def test_an_unbound_pruner_takes_the_studys_metric_names() -> None:
    study = _study(BASE)
    study.set_metric_names(ACC_PARAMS)
    pruner = DominancePruner(k=1)
    assert pruner.decide(study, 99, 1, [0.1, 9000]) is not None
    assert pruner.objectives == ("accuracy", "params")
    assert pruner.directions == ("maximize", "minimize")


# --------------------------------------------------------------------------- never throws


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_garbage_attributes_ignore_the_trial_and_log_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbage = [
        _trial(C, {1: 0.9}, "abc", "text"),
        _trial(C, {1: 0.9}, float("nan"), "nan"),
        _trial(C, {1: 0.9}, True, "bool"),
        _trial(C, {1: 0.9}, [1, 2], "list"),
    ]
    pruner = DominancePruner(k=1, min_trials=1).bind(ACC_PARAMS, MAX_MIN)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pruner.decide(_study(garbage), 99, 1, [0.5, 100]) is None  # nothing comparable
        assert pruner.decide(_study(garbage), 99, 1, [0.5, 100]) is None
        # Good trials next to garbage are still compared.
        mixed = _study([*garbage, _trial(C, {1: 0.9}, 50, "good")])
        assert pruner.decide(mixed, 99, 1, [0.5, 100]) == "dominated by 1 trial at epoch 1"
    assert len(_warnings(caplog)) == 1
    assert "ignores trial" in _warnings(caplog)[0].getMessage()


@pytest.mark.parametrize("make", [lambda: ParetoRankPruner(1, 3, 0), lambda: DominancePruner(1)])
def test_a_failure_to_decide_keeps_training_and_is_logged_once(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = make().bind(ACC_PARAMS, MAX_MIN)
    study = _study(BASE)
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
        assert DominancePruner(k=1).decide(_study(BASE), 99, 1, [0.1, 9000]) is None
    assert len(_warnings(caplog)) == 1


# --------------------------------------------------------------------------- options


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


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("pareto_rank", {}, None),
        ("pareto_rank", {"min_epochs": 2, "reduction_factor": 2, "min_trials": 0}, None),
        ("dominance", {"k": 1, "min_epochs": 1, "min_trials": 10}, None),
        ("hyperband", {}, ("name", "unknown multi-objective pruner", "hyperband")),
        ("pareto_rank", {"k": 3}, ("k", "unknown option", 3)),
        ("dominance", {"reduction_factor": 3}, ("reduction_factor", "unknown option", 3)),
        ("pareto_rank", {"reduction_factor": 1}, ("reduction_factor", "greater than 1", 1)),
        ("pareto_rank", {"reduction_factor": 3.0}, ("reduction_factor", "integer", 3.0)),
        ("pareto_rank", {"min_epochs": 0}, ("min_epochs", ">= 1", 0)),
        ("dominance", {"k": 0}, ("k", ">= 1", 0)),
        ("dominance", {"k": True}, ("k", "integer", True)),
        ("dominance", {"min_trials": -1}, ("min_trials", ">= 0", -1)),
        ("dominance", {"min_trials": "4"}, ("min_trials", "integer", "4")),
    ],
)
def test_check_mo_pruner_options(
    name: str, options: dict[str, Any], problem: tuple[str, str, Any] | None
) -> None:
    found = check_mo_pruner_options(name, options)
    if problem is None:
        assert found is None
        pruner = build_mo_pruner(name, options)
        assert isinstance(pruner, ParetoRankPruner if name == "pareto_rank" else DominancePruner)
        for key, value in options.items():
            assert getattr(pruner, key) == value
    else:
        assert found is not None
        assert (found[0], found[2]) == (problem[0], problem[2])
        assert problem[1] in found[1]
        with pytest.raises(ValueError, match=problem[0]):
            build_mo_pruner(name, options)


def test_every_name_builds_with_defaults() -> None:
    built = {name: type(build_mo_pruner(name, {})) for name in MO_PRUNERS}
    assert built == {"pareto_rank": ParetoRankPruner, "dominance": DominancePruner}
