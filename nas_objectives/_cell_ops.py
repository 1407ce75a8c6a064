"""The operations on a cell's edges, and the ResNet block that reduces between stages.

Names and definitions follow NAS-Bench-201 (Dong and Yang, ICLR 2020, arXiv:2001.00326;
``cell_operations.py`` of D-X-Y/AutoDL-Projects): every convolution is ReLU-Conv-BN, pools
are 3x3 with stride 1, and ``none`` outputs zeros. Inside a cell the input and output of an
edge have the same channels and resolution, so no op needs a projection.

The DARTS ops (Liu, Simonyan and Yang, ICLR 2019, arXiv:1806.09055) are offered too:
``sep_conv`` is two stacked depthwise-separable convolutions, ``dil_conv`` one dilated one.

``affine=False`` gives the BatchNorm without learnable scale and shift (and without running
statistics) that a DARTS supernet uses, so the mixing weights alone scale each op.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nas_objectives._cell_graph import CELL_OPS, NB201_OPS

__all__ = ["CELL_OPS", "NB201_OPS", "ResNetBlock", "make_op"]


def _bn(c: int, affine: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=affine)


class ReLUConvBN(nn.Sequential):
    """ReLU, a bias-free convolution, BatchNorm (NAS-Bench-201's ``nor_conv``)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False),
            _bn(c_out, affine),
        )


class DilConv(nn.Sequential):
    """ReLU, a depthwise (optionally dilated) convolution, a pointwise one, BatchNorm."""

    def __init__(self, c: int, kernel: int, dilation: int, affine: bool = True) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c, c, kernel, 1, padding, dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            _bn(c, affine),
        )


class SepConv(nn.Sequential):
    """Two :class:`DilConv` of dilation 1 in a row (DARTS' ``sep_conv``)."""

    def __init__(self, c: int, kernel: int, affine: bool = True) -> None:
        super().__init__(DilConv(c, kernel, 1, affine), DilConv(c, kernel, 1, affine))


class Zero(nn.Module):
    """``none``: an edge that carries nothing (zeros shaped like its input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * 0 rather than new zeros: a NaN upstream stays visible, as in NAS-Bench-201.
        return x.mul(0.0)


def _pool(mode: str) -> nn.Module:
    if mode == "avg":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return nn.MaxPool2d(3, stride=1, padding=1)


_OPS: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda c, affine: Zero(),
    "skip_connect": lambda c, affine: nn.Identity(),
    "nor_conv_1x1": lambda c, affine: ReLUConvBN(c, c, 1, affine=affine),
    "nor_conv_3x3": lambda c, affine: ReLUConvBN(c, c, 3, affine=affine),
    "avg_pool_3x3": lambda c, affine: _pool("avg"),
    # Extra operations a study file may offer.
    "max_pool_3x3": lambda c, affine: _pool("max"),
    "nor_conv_5x5": lambda c, affine: ReLUConvBN(c, c, 5, affine=affine),
    "nor_conv_7x7": lambda c, affine: ReLUConvBN(c, c, 7, affine=affine),
    "sep_conv_3x3": lambda c, affine: SepConv(c, 3, affine),
    "sep_conv_5x5": lambda c, affine: SepConv(c, 5, affine),
    "dil_conv_3x3": lambda c, affine: DilConv(c, 3, 2, affine),
    "dil_conv_5x5": lambda c, affine: DilConv(c, 5, 2, affine),
}


def make_op(name: str, channels: int, *, affine: bool = True) -> nn.Module:
    """A fresh ``name`` op on ``channels`` channels (stride 1, same shape out as in)."""
    try:
        return _OPS[name](channels, affine)
    except KeyError:
        raise ValueError(f"unknown cell op {name!r} (known: {', '.join(CELL_OPS)})") from None


class ResNetBlock(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 basic residual block that doubles the
    channels; the shortcut is a 2x2 average pool and a 1x1 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        # ceil_mode: an odd side (MNIST's 7x7 after one reduction) halves as the stride-2
        # convolution does, so the two branches keep one shape.
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))
