"""The training loop on real digits data: learning, seeding, optimizers, schedules, failures."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from nas_objectives import (
    OPTIMIZERS,
    SCHEDULES,
    EpochResult,
    Layout,
    NonFiniteLossError,
    OptimizerSettings,
    TensorData,
    TrainingError,
    build_model,
    load_dataset,
    predict,
    tensor_data_from_arrays,
    train,
)
from nas_objectives._feed import BatchFeeder, batch_bounds


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return load_dataset("digits")


def _model(
    data: TensorData, *, seed: int = 0, dropout: float = 0.0, norm: str = "none"
) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(
        Layout("mlp", data.input_shape, data.num_classes, widths=(32,), norm=norm, dropout=dropout)
    )


def _settings(name: str, schedule: str = "constant") -> OptimizerSettings:
    if name == "sgd":
        return OptimizerSettings(
            "sgd", lr=0.05, momentum=0.9, nesterov=True, batch_size=64, schedule=schedule
        )
    if name == "rmsprop":
        return OptimizerSettings("rmsprop", lr=1e-3, momentum=0.5, batch_size=64, schedule=schedule)
    return OptimizerSettings(name, lr=5e-3, weight_decay=1e-4, batch_size=64, schedule=schedule)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loss_decreases_and_accuracy_beats_chance(digits: TensorData) -> None:
    model = _model(digits)
    result = train(model, _settings("adamw"), digits, epochs=5)

    losses = [ep.train_loss for ep in result.history]
    assert len(losses) == 5
    assert all(later < earlier for earlier, later in itertools.pairwise(losses))
    assert losses[-1] < 0.5 * losses[0]
    # Ten classes: chance is 0.1.
    assert result.history[-1].val_accuracy > 0.85
    # The history's accuracy is that of the returned, trained model.
    val_acc = (
        (predict(model, digits.x_val, prepare=digits.normalize) == digits.y_val)
        .float()
        .mean()
        .item()
    )
    assert result.history[-1].val_accuracy == pytest.approx(val_acc)
    assert result.epochs_run == 5
    assert result.train_seconds > 0


def test_same_seed_gives_identical_history_and_weights(digits: TensorData) -> None:
    # Dropout makes the run depend on more than the batch order.
    start = _model(digits, dropout=0.3)
    a, b, c = copy.deepcopy(start), copy.deepcopy(start), copy.deepcopy(start)
    settings = _settings("adamw")

    ra = train(a, settings, digits, epochs=2, seed=7)
    torch.manual_seed(12345)  # the caller's global RNG state must not matter
    rb = train(b, settings, digits, epochs=2, seed=7)
    rc = train(c, settings, digits, epochs=2, seed=8)

    assert ra.history == rb.history
    assert _same_weights(a, b)
    assert ra.history != rc.history
    assert not _same_weights(a, c)


def test_train_leaves_the_global_rng_state_alone(digits: TensorData) -> None:
    model = _model(digits, dropout=0.2)
    torch.manual_seed(99)
    state = torch.get_rng_state()
    train(model, _settings("adam"), digits, epochs=1, seed=3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_and_schedule_trains(digits: TensorData, name: str) -> None:
    histories: dict[str, list[EpochResult]] = {}
    for schedule in SCHEDULES:
        result = train(_model(digits), _settings(name, schedule), digits, epochs=3)
        assert result.epochs_run == 3
        assert all(math.isfinite(ep.train_loss) for ep in result.history)
        assert result.history[-1].train_loss < result.history[0].train_loss
        assert result.history[-1].val_accuracy > 0.3, (name, schedule)
        histories[schedule] = result.history
    # Same start and same batches: only the schedule differs, so the runs must too.
    assert histories["constant"] != histories["cosine"]
    assert histories["constant"] != histories["onecycle"]
    assert histories["cosine"] != histories["onecycle"]


def test_sgd_nesterov_changes_the_run(digits: TensorData) -> None:
    plain = OptimizerSettings("sgd", lr=0.05, momentum=0.9, nesterov=False, batch_size=64)
    nesterov = OptimizerSettings("sgd", lr=0.05, momentum=0.9, nesterov=True, batch_size=64)
    a = train(_model(digits), plain, digits, epochs=2)
    b = train(_model(digits), nesterov, digits, epochs=2)
    assert a.history != b.history


def test_batch_norm_model_trains(digits: TensorData) -> None:
    result = train(_model(digits, norm="batch"), _settings("adamw"), digits, epochs=2)
    assert result.history[-1].val_accuracy > 0.5


@pytest.mark.parametrize("memory_budget", [None, 0], ids=["device", "host"])
@pytest.mark.parametrize("batch_size", [1, 7, 10, 64, 95, 96, 500])
def test_every_training_sample_is_trained_on_every_epoch(
    memory_budget: float | None, batch_size: int
) -> None:
    # Features 0..119, one per sample, so a batch's values tell which samples it holds.
    x = torch.arange(120, dtype=torch.float32).reshape(-1, 1)
    data = tensor_data_from_arrays(x, torch.arange(120) % 2, memory_budget=memory_budget)
    n = len(data.y_train)  # 120 less 20% test, less 20% validation: 77
    assert n == 77
    feeder = BatchFeeder(data, batch_size, seed=3)
    every = data.normalize(data.x_train).flatten().sort().values
    orders = []
    for _ in range(2):
        batches = [xb.flatten().clone() for xb, _ in feeder.epoch()]
        sizes = [len(b) for b in batches]
        # ceil(n / batch_size) batches, sizes within one of each other, none over the size.
        assert len(sizes) == feeder.steps == -(-n // min(batch_size, n))
        assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1
        seen = torch.cat(batches)
        assert torch.equal(seen.sort().values, every)  # each sample exactly once
        orders.append(seen)
    assert batch_size >= n or not torch.equal(orders[0], orders[1])  # a fresh order


def test_batch_bounds_cut_a_pass_into_near_equal_batches() -> None:
    assert batch_bounds(10, 4) == [0, 4, 7, 10]
    assert batch_bounds(8, 4) == [0, 4, 8]
    assert batch_bounds(3, 10) == [0, 3]
    # 1,150 digits at 383: a DataLoader's last batch would hold one sample (BatchNorm
    # refuses it in training); here the four batches hold 288 or 287.
    assert batch_bounds(1150, 383) == [0, 288, 576, 863, 1150]


def test_train_steps_over_every_sample_and_batch_norm_gets_no_batch_of_one(
    digits: TensorData,
) -> None:
    assert len(digits.y_train) % 383 == 1  # floor-and-remainder batching leaves one over
    model = _model(digits, norm="batch")
    sizes: list[int] = []
    model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])) if m.training else None)
    settings = OptimizerSettings("adamw", lr=5e-3, batch_size=383)
    result = train(model, settings, digits, epochs=2)
    assert sizes == [288, 288, 287, 287] * 2
    assert result.epochs_run == 2 and math.isfinite(result.history[-1].train_loss)


def test_on_epoch_is_called_once_per_epoch_counting_from_one(digits: TensorData) -> None:
    seen: list[EpochResult] = []
    result = train(_model(digits), _settings("adam"), digits, epochs=4, on_epoch=seen.append)
    assert [ep.epoch for ep in seen] == [1, 2, 3, 4]
    assert seen == result.history


def test_huge_learning_rate_raises_non_finite_loss(digits: TensorData) -> None:
    seen: list[EpochResult] = []
    settings = OptimizerSettings("sgd", lr=1e6, momentum=0.0, batch_size=64)
    with pytest.raises(NonFiniteLossError, match="non-finite") as info:
        train(_model(digits), settings, digits, epochs=10, on_epoch=seen.append)
    assert isinstance(info.value, TrainingError)
    # It stopped at the first non-finite epoch, which is not reported to the callback.
    failed_epoch = len(seen) + 1
    assert f"epoch {failed_epoch}" in str(info.value)
    assert failed_epoch < 10


class _Stop(Exception):
    pass


def test_exception_from_on_epoch_stops_training_immediately(digits: TensorData) -> None:
    model = _model(digits)
    calls: list[int] = []
    snapshot: dict[str, torch.Tensor] = {}

    def on_epoch(ep: EpochResult) -> None:
        calls.append(ep.epoch)
        if ep.epoch == 2:
            snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
            raise _Stop

    with pytest.raises(_Stop):
        train(model, _settings("adamw"), digits, epochs=50, on_epoch=on_epoch)
    assert calls == [1, 2]
    # No optimizer step ran after the callback raised.
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshot[k]) for k in snapshot)


def test_unknown_optimizer_and_schedule_are_rejected(digits: TensorData) -> None:
    with pytest.raises(ValueError, match="lamb"):
        train(_model(digits), OptimizerSettings("lamb", lr=1e-3), digits, epochs=1)
    with pytest.raises(ValueError, match="step"):
        train(_model(digits), OptimizerSettings("adam", lr=1e-3, schedule="step"), digits, epochs=1)
