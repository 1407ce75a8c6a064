from __future__ import annotations

from pathlib import Path

import pytest

from nas_objectives import Choice, FloatRange, IntRange
from studies import StudySpecError, load_spec, parse_spec

MINIMAL = """
name = "tiny"
dataset = "digits"
"""


def test_minimal_file_gets_sensible_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.name == "tiny"
    assert spec.objectives == ("accuracy", "params")
    assert spec.directions == ["maximize", "minimize"]
    assert spec.sampler.name == "tpe" and spec.pruner.name == "none"
    assert list(spec.objective.space.optimizers) == ["adamw"]
    assert spec.dataset.val_fraction == 0.2


def test_ranges_scalars_and_choices() -> None:
    spec = parse_spec(
        MINIMAL
        + """
[model]
depth = [1, 4]
width = { low = 8, high = 64, log = false }
dropout = 0.1
activation = ["relu", "gelu"]
norm = "batch"

[optimizers.sgd]
lr = [1e-3, 1e-1]
weight_decay = [0.0, 1e-3]
nesterov = [false, true]
"""
    )
    m = spec.objective.space.model
    assert m.depth == IntRange(1, 4, log=False)
    assert m.width == IntRange(8, 64, log=False)
    assert m.dropout == FloatRange(0.1, 0.1)
    assert m.activation == Choice(("relu", "gelu"))
    assert m.norm == Choice(("batch",))
    sgd = spec.objective.space.optimizers["sgd"]
    assert sgd.lr == FloatRange(1e-3, 1e-1, log=True)  # learning rates are log scale
    assert sgd.weight_decay == FloatRange(0.0, 1e-3, log=False)  # 0 cannot be log scale
    assert sgd.nesterov == Choice((False, True))


def test_numeric_choices_become_a_choice_of_numbers() -> None:
    spec = parse_spec(
        MINIMAL
        + """
[model]
depth = { choices = [1, 3] }
width = { choices = [16, 64, 256] }
dropout = { choices = [0.0, 0.25] }

[training]
label_smoothing = { choices = [0.0, 0.1] }

[optimizers.sgd]
lr = { choices = [1e-3, 0.1] }
momentum = { choices = [0, 0.9] }
"""
    )
    m = spec.objective.space.model
    assert m.depth == Choice((1, 3))
    assert m.width == Choice((16, 64, 256))
    assert all(type(w) is int for w in m.width.options)
    assert m.dropout == Choice((0.0, 0.25))
    sgd = spec.objective.space.optimizers["sgd"]
    assert sgd.lr == Choice((1e-3, 0.1))
    # Float fields hold floats even where the file wrote an integer.
    assert sgd.momentum == Choice((0.0, 0.9)) and type(sgd.momentum.options[0]) is float
    assert spec.objective.space.training.label_smoothing == Choice((0.0, 0.1))


def test_sampler_and_pruner_options_pass_through() -> None:
    spec = parse_spec(
        """
name = "so"
dataset = "digits"
objectives = ["accuracy"]
[sampler]
name = "tpe"
n_startup_trials = 3
[pruner]
name = "hyperband"
min_resource = 1
"""
    )
    assert dict(spec.sampler.options) == {"n_startup_trials": 3}
    assert spec.pruner.name == "hyperband" and dict(spec.pruner.options) == {"min_resource": 1}


def test_constraints_become_upper_bounds() -> None:
    spec = parse_spec(MINIMAL + "[constraints]\nmax_params = 5000\nmax_flops = 1e6\n")
    assert dict(spec.objective.constraints) == {"params": 5000.0, "flops": 1e6}


BAD = [
    # (file text, field named in the message, value named in the message)
    ('name = "x"\ndataset = "digits"\nepochs == 3\n', "invalid TOML", "line 3"),
    (MINIMAL + "colour = 'blue'\n", "colour", "'blue'"),
    ('name = "x"\ndataset = "imagenet"\n', "dataset.name", "'imagenet'"),
    (MINIMAL + "[model]\nwidth = [256, 16]\n", "model.width", "[256, 16]"),
    (MINIMAL + "[optimizers.adamw]\nlr = [0.1, 0.001]\n", "optimizers.adamw.lr", "0.1"),
    (MINIMAL + "[optimizers.lamb]\nlr = 0.01\n", "optimizers.lamb", "unknown field"),
    (MINIMAL + "[optimizers.sgd]\nbetas = [0.9, 0.99]\n", "optimizers.sgd.betas", "[0.9, 0.99]"),
    (MINIMAL + "[model]\nactivation = ['relu', 'swish']\n", "model.activation", "'swish'"),
    (MINIMAL + "objectives = ['accuracy', 'speed']\n", "objectives", "'speed'"),
    (MINIMAL + "[sampler]\nname = 'cmaes'\n", "sampler.name", "'cmaes'"),
    (MINIMAL + "[sampler]\nname = 'tpe'\nn_startup = 3\n", "sampler.n_startup", "3"),
    (MINIMAL + "[pruner]\nname = 'median'\n", "pruner.name", "'median'"),
    (MINIMAL + "epochs = 0\n", "epochs", "0"),
    (MINIMAL + "epochs = 'ten'\n", "epochs", "'ten'"),
    (MINIMAL + "[training]\nbatch_size = [64, -1]\n", "training.batch_size", "-1"),
    (MINIMAL + "[constraints]\nmax_params = -5\n", "constraints.max_params", "-5"),
    (MINIMAL + "[constraints]\nmax_accuracy = 0.5\n", "constraints.max_accuracy", "0.5"),
    (MINIMAL + "[model]\nfamily = 'transformer'\n", "model.family", "'transformer'"),
    (MINIMAL + "[model]\nkernel_size = [3]\n", "model.kernel_size", "[3]"),  # MLP has no kernels
    ('dataset = "digits"\n', "name", "required"),
    # Numeric choices: numbers only, non-empty, distinct, within the field's bounds.
    (MINIMAL + "[model]\nwidth = { choices = [] }\n", "model.width.choices", "[]"),
    (MINIMAL + "[model]\nwidth = { choices = 16 }\n", "model.width.choices", "16"),
    (MINIMAL + "[model]\nwidth = { choices = [16, 'wide'] }\n", "model.width.choices", "'wide'"),
    (MINIMAL + "[model]\nwidth = { choices = [16, 0] }\n", "model.width.choices", "0"),
    (MINIMAL + "[model]\nwidth = { choices = [16, 32.5] }\n", "model.width.choices", "32.5"),
    (MINIMAL + "[model]\ndepth = { choices = [true] }\n", "model.depth.choices", "True"),
    (MINIMAL + "[model]\nwidth = { choices = [16, 16] }\n", "model.width.choices", "16"),
    (
        MINIMAL + "[model]\nwidth = { choices = [16], log = true }\n",
        "model.width",
        "'log': True",
    ),
    (MINIMAL + "[optimizers.adam]\nlr = { choices = [1e-3, -1e-3] }\n", "adam.lr", "-0.001"),
    (MINIMAL + "[optimizers.adam]\nlr = { choices = [1e-3, 0] }\n", "adam.lr.choices", "0"),
    (MINIMAL + "[model]\ndropout = { choices = [0.1, 1.5] }\n", "model.dropout", "1.5"),
]


@pytest.mark.parametrize(("text", "field", "value"), BAD)
def test_every_error_is_one_line_naming_file_field_and_value(
    tmp_path: Path, text: str, field: str, value: str
) -> None:
    path = tmp_path / "bad-study.toml"
    path.write_text(text)
    with pytest.raises(StudySpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert field in message
    assert value in message
    assert "\n" not in message


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(StudySpecError, match="cannot read study file"):
        load_spec(tmp_path / "nope.toml")
