"""Metrics: FLOPs by hand, macro F1 by hand, accuracy and latency."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import f1_score
from torch import nn

from nas_objectives import (
    OBJECTIVES,
    Layout,
    accuracy,
    build_model,
    count_flops,
    count_params,
    macro_f1,
    measure_latency_ms,
)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_count_flops_mlp_is_twice_the_macs(norm: str) -> None:
    model = build_model(Layout("mlp", (1, 8, 8), 10, widths=(32, 16), norm=norm))
    macs = 64 * 32 + 32 * 16 + 16 * 10
    assert count_flops(model, (1, 8, 8)) == 2 * macs


def test_count_flops_cnn_by_hand() -> None:
    layout = Layout("cnn", (1, 8, 8), 10, widths=(4, 8), kernel_sizes=(3, 3), pooling="max")
    macs = (
        8 * 8 * 4 * 1 * 9  # conv 1->4, 3x3, on 8x8 (same padding); then pool to 4x4
        + 4 * 4 * 8 * 4 * 9  # conv 4->8, 3x3, on 4x4; then pool to 2x2
        + 8 * 10  # head
    )
    assert count_flops(build_model(layout), (1, 8, 8)) == 2 * macs


def test_count_flops_cnn_counts_the_residual_projection() -> None:
    layout = Layout(
        "cnn", (1, 8, 8), 10, widths=(4, 8), kernel_sizes=(3, 3), pooling="max", residual=True
    )
    macs = (
        8 * 8 * 4 * 1 * 9
        + 8 * 8 * 4 * 1  # 1x1 projection 1->4 on 8x8
        + 4 * 4 * 8 * 4 * 9
        + 4 * 4 * 8 * 4  # 1x1 projection 4->8 on 4x4
        + 8 * 10
    )
    assert count_flops(build_model(layout), (1, 8, 8)) == 2 * macs


def test_count_flops_restores_training_mode_and_leaves_weights() -> None:
    model = build_model(Layout("mlp", (1, 8, 8), 10, widths=(8,), norm="batch"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    count_flops(model, (1, 8, 8))
    assert model.training
    model.eval()
    count_flops(model, (1, 8, 8))
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BN running stats untouched


def test_macro_f1_by_hand_includes_a_class_absent_from_targets() -> None:
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 3])
    # class 0: tp=1 fp=0 fn=1 -> 2/3;  class 1: tp=2 fp=1 fn=0 -> 4/5
    # class 2: tp=1 fp=0 fn=1 -> 2/3;  class 3: predicted but never a target -> 0
    # class 4: neither predicted nor a target -> left out of the mean
    expected = (2 / 3 + 4 / 5 + 2 / 3 + 0.0) / 4
    assert macro_f1(pred, target, num_classes=5) == pytest.approx(expected)
    assert expected == pytest.approx(8 / 15)
    # The same convention as scikit-learn's macro average over the labels seen.
    assert macro_f1(pred, target, num_classes=5) == pytest.approx(
        f1_score(target.numpy(), pred.numpy(), average="macro")
    )


def test_macro_f1_perfect_and_all_wrong() -> None:
    target = torch.tensor([0, 1, 2, 2])
    assert macro_f1(target.clone(), target, num_classes=3) == pytest.approx(1.0)
    assert macro_f1(torch.tensor([1, 2, 0, 0]), target, num_classes=3) == pytest.approx(0.0)


def test_macro_f1_weights_classes_equally() -> None:
    # 9 of 10 right, but the rare class is always missed: accuracy is high, macro F1 is not.
    target = torch.tensor([0] * 9 + [1])
    pred = torch.zeros(10, dtype=torch.long)
    f1_class0 = 2 * 9 / (2 * 9 + 1)
    assert accuracy(pred, target) == pytest.approx(0.9)
    assert macro_f1(pred, target, num_classes=2) == pytest.approx((f1_class0 + 0.0) / 2)


def test_accuracy() -> None:
    target = torch.tensor([0, 1, 2, 3, 4])
    assert accuracy(torch.tensor([0, 1, 2, 0, 0]), target) == pytest.approx(0.6)
    assert accuracy(target, target) == 1.0
    assert accuracy(torch.tensor([4, 3, 1, 2, 0]), target) == 0.0


def test_measure_latency_ms_is_positive_and_finite() -> None:
    model = build_model(Layout("cnn", (1, 8, 8), 10, widths=(4,), kernel_sizes=(3,), norm="batch"))
    model.train()
    ms = measure_latency_ms(model, (1, 8, 8), warmup=2, repeats=5)
    assert math.isfinite(ms)
    assert ms > 0
    assert model.training  # restored


def test_count_params_matches_numel() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False))
    assert count_params(model) == 3 * 4 + 4 + 4 * 2


def test_objective_directions() -> None:
    assert OBJECTIVES == {
        "accuracy": "maximize",
        "f1": "maximize",
        "params": "minimize",
        "flops": "minimize",
        "latency_ms": "minimize",
    }
