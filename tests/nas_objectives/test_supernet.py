"""The DARTS supernet: the mixed op's sum, gradients to alpha and weights, discretisation,
the expected cost, and short searches (first and second order, NaN)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nas_objectives import NonFiniteLossError, build_model, count_flops, count_params
from nas_objectives import load_dataset as load
from nas_objectives._supernet import (
    MixedOp,
    SearchSettings,
    Supernet,
    discretise,
    expected_cost,
    normalised_cost,
    search,
)
from nas_objectives.cell import edge_costs
from nas_objectives.space import NB201_OPS, Layout

OPS = NB201_OPS


def _layout(width: int = 4) -> Layout:
    return Layout("cell", (1, 8, 8), 10, widths=(width,), nodes=4, cells_per_stage=1)


def test_mixed_op_is_the_weighted_sum_of_its_ops() -> None:
    torch.manual_seed(0)
    mixed = MixedOp(OPS, 3)
    x = torch.randn(2, 3, 5, 5)
    w = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    by_hand = (
        0.1 * 0.0 * x
        + 0.2 * x
        + 0.3 * mixed.ops[2](x)
        + 0.15 * mixed.ops[3](x)
        + 0.25 * torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    )
    torch.testing.assert_close(mixed(x, w), by_hand)


def test_gradients_reach_alpha_and_the_weights() -> None:
    torch.manual_seed(0)
    net = Supernet(_layout(), OPS)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert net.alpha.grad is not None and float(net.alpha.grad.abs().sum()) > 0
    # Every edge's alpha row moves, and so do the convolutions of every mixed op.
    assert bool((net.alpha.grad.abs().sum(1) > 0).all())
    convs = [m for m in net.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)
    assert all(p is not net.alpha for p in net.weights())


def test_discretise_takes_the_argmax_but_never_none() -> None:
    alpha = torch.tensor(
        [
            [5.0, 1.0, 2.0, 0.0, 0.0],  # none strongest: the next best, nor_conv_1x1
            [0.0, 0.0, 0.0, 3.0, 0.0],
            [0.0, 4.0, 0.0, 0.0, 1.0],
        ]
    )
    assert discretise(alpha, OPS) == ("nor_conv_1x1", "nor_conv_3x3", "skip_connect")
    assert discretise(torch.zeros(2, 1), ("none",)) == ("none", "none")


@pytest.mark.parametrize("kind", ["params", "flops"])
def test_expected_cost_is_exact_for_one_hot_alpha(kind: str) -> None:
    layout = Layout("cell", (1, 8, 8), 10, widths=(8,), nodes=4, cells_per_stage=2)
    costs = edge_costs(layout, OPS, kind)
    picks = [3, 1, 0, 4, 2, 3]
    alpha = torch.full((6, 5), -1e4)
    for e, k in enumerate(picks):
        alpha[e, k] = 0.0  # softmax: exactly one-hot in float32
    cell = tuple(OPS[k] for k in picks)  # a none edge too: the cost counts it as built
    model = build_model(dataclasses.replace(layout, cell=cell))
    counted = count_params(model) if kind == "params" else count_flops(model, (1, 8, 8))
    assert float(expected_cost(alpha, costs)) == pytest.approx(counted, rel=1e-6)
    assert 0.0 <= float(normalised_cost(alpha, costs)) <= 1.0


def test_normalised_cost_spans_the_cheapest_to_the_dearest_cell() -> None:
    costs = edge_costs(_layout(), OPS, "params")
    none = torch.full((6, 5), -1e4)
    none[:, 0] = 0.0
    conv = torch.full((6, 5), -1e4)
    conv[:, 3] = 0.0
    assert float(normalised_cost(none, costs)) == pytest.approx(0.0, abs=1e-6)
    assert float(normalised_cost(conv, costs)) == pytest.approx(1.0, abs=1e-6)
    a = torch.zeros(6, 5, requires_grad=True)
    normalised_cost(a, costs).backward()
    assert a.grad is not None and float(a.grad[:, 3].min()) > 0  # the dearest op is pushed down


@pytest.mark.parametrize("second_order", [False, True])
def test_a_short_search_derives_a_cell_and_moves_alpha(second_order: bool) -> None:
    data = load("digits")
    settings = SearchSettings(epochs=1, batch_size=128, second_order=second_order, cost_weight=1)
    result = search(_layout(), OPS, data, settings)
    assert len(result.cell) == 6 and "none" not in result.cell
    assert set(result.cell) <= set(OPS)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["weight_loss"])
    probs = torch.tensor(result.probabilities)
    torch.testing.assert_close(probs.sum(1), torch.ones(6))
    assert float((probs - 0.2).abs().max()) > 1e-5  # alpha left its uniform start
    assert result.seconds > 0
    assert settings.method == ("darts-2nd+beta" if second_order else "darts-1st+beta")


def test_a_nan_ends_the_search_with_a_reason() -> None:
    data = load("digits")
    settings = SearchSettings(epochs=1, batch_size=128, w_lr=1e30, guard=False)
    with pytest.raises(NonFiniteLossError, match="non-finite supernet loss"):
        search(_layout(), OPS, data, settings)
