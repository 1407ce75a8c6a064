"""The training step's variants on this CPU: the host-side learning-rate schedule a CUDA
graph replays, the fallback when CUDA graphs are asked for without CUDA, and channels-last
image models. The captured step itself runs only on a GPU: ``benchmarks/gpu_checks.py``
compares its losses with the eager step's there."""

from __future__ import annotations

import pytest
import torch

from nas_objectives import Layout, OptimizerSettings, TensorData, build_model, load_dataset, train
from nas_objectives._graphed_step import HostSchedule
from nas_objectives.train import make_optimizer, make_scheduler


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return load_dataset("digits")


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_host_schedule_gives_each_step_the_eager_paths_learning_rate(
    schedule: str, name: str
) -> None:
    settings = OptimizerSettings(name, lr=0.03, momentum=0.9, schedule=schedule)
    total = 37
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings, total)
    eager = []
    for _ in range(total):  # what the eager step reads at each step, then steps the schedule
        eager.append(optimizer.param_groups[0]["lr"])
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    host = HostSchedule(settings, make_scheduler, total)
    assert [host.next_lr() for _ in range(total)] == eager
    assert len(set(eager)) == (1 if schedule == "constant" else total)


def test_cuda_graphs_without_cuda_train_eagerly_and_say_why(digits: TensorData) -> None:
    settings = OptimizerSettings("adamw", lr=3e-3, batch_size=64, schedule="cosine")

    def run(cuda_graphs: bool) -> tuple[list[float], str]:
        torch.manual_seed(0)
        model = build_model(Layout("mlp", digits.input_shape, 10, widths=(32,), dropout=0.1))
        r = train(model, settings, digits, epochs=2, seed=3, cuda_graphs=cuda_graphs)
        return [e.train_loss for e in r.history], r.train_step

    losses, how = run(True)
    eager_losses, eager_how = run(False)
    assert losses == eager_losses
    assert eager_how == "eager"
    assert how.startswith("eager (cuda graphs need CUDA")


def test_a_channels_last_cnn_trains_as_the_contiguous_one(digits: TensorData) -> None:
    layout = Layout(
        "cnn", digits.input_shape, 10, widths=(8, 16), kernel_sizes=(3, 3), norm="batch"
    )
    settings = OptimizerSettings("sgd", lr=0.05, momentum=0.9, batch_size=128)

    def run(channels_last: bool) -> tuple[list[float], torch.nn.Module]:
        torch.manual_seed(0)
        model = build_model(layout)
        r = train(model, settings, digits, epochs=2, seed=1, channels_last=channels_last)
        return [e.train_loss for e in r.history], model

    nhwc, nhwc_model = run(True)
    nchw, nchw_model = run(False)

    def nhwc_weights(model: torch.nn.Module) -> list[bool]:
        # A 1-channel input's weights are both layouts at once: look at the others.
        return [
            m.weight.is_contiguous(memory_format=torch.channels_last)
            for m in model.modules()
            if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1
        ]

    assert nhwc_weights(nhwc_model) == [True]
    assert nhwc_weights(nchw_model) == [False]
    # The same arithmetic in another order: equal up to float rounding.
    assert nhwc == pytest.approx(nchw, rel=1e-3)
    assert nhwc[-1] < nhwc[0]
