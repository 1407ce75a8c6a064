"""The search space: parameter names, define-by-run sampling, fixed values and summaries."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nas_objectives import (
    Choice,
    FloatRange,
    IntRange,
    Layout,
    ModelSpace,
    OptimizerSettings,
    OptimizerSpace,
    SearchSpace,
    TrainingSpace,
    suggest,
)

DIGITS_SHAPE = (1, 8, 8)

#: A space where every kind of value is searched: several depths, widths on a log scale,
#: two optimizers with different hyperparameters, and searched training settings.
WIDE_SPACE = SearchSpace(
    model=ModelSpace(
        depth=IntRange(1, 4),
        width=IntRange(8, 64, log=True),
        activation=Choice(("relu", "gelu")),
        norm=Choice(("none",)),
        dropout=FloatRange(0.0, 0.5),
    ),
    optimizers={
        "adamw": OptimizerSpace(
            lr=FloatRange(1e-4, 1e-2, log=True),
            weight_decay=FloatRange(1e-6, 1e-2, log=True),
            beta1=FloatRange(0.8, 0.95),
        ),
        "sgd": OptimizerSpace(
            lr=FloatRange(1e-3, 1e-1, log=True),
            momentum=FloatRange(0.0, 0.99),
            nesterov=Choice((False, True)),
        ),
    },
    training=TrainingSpace(
        batch_size=Choice((64, 128)),
        schedule=Choice(("constant", "cosine")),
        label_smoothing=FloatRange(0.0, 0.2),
    ),
)


def _run_random_study(space: SearchSpace, n_trials: int) -> optuna.Study:
    def objective(trial: optuna.Trial) -> float:
        suggest(trial, space, DIGITS_SHAPE, 10)
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    return study


def test_fixed_trial_mlp_gives_expected_layout_and_settings() -> None:
    trial = optuna.trial.FixedTrial(
        {
            "n_layers": 2,
            "units_l0": 48,
            "units_l1": 16,
            "activation": "gelu",
            "dropout": 0.25,
            "optimizer": "adamw",
            "adamw_lr": 3e-3,
            "adamw_weight_decay": 1e-4,
            "adamw_beta1": 0.85,
            "batch_size": 64,
            "schedule": "cosine",
            "label_smoothing": 0.1,
        }
    )
    layout, settings = suggest(trial, WIDE_SPACE, DIGITS_SHAPE, 10)

    assert layout == Layout(
        family="mlp",
        input_shape=DIGITS_SHAPE,
        num_classes=10,
        widths=(48, 16),
        activation="gelu",
        norm="none",
        dropout=0.25,
    )
    assert settings == OptimizerSettings(
        name="adamw",
        lr=3e-3,
        weight_decay=1e-4,
        betas=(0.85, 0.999),
        batch_size=64,
        schedule="cosine",
        label_smoothing=0.1,
    )
    # Exactly these were suggested: norm and beta2 are fixed in WIDE_SPACE.
    assert set(trial.params) == {
        "n_layers",
        "units_l0",
        "units_l1",
        "activation",
        "dropout",
        "optimizer",
        "adamw_lr",
        "adamw_weight_decay",
        "adamw_beta1",
        "batch_size",
        "schedule",
        "label_smoothing",
    }


def test_fixed_trial_cnn_uses_block_names() -> None:
    space = SearchSpace(
        model=ModelSpace(
            family="cnn",
            depth=IntRange(1, 3),
            width=IntRange(8, 32),
            kernel_size=Choice((3, 5)),
            pooling=Choice(("max", "avg")),
            residual=Choice((False, True)),
            norm=Choice(("none", "batch")),
        ),
    )
    trial = optuna.trial.FixedTrial(
        {
            "n_blocks": 2,
            "channels_l0": 8,
            "kernel_l0": 3,
            "channels_l1": 16,
            "kernel_l1": 5,
            "norm": "batch",
            "pooling": "avg",
            "residual": True,
            "adamw_lr": 1e-3,
        }
    )
    layout, settings = suggest(trial, space, DIGITS_SHAPE, 10)

    assert layout == Layout(
        family="cnn",
        input_shape=DIGITS_SHAPE,
        num_classes=10,
        widths=(8, 16),
        kernel_sizes=(3, 5),
        norm="batch",
        pooling="avg",
        residual=True,
    )
    assert settings.name == "adamw"
    assert settings.lr == 1e-3
    assert set(trial.params) == {
        "n_blocks",
        "channels_l0",
        "kernel_l0",
        "channels_l1",
        "kernel_l1",
        "norm",
        "pooling",
        "residual",
        "adamw_lr",
    }


def test_define_by_run_only_samples_existing_layers_and_chosen_optimizer() -> None:
    study = _run_random_study(WIDE_SPACE, n_trials=40)
    depths, optimizers = set(), set()
    for trial in study.trials:
        params = trial.params
        k = params["n_layers"]
        depths.add(k)
        assert {p for p in params if p.startswith("units_")} == {f"units_l{i}" for i in range(k)}

        opt = params["optimizer"]
        optimizers.add(opt)
        other = "sgd" if opt == "adamw" else "adamw"
        assert f"{opt}_lr" in params
        assert not any(p.startswith(f"{other}_") for p in params)
        if opt == "adamw":
            assert {"adamw_weight_decay", "adamw_beta1"} <= set(params)
            assert "adamw_beta2" not in params  # fixed at 0.999
        else:
            assert "sgd_momentum" in params
            assert ("sgd_nesterov" in params) == (params["sgd_momentum"] > 0)
            assert "sgd_weight_decay" not in params  # fixed at 0
        # Fixed values are never suggested.
        assert "norm" not in params

    # The checks above ran over several depths and both optimizers.
    assert depths == {1, 2, 3, 4}
    assert optimizers == {"adamw", "sgd"}


def test_distributions_are_log_scale_where_the_space_says_so() -> None:
    study = _run_random_study(WIDE_SPACE, n_trials=20)
    seen: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.trials:
        seen.update(trial.distributions)

    assert seen["n_layers"] == IntDistribution(1, 4, log=False)
    assert seen["units_l0"] == IntDistribution(8, 64, log=True)
    assert seen["adamw_lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert seen["adamw_weight_decay"] == FloatDistribution(1e-6, 1e-2, log=True)
    assert seen["sgd_lr"] == FloatDistribution(1e-3, 1e-1, log=True)
    assert seen["sgd_momentum"] == FloatDistribution(0.0, 0.99, log=False)
    assert seen["dropout"] == FloatDistribution(0.0, 0.5, log=False)
    assert seen["optimizer"] == CategoricalDistribution(["adamw", "sgd"])
    assert seen["batch_size"] == CategoricalDistribution([64, 128])


def test_numeric_choices_are_categorical_and_sample_only_their_options() -> None:
    space = SearchSpace(
        model=ModelSpace(depth=Choice((1, 3)), width=Choice((16, 64, 256))),
        optimizers={"sgd": OptimizerSpace(lr=Choice((1e-3, 0.1)), momentum=Choice((0.0, 0.9)))},
    )
    study = _run_random_study(space, n_trials=30)
    seen: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.trials:
        seen.update(trial.distributions)
        assert trial.params["n_layers"] in (1, 3)
        assert trial.params["sgd_lr"] in (1e-3, 0.1)
        layout, settings = suggest(optuna.trial.FixedTrial(trial.params), space, DIGITS_SHAPE, 10)
        assert set(layout.widths) <= {16, 64, 256}
        assert settings.momentum in (0.0, 0.9)

    assert seen["n_layers"] == CategoricalDistribution([1, 3])
    assert seen["units_l0"] == CategoricalDistribution([16, 64, 256])
    assert seen["units_l2"] == CategoricalDistribution([16, 64, 256])
    assert seen["sgd_lr"] == CategoricalDistribution([1e-3, 0.1])
    assert seen["sgd_momentum"] == CategoricalDistribution([0.0, 0.9])


def test_fixed_values_are_not_suggested() -> None:
    space = SearchSpace(
        model=ModelSpace(
            depth=IntRange(2, 2), width=IntRange(32, 32), dropout=FloatRange(0.1, 0.1)
        ),
        optimizers={"adam": OptimizerSpace(lr=FloatRange(2e-3, 2e-3))},
    )
    trial = optuna.trial.FixedTrial({})
    layout, settings = suggest(trial, space, DIGITS_SHAPE, 10)

    assert trial.params == {}
    assert layout.widths == (32, 32)
    assert layout.dropout == 0.1
    assert (settings.name, settings.lr) == ("adam", 2e-3)


def test_sgd_nesterov_only_suggested_with_momentum() -> None:
    space = SearchSpace(
        optimizers={
            "sgd": OptimizerSpace(momentum=FloatRange(0.0, 0.9), nesterov=Choice((False, True)))
        }
    )
    base = {"n_layers": 1, "units_l0": 16, "sgd_lr": 1e-2, "sgd_nesterov": True}

    without = optuna.trial.FixedTrial({**base, "sgd_momentum": 0.0})
    _, settings = suggest(without, space, DIGITS_SHAPE, 10)
    assert "sgd_nesterov" not in without.params
    assert (settings.momentum, settings.nesterov) == (0.0, False)

    with_momentum = optuna.trial.FixedTrial({**base, "sgd_momentum": 0.5})
    _, settings = suggest(with_momentum, space, DIGITS_SHAPE, 10)
    assert with_momentum.params["sgd_nesterov"] is True
    assert (settings.momentum, settings.nesterov) == (0.5, True)


def test_rmsprop_samples_momentum_not_betas() -> None:
    space = SearchSpace(optimizers={"rmsprop": OptimizerSpace(momentum=FloatRange(0.0, 0.9))})
    trial = optuna.trial.FixedTrial(
        {"n_layers": 1, "units_l0": 16, "rmsprop_lr": 1e-3, "rmsprop_momentum": 0.3}
    )
    _, settings = suggest(trial, space, DIGITS_SHAPE, 10)
    assert set(trial.params) == {"n_layers", "units_l0", "rmsprop_lr", "rmsprop_momentum"}
    assert (settings.name, settings.momentum, settings.nesterov) == ("rmsprop", 0.3, False)


def test_missing_fixed_trial_parameter_names_it() -> None:
    with pytest.raises(ValueError, match="units_l1"):
        suggest(
            optuna.trial.FixedTrial({"n_layers": 2, "units_l0": 16, "adamw_lr": 1e-3}),
            SearchSpace(),
            DIGITS_SHAPE,
            10,
        )


def test_mlp_summary() -> None:
    layout = Layout("mlp", (1, 8, 8), 10, widths=(256, 128), norm="batch", dropout=0.1)
    assert layout.summary() == "64-256-128-10 relu bn drop0.1"
    assert Layout("mlp", (1, 8, 8), 10, widths=(32,)).summary() == "64-32-10 relu"
    assert (
        Layout("mlp", (3, 4, 4), 5, widths=(8,), activation="gelu", norm="layer").summary()
        == "48-8-5 gelu ln"
    )


def test_cnn_summary() -> None:
    layout = Layout(
        "cnn",
        (1, 8, 8),
        10,
        widths=(16, 32),
        kernel_sizes=(3, 5),
        norm="batch",
        pooling="max",
        residual=True,
        dropout=0.1,
    )
    assert layout.summary() == "1x8x8-c16k3-c32k5-gap-10 relu bn maxpool res drop0.1"
    plain = Layout("cnn", (3, 32, 32), 10, widths=(8,), kernel_sizes=(3,), pooling="none")
    assert plain.summary() == "3x32x32-c8k3-gap-10 relu"


def test_optimizer_settings_summary() -> None:
    s = OptimizerSettings("adamw", lr=3e-3, weight_decay=1e-4, batch_size=256, schedule="cosine")
    assert s.summary() == "adamw lr=3e-3 wd=1e-4 bs=256 cosine"
    assert OptimizerSettings("adam", lr=1.5e-4).summary() == "adam lr=1.5e-4 bs=128 constant"
    sgd = OptimizerSettings(
        "sgd", lr=0.1, momentum=0.9, nesterov=True, schedule="onecycle", label_smoothing=0.1
    )
    assert sgd.summary() == "sgd lr=1e-1 mom=0.9 nesterov bs=128 onecycle ls=0.1"


def test_layout_dict_round_trip_through_json() -> None:
    layout = Layout(
        "cnn",
        (3, 32, 32),
        10,
        widths=(16, 32),
        kernel_sizes=(3, 5),
        activation="silu",
        norm="layer",
        dropout=0.2,
        pooling="avg",
        residual=True,
    )
    restored = Layout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert restored == layout
    assert isinstance(restored.widths, tuple)
    assert Layout.from_dict(layout.to_dict()) == layout


def test_optimizer_settings_dict_round_trip_through_json() -> None:
    settings = OptimizerSettings(
        "adam",
        lr=1e-3,
        weight_decay=1e-5,
        betas=(0.8, 0.99),
        batch_size=64,
        schedule="onecycle",
        label_smoothing=0.05,
    )
    restored = OptimizerSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert restored == settings
    assert restored.betas == (0.8, 0.99)
