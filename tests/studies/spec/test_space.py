"""space_change: which fields of a study file are its search space, field by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from studies.spec import SpaceChange, catalog_dir, parse_spec, space_change

DIGITS_MLP = (catalog_dir() / "digits-mlp.toml").read_text()
DIGITS_CELL = (catalog_dir() / "digits-cell.toml").read_text()


def _stored(text: str) -> dict[str, Any]:
    """The study file as a study stores it (studies.run.open_study): JSON of the TOML."""
    return json.loads(json.dumps(dict(parse_spec(text).source), default=str))


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("name", sorted(p.name for p in catalog_dir().glob("*.toml")))
def test_a_study_file_searches_the_space_it_stored(name: str) -> None:
    text = (catalog_dir() / name).read_text()
    assert space_change(_stored(text), parse_spec(text).objective.space) is None


SPACE_EDITS = {
    "activation": (
        'activation = ["relu", "gelu", "silu", "tanh"]',
        'activation = ["relu", "gelu"]',
        SpaceChange("model.activation", '["relu", "gelu", "silu", "tanh"]', '["relu", "gelu"]'),
    ),
    "family": ('family = "mlp"', 'family = "cnn"', SpaceChange("model.family", '"mlp"', '"cnn"')),
    "depth": (
        "depth = [1, 3]",
        "depth = [1, 4]",
        SpaceChange(
            "model.depth", "{low = 1, high = 3, log = false}", "{low = 1, high = 4, log = false}"
        ),
    ),
    "width-scale": (
        "width = { low = 4, high = 256, log = true }",
        "width = { low = 4, high = 256, log = false }",
        SpaceChange(
            "model.width", "{low = 4, high = 256, log = true}", "{low = 4, high = 256, log = false}"
        ),
    ),
    "an-optimizer-less": (
        "[optimizers.adam]\nlr = [3e-4, 3e-2]\n",
        "",
        SpaceChange("optimizers", '["adamw", "adam", "sgd"]', '["adamw", "sgd"]'),
    ),
    "optimizer-range": (
        "[optimizers.adamw]\nlr = [3e-4, 3e-2]",
        "[optimizers.adamw]\nlr = [1e-4, 3e-2]",
        SpaceChange(
            "optimizers.adamw.lr",
            "{low = 0.0003, high = 0.03, log = true}",
            "{low = 0.0001, high = 0.03, log = true}",
        ),
    ),
    # The order of a categorical's choices is part of its distribution, for Optuna too.
    "choices-reordered": (
        "nesterov = [false, true]",
        "nesterov = [true, false]",
        SpaceChange("optimizers.sgd.nesterov", "[false, true]", "[true, false]"),
    ),
    "batch-size": (
        "batch_size = [32, 64, 128]",
        "batch_size = [32, 64]",
        SpaceChange("training.batch_size", "[32, 64, 128]", "[32, 64]"),
    ),
    # A fixed value is a range of one point: the stored file must describe every trial.
    "fixed": (
        "label_smoothing = [0.0, 0.1]",
        "label_smoothing = 0.1",
        SpaceChange("training.label_smoothing", "{low = 0.0, high = 0.1, log = false}", "0.1"),
    ),
}


@pytest.mark.parametrize("case", sorted(SPACE_EDITS))
def test_the_first_changed_field_of_the_space_is_named_with_both_values(case: str) -> None:
    old, new, expected = SPACE_EDITS[case]
    changed = parse_spec(_edit(DIGITS_MLP, old, new))
    assert space_change(_stored(DIGITS_MLP), changed.objective.space) == expected


def test_a_cells_nodes_and_ops_are_its_space() -> None:
    text = _edit(DIGITS_CELL, "nodes = 4", "nodes = 3")
    change = space_change(_stored(DIGITS_CELL), parse_spec(text).objective.space)
    assert change is not None and change.field == "model.nodes"
    text = _edit(DIGITS_CELL, '"nor_conv_3x3", "avg_pool_3x3"]', '"nor_conv_3x3"]')
    change = space_change(_stored(DIGITS_CELL), parse_spec(text).objective.space)
    assert change is not None and change.field == "model.ops"
    assert change.new == '["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"]'


NOT_SPACE_EDITS = {
    "budget": ("n_trials = 60", "n_trials = 5\ntimeout = 30"),
    "epochs": ("epochs = 15", "epochs = 1"),
    "seed": ("seed = 0", "seed = 7"),
    "description": ("description = ", 'description = "another" #'),
    "pruner": ("[sampler]", '[pruner]\nname = "pareto_rank"\n\n[sampler]'),
    "heartbeat": ("[sampler]", "[heartbeat]\ninterval = 5\n\n[sampler]"),
    "constraints": ("[sampler]", "[constraints]\nmax_params = 1000\n\n[sampler]"),
    "dataset": ("val_fraction = 0.2", "val_fraction = 0.3"),
    "min-steps": ("label_smoothing = [0.0, 0.1]", "label_smoothing = [0.0, 0.1]\nmin_steps = 300"),
}


def _random_sampler(text: str) -> str:
    """``text`` with the random sampler in place of its own (and its options)."""
    return text[: text.index("[sampler]")] + '[sampler]\nname = "random"\n'


@pytest.mark.parametrize("case", [*sorted(NOT_SPACE_EDITS), "sampler"])
def test_what_is_not_searched_may_change(case: str) -> None:
    if case == "sampler":
        text = _random_sampler(DIGITS_MLP)
    else:
        text = _edit(DIGITS_MLP, *NOT_SPACE_EDITS[case])
    changed = parse_spec(text)
    assert changed.source != parse_spec(DIGITS_MLP).source  # the edit took
    assert space_change(_stored(DIGITS_MLP), changed.objective.space) is None


def test_a_section_an_older_version_stored_is_not_compared_the_others_are() -> None:
    stored = _stored(DIGITS_MLP)
    stored["model"]["skip"] = True  # a field this version does not know
    activation_changed = parse_spec(_edit(DIGITS_MLP, '"silu", "tanh"', '"tanh"'))
    assert space_change(stored, activation_changed.objective.space) is None
    batch_changed = parse_spec(_edit(DIGITS_MLP, "[32, 64, 128]", "[64]"))
    change = space_change(stored, batch_changed.objective.space)
    assert change is not None and change.field == "training.batch_size"


def test_a_stored_file_with_nothing_comparable_is_no_change() -> None:
    stored = {"name": "old", "model": "mlp", "optimizers": [], "training": 3}
    assert space_change(stored, parse_spec(DIGITS_MLP).objective.space) is None


def test_a_section_the_stored_file_left_out_is_its_defaults() -> None:
    # As the parser reads it: a file without [training] searched the default training.
    stored = _stored(DIGITS_MLP)
    del stored["training"]
    change = space_change(stored, parse_spec(DIGITS_MLP).objective.space)
    assert change == SpaceChange("training.batch_size", "[128]", "[32, 64, 128]")
