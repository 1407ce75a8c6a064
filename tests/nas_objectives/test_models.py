"""Model building: exact parameter counts by hand, output shapes and where pooling stops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas_objectives import CNN, MLP, Layout, build_model, count_params
from nas_objectives.models import ConvBlock


def _mlp(norm: str = "none", dropout: float = 0.0) -> Layout:
    return Layout("mlp", (1, 8, 8), 10, widths=(32, 16), norm=norm, dropout=dropout)


def _cnn(**kwargs: object) -> Layout:
    values: dict[str, object] = {
        "family": "cnn",
        "input_shape": (1, 8, 8),
        "num_classes": 10,
        "widths": (4, 8, 8),
        "kernel_sizes": (3, 3, 5),
        "pooling": "max",
    }
    values.update(kwargs)
    return Layout(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("norm", "expected"),
    [
        # 64*32+32 + 32*16+16 + 16*10+10
        ("none", 2080 + 528 + 170),
        # Linear without bias before BN (weight and bias per unit): 64*32+2*32 + 32*16+2*16 + 170
        ("batch", 2048 + 64 + 512 + 32 + 170),
        # LayerNorm keeps the Linear bias: 2080+2*32 + 528+2*16 + 170
        ("layer", 2080 + 64 + 528 + 32 + 170),
    ],
)
def test_mlp_parameter_count_by_hand(norm: str, expected: int) -> None:
    model = build_model(_mlp(norm=norm))
    assert isinstance(model, MLP)
    assert count_params(model) == expected


def test_mlp_has_no_bias_before_batch_norm() -> None:
    model = build_model(_mlp(norm="batch"))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, True, False]  # the head keeps its bias
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2


def test_mlp_dropout_adds_no_parameters_and_is_placed_per_layer() -> None:
    model = build_model(_mlp(dropout=0.3))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [0.3, 0.3]
    assert count_params(model) == count_params(build_model(_mlp()))


@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_output_shape(batch: int) -> None:
    layout = Layout("mlp", (3, 4, 4), 7, widths=(8,), norm="layer")
    assert build_model(layout)(torch.randn(batch, 3, 4, 4)).shape == (batch, 7)


def test_cnn_parameter_count_by_hand_with_residual_and_batch_norm() -> None:
    model = build_model(_cnn(norm="batch", residual=True))
    assert isinstance(model, CNN)
    expected = (
        # block 0: conv 1->4 k3 (no bias), BN(4), 1x1 projection 1->4 (no bias)
        (4 * 1 * 9)
        + 2 * 4
        + (4 * 1)
        # block 1: conv 4->8 k3, BN(8), 1x1 projection 4->8
        + (8 * 4 * 9)
        + 2 * 8
        + (8 * 4)
        # block 2: conv 8->8 k5, BN(8), identity skip (no parameters)
        + (8 * 8 * 25)
        + 2 * 8
        # head: Linear 8->10
        + 8 * 10
        + 10
    )
    assert expected == 2090
    assert count_params(model) == expected


def test_cnn_parameter_count_by_hand_plain() -> None:
    model = build_model(_cnn())
    # convs keep their bias without batch norm; no skips
    expected = (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 8 * 25 + 8) + (8 * 10 + 10)
    assert count_params(model) == expected


def test_cnn_parameter_count_by_hand_layer_norm() -> None:
    model = build_model(_cnn(norm="layer"))
    # GroupNorm(1, C) has a weight and a bias per channel, and the conv keeps its bias
    expected = (4 * 9 + 4 + 8) + (8 * 4 * 9 + 8 + 16) + (8 * 8 * 25 + 8 + 16) + (8 * 10 + 10)
    assert count_params(model) == expected


def test_residual_skip_is_projection_only_when_channels_change() -> None:
    model = build_model(_cnn(residual=True))
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    assert len(blocks) == 3
    assert isinstance(blocks[0].skip, nn.Conv2d)
    assert blocks[0].skip.kernel_size == (1, 1)
    assert (blocks[0].skip.in_channels, blocks[0].skip.out_channels) == (1, 4)
    assert isinstance(blocks[1].skip, nn.Conv2d)
    assert (blocks[1].skip.in_channels, blocks[1].skip.out_channels) == (4, 8)
    assert isinstance(blocks[2].skip, nn.Identity)

    no_res = build_model(_cnn(residual=False))
    assert all(b.skip is None for b in no_res.modules() if isinstance(b, ConvBlock))


def test_residual_block_adds_its_input() -> None:
    torch.manual_seed(0)
    block = ConvBlock(4, 4, 3, "none", "relu", residual=True)
    x = torch.randn(2, 4, 6, 6)
    main_path = block.act(block.norm(block.conv(x)))
    torch.testing.assert_close(block(x), main_path + x)


@pytest.mark.parametrize(
    ("pooling", "pool_type"), [("max", nn.MaxPool2d), ("avg", nn.AvgPool2d), ("none", None)]
)
def test_cnn_pooling_stops_at_one_by_one(pooling: str, pool_type: type[nn.Module] | None) -> None:
    # 8x8 -> 4x4 -> 2x2 -> 1x1, then the remaining two blocks run on a 1x1 map.
    layout = _cnn(widths=(4,) * 5, kernel_sizes=(3,) * 5, pooling=pooling)
    model = build_model(layout)
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d | nn.AvgPool2d)]
    if pool_type is None:
        assert pools == []
    else:
        assert len(pools) == 3
        assert all(type(p) is pool_type for p in pools)
    # Pooling a 1x1 map would raise here.
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_cnn_pooling_on_a_non_square_map() -> None:
    # 5x7 -> 2x3 -> 1x1; a third pool would need a map of at least 2x2.
    layout = Layout(
        "cnn", (3, 5, 7), 4, widths=(4, 4, 4, 4), kernel_sizes=(3, 3, 3, 3), pooling="avg"
    )
    model = build_model(layout)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 2
    assert model(torch.randn(2, 3, 5, 7)).shape == (2, 4)


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_cnn_convolutions_keep_the_map_size(kernel: int) -> None:
    block = ConvBlock(2, 3, kernel, "batch", "gelu", residual=True)
    assert block(torch.randn(2, 2, 8, 8)).shape == (2, 3, 8, 8)


def test_cnn_dropout_sits_before_the_head() -> None:
    model = build_model(_cnn(dropout=0.5))
    assert isinstance(model.net, nn.Sequential)
    layers = list(model.net)
    assert isinstance(layers[-1], nn.Linear)
    assert isinstance(layers[-2], nn.Dropout)
    assert layers[-2].p == 0.5


def test_count_params_equals_numel_sum() -> None:
    for layout in (_mlp("batch"), _cnn(norm="layer", residual=True)):
        model = build_model(layout)
        assert count_params(model) == sum(p.numel() for p in model.parameters())


def test_build_model_rejects_unknown_family() -> None:
    with pytest.raises(ValueError, match="transformer"):
        build_model(Layout("transformer", (1, 8, 8), 10, widths=(8,)))


def test_build_model_is_fresh_each_call() -> None:
    layout = _mlp()
    a, b = build_model(layout), build_model(layout)
    assert a is not b
    assert count_params(a) == count_params(b)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
