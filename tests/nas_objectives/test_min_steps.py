"""``[training] min_steps``: a floor on a trial's optimizer steps for small datasets."""

from __future__ import annotations

import pytest
import torch

from nas_objectives import build_model, load_dataset
from nas_objectives._feed import BatchFeeder
from nas_objectives.space import Layout, OptimizerSettings
from nas_objectives.train import train
from studies.errors import StudySpecError
from studies.spec import parse_spec, resolve_spec


def _count_steps(min_steps: int, epochs: int, batch_size: int) -> int:
    data = load_dataset("digits")
    model = build_model(Layout("mlp", data.input_shape, 10, widths=(8,)))
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(m.training) if m.training else None)
    settings = OptimizerSettings("adamw", lr=1e-3, batch_size=batch_size)
    train(model, settings, data, epochs=epochs, seed=0, min_steps=min_steps)
    return len(calls)


def test_min_steps_lengthens_each_epoch_of_a_small_dataset() -> None:
    per_epoch = -(-len(load_dataset("digits").y_train) // 512)  # 1,150: 3 batches of 384 or 383
    assert per_epoch == 3
    assert _count_steps(0, epochs=2, batch_size=512) == 2 * per_epoch
    # 25 steps over 2 epochs: ceil(25 / 2) = 13 an epoch.
    assert _count_steps(25, epochs=2, batch_size=512) == 26
    # A floor below what the data gives changes nothing.
    assert _count_steps(3, epochs=2, batch_size=512) == 2 * per_epoch


def test_a_lengthened_epoch_sees_every_sample_before_any_twice_more() -> None:
    data = load_dataset("digits")
    feeder = BatchFeeder(data, batch_size=500, seed=0, min_steps=5)  # 3 batches a pass
    batches = [xb.flatten(1) for xb, _ in feeder.epoch()]
    assert [len(b) for b in batches] == [384, 383, 383, 384, 383]
    # Each pass is a permutation of the whole split, so within one epoch of 2 passes a
    # sample appears at most twice, and the first pass holds every sample once.
    _, counts = torch.unique(torch.cat(batches), dim=0, return_counts=True)
    assert int(counts.max()) <= 2
    first_pass = torch.cat(batches[:3])
    assert len(first_pass) == len(data.y_train)
    assert len(torch.unique(first_pass, dim=0)) == len(torch.unique(data.x_train.flatten(1), dim=0))


def test_catalog_cnn_spaces_set_a_floor_and_files_are_checked() -> None:
    assert resolve_spec("digits-cnn").objective.space.training.min_steps == 300
    assert resolve_spec("mnist-cnn").objective.space.training.min_steps == 400
    assert resolve_spec("digits-mlp").objective.space.training.min_steps == 0
    base = 'name = "s"\n[dataset]\nname = "digits"\n[training]\n'
    assert parse_spec(base + "min_steps = 50\n").objective.space.training.min_steps == 50
    for bad in ("-1", "2.5", '"many"', "true"):
        with pytest.raises(StudySpecError, match=r"training\.min_steps: must be a whole number"):
            parse_spec(base + f"min_steps = {bad}\n")
