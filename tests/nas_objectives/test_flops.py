"""count_flops (layer shapes, forward hooks) against PyTorch's FlopCounterMode."""

from __future__ import annotations

import optuna
import pytest
from torch import nn

from nas_objectives import build_model
from nas_objectives.metrics import count_flops, count_flops_by_dispatch
from nas_objectives.space import suggest
from studies.spec import resolve_spec

# Input shapes and classes of each catalog study's dataset, without reading the data.
SHAPES = {
    "digits-mlp": ((1, 8, 8), 10),
    "digits-cnn": ((1, 8, 8), 10),
    "mnist-cnn": ((1, 28, 28), 10),
    "cifar10-cnn": ((3, 32, 32), 10),
    "digits-cell": ((1, 8, 8), 10),
    "cifar10-cell": ((3, 32, 32), 10),
}


@pytest.mark.parametrize("study", sorted(SHAPES))
def test_counts_equal_flop_counter_mode_on_random_points_of_each_catalog_space(
    study: str,
) -> None:
    space = resolve_spec(study).objective.space
    shape, classes = SHAPES[study]
    sampler = optuna.samplers.RandomSampler(seed=7)
    st = optuna.create_study(sampler=sampler)
    for _ in range(6):
        trial = st.ask()
        layout, _ = suggest(trial, space, shape, classes)
        model = build_model(layout)
        flops = count_flops(model, shape)
        assert flops > 0
        assert flops == count_flops_by_dispatch(model, shape), layout.summary()
        st.tell(trial, 0.0)


def test_grouped_and_strided_convolutions_and_a_model_in_training_mode() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 3),
    ).train()
    assert count_flops(model, (4, 8, 8)) == count_flops_by_dispatch(model, (4, 8, 8))
    assert model.training  # the count leaves the mode as it was


def test_a_layer_the_hooks_do_not_see_falls_back_to_the_dispatch_count() -> None:
    model = nn.Sequential(nn.Flatten(1, 2), nn.Conv1d(4, 6, 3), nn.Flatten(), nn.Linear(36, 2))
    assert count_flops(model, (2, 2, 8)) == count_flops_by_dispatch(model, (2, 2, 8)) > 0
