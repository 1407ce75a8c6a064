"""The objective, end to end: FixedTrial runs, user attributes, constraints, pruning, failures."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas_objectives import (
    Choice,
    FloatRange,
    IntRange,
    Layout,
    ModelSpace,
    Objective,
    ObjectiveConfig,
    OptimizerSettings,
    OptimizerSpace,
    SearchSpace,
    TensorData,
    build_model,
    count_flops,
    count_params,
    load_dataset,
)

EPOCHS = 2


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return load_dataset("digits")


def _space(width: int = 16, depth: int = 1) -> SearchSpace:
    """Nothing searched: every trial trains the same small MLP with AdamW."""
    return SearchSpace(
        model=ModelSpace(depth=IntRange(depth, depth), width=IntRange(width, width)),
        optimizers={"adamw": OptimizerSpace(lr=FloatRange(5e-3, 5e-3))},
    )


def _study(cfg: ObjectiveConfig) -> optuna.Study:
    """An in-memory study with the directions of ``cfg``'s objectives."""
    directions: list[Any] = cfg.directions  # plain strings; Optuna's stubs want literals
    return optuna.create_study(directions=directions)


def _fixed() -> optuna.trial.FixedTrial:
    return optuna.trial.FixedTrial({"n_layers": 1, "units_l0": 16, "adamw_lr": 5e-3})


def test_values_follow_the_order_of_objectives(digits: TensorData) -> None:
    acc_first = Objective(
        ObjectiveConfig(objectives=("accuracy", "params"), epochs=EPOCHS), digits
    )(_fixed())
    params_first = Objective(
        ObjectiveConfig(objectives=("params", "accuracy"), epochs=EPOCHS), digits
    )(_fixed())

    assert isinstance(acc_first, tuple)
    assert isinstance(params_first, tuple)
    n_params = 64 * 16 + 16 + 16 * 10 + 10
    assert acc_first[1] == params_first[0] == n_params
    # Same trial number, same seed: the same training run, so the same accuracy.
    assert acc_first[0] == params_first[1]
    assert 0.5 < acc_first[0] <= 1.0


def test_flops_f1_and_latency_objectives(digits: TensorData) -> None:
    cfg = ObjectiveConfig(objectives=("flops", "f1", "latency_ms", "accuracy"), epochs=EPOCHS)
    trial = _fixed()
    flops, f1, latency_ms, acc = Objective(cfg, digits)(trial)  # type: ignore[misc]

    layout = Layout.from_dict(trial.user_attrs["layout"])
    assert flops == count_flops(build_model(layout), digits.input_shape) == 2 * (64 * 16 + 16 * 10)
    assert 0.0 < f1 <= 1.0
    assert math.isfinite(latency_ms) and latency_ms > 0
    assert trial.user_attrs["latency_ms"] == latency_ms
    assert 0.5 < acc <= 1.0


def test_single_objective_returns_a_float(digits: TensorData) -> None:
    value = Objective(ObjectiveConfig(objectives=("accuracy",), epochs=1), digits)(_fixed())
    assert isinstance(value, float)
    assert 0.0 <= value <= 1.0


def test_params_equals_count_params_of_the_built_layout(digits: TensorData) -> None:
    space = SearchSpace(
        model=ModelSpace(
            family="cnn", depth=IntRange(1, 3), width=IntRange(4, 16), norm=Choice(("batch",))
        ),
    )
    trial = optuna.trial.FixedTrial(
        {"n_blocks": 2, "channels_l0": 4, "channels_l1": 8, "adamw_lr": 3e-3}
    )
    cfg = ObjectiveConfig(space=space, objectives=("params", "accuracy"), epochs=1)
    params, _ = Objective(cfg, digits)(trial)  # type: ignore[misc]

    layout = Layout.from_dict(trial.user_attrs["layout"])
    assert layout.widths == (4, 8)
    assert params == count_params(build_model(layout)) == trial.user_attrs["params"]
    # conv 1->4 k3 + BN(4), conv 4->8 k3 + BN(8), head 8->10
    assert params == (4 * 9 + 8) + (8 * 4 * 9 + 16) + (8 * 10 + 10)


def test_study_trial_stores_its_user_attrs(digits: TensorData) -> None:
    cfg = ObjectiveConfig(space=_space(width=16), epochs=EPOCHS)
    study = _study(cfg)
    study.optimize(Objective(cfg, digits), n_trials=1)
    trial = study.trials[0]
    attrs = trial.user_attrs

    assert trial.state == TrialState.COMPLETE
    assert {
        "arch",
        "layout",
        "optimizer_settings",
        "params",
        "flops",
        "device",
        "epochs_run",
        "train_seconds",
        "val_accuracy",
    } <= set(attrs)
    assert "fail_reason" not in attrs

    layout = Layout.from_dict(attrs["layout"])
    settings = OptimizerSettings.from_dict(attrs["optimizer_settings"])
    assert layout.widths == (16,)
    assert (settings.name, settings.lr) == ("adamw", 5e-3)
    assert attrs["arch"] == f"{layout.summary()} | {settings.summary()}"
    assert attrs["params"] == count_params(build_model(layout))
    assert attrs["flops"] == 2 * (64 * 16 + 16 * 10)
    assert attrs["device"] == "cpu"
    assert attrs["epochs_run"] == EPOCHS
    assert attrs["train_seconds"] > 0
    curve = attrs["val_accuracy"]
    assert isinstance(curve, list)
    assert len(curve) == EPOCHS
    # The returned accuracy is the last epoch's.
    assert trial.values == [curve[-1], attrs["params"]]
    assert cfg.directions == ["maximize", "minimize"]
    assert "train_step" not in attrs  # stored on CUDA, or where CUDA graphs were asked for


def test_cuda_graphs_asked_for_on_the_cpu_store_that_the_step_ran_eagerly(
    digits: TensorData,
) -> None:
    cfg = ObjectiveConfig(space=_space(width=16), epochs=1)
    study = _study(cfg)
    study.optimize(Objective(cfg, digits, cuda_graphs=True), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["train_step"].startswith("eager (cuda graphs need CUDA")


@pytest.mark.parametrize(("width", "feasible"), [(64, False), (4, True)])
def test_params_constraint(digits: TensorData, width: int, feasible: bool) -> None:
    cfg = ObjectiveConfig(space=_space(width=width), epochs=1, constraints={"params": 1000})
    study = _study(cfg)
    study.optimize(Objective(cfg, digits), n_trials=1)
    trial = study.trials[0]

    n_params = 64 * width + width + width * 10 + 10
    assert trial.user_attrs["params"] == n_params
    assert trial.constraints == {"max_params": pytest.approx(n_params - 1000)}
    if feasible:
        assert trial.constraints["max_params"] <= 0
    else:
        assert trial.constraints["max_params"] > 0


def test_single_objective_reports_every_epoch_to_the_pruner(digits: TensorData) -> None:
    epochs = 3
    cfg = ObjectiveConfig(space=_space(), objectives=("accuracy",), epochs=epochs)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=5)
    )
    study.optimize(Objective(cfg, digits), n_trials=1)
    trial = study.trials[0]

    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [1, 2, 3]
    assert [trial.intermediate_values[e] for e in (1, 2, 3)] == trial.user_attrs["val_accuracy"]
    assert trial.value == trial.intermediate_values[epochs]


def test_pruner_stops_a_trial_after_its_report(digits: TensorData) -> None:
    cfg = ObjectiveConfig(space=_space(), objectives=("f1",), epochs=5)
    # Every accuracy is below 1.1, so the first report prunes.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(1.1))
    study.optimize(Objective(cfg, digits), n_trials=1)
    trial = study.trials[0]

    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert trial.user_attrs["epochs_run"] == 1
    assert len(trial.user_attrs["val_accuracy"]) == 1


def test_minimized_single_objective_reports_no_accuracy(digits: TensorData) -> None:
    # Accuracy is not an intermediate value of a params study: were it reported, a pruner
    # would compare it the wrong way round. This pruner would stop any trial that reports.
    cfg = ObjectiveConfig(space=_space(), objectives=("params",), epochs=2)
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.ThresholdPruner(1.1))
    study.optimize(Objective(cfg, digits), n_trials=1)
    trial = study.trials[0]

    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {}
    assert trial.value == trial.user_attrs["params"]
    assert len(trial.user_attrs["val_accuracy"]) == 2


def test_multi_objective_reports_nothing(digits: TensorData) -> None:
    cfg = ObjectiveConfig(space=_space(), epochs=2)
    study = _study(cfg)
    study.optimize(Objective(cfg, digits), n_trials=1)
    assert study.trials[0].intermediate_values == {}


def test_non_finite_loss_fails_the_trial_and_the_next_one_completes(digits: TensorData) -> None:
    space = SearchSpace(
        model=ModelSpace(depth=IntRange(1, 1), width=IntRange(32, 32)),
        optimizers={
            "sgd": OptimizerSpace(lr=FloatRange(1e6, 1e6), momentum=FloatRange(0.0, 0.0)),
            "adamw": OptimizerSpace(lr=FloatRange(5e-3, 5e-3)),
        },
    )
    cfg = ObjectiveConfig(space=space, epochs=10)
    study = _study(cfg)
    study.enqueue_trial({"optimizer": "sgd"})
    study.enqueue_trial({"optimizer": "adamw"})
    study.optimize(Objective(cfg, digits), n_trials=1, catch=(Exception,))
    cfg_short = ObjectiveConfig(space=space, epochs=EPOCHS)
    study.optimize(Objective(cfg_short, digits), n_trials=1, catch=(Exception,))

    failed, ok = study.trials
    assert failed.params["optimizer"] == "sgd"
    assert failed.state == TrialState.FAIL
    assert "non-finite" in failed.user_attrs["fail_reason"]
    assert failed.user_attrs["fail_reason"].startswith("NonFiniteLossError")
    assert ok.params["optimizer"] == "adamw"
    assert ok.state == TrialState.COMPLETE
    assert "fail_reason" not in ok.user_attrs
    assert ok.values[0] > 0.5


def test_fixed_trial_failure_is_raised_with_its_reason(digits: TensorData) -> None:
    space = SearchSpace(
        optimizers={"sgd": OptimizerSpace(lr=FloatRange(1e6, 1e6), momentum=FloatRange(0, 0))},
    )
    trial = optuna.trial.FixedTrial({"n_layers": 1, "units_l0": 32})
    with pytest.raises(RuntimeError, match="non-finite"):
        Objective(ObjectiveConfig(space=space, epochs=10), digits)(trial)
    assert "non-finite" in trial.user_attrs["fail_reason"]
