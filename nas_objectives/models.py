"""Build a PyTorch model from a :class:`~nas_objectives.space.Layout`, and nothing else."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas_objectives.cell import CellNetwork
from nas_objectives.space import Layout

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def build_model(layout: Layout) -> nn.Module:
    """Return a freshly initialised model for ``layout`` (on the CPU).

    Example:
        >>> from nas_objectives.space import Layout
        >>> m = build_model(Layout("mlp", (1, 8, 8), 10, widths=(32,)))
        >>> sum(p.numel() for p in m.parameters())  # 64*32+32 + 32*10+10
        2410
    """
    if layout.family == "mlp":
        return MLP(layout)
    if layout.family == "cnn":
        return CNN(layout)
    if layout.family == "cell":
        return CellNetwork(layout)
    raise ValueError(f"unknown model family {layout.family!r}")


class MLP(nn.Module):
    """Flatten, then ``[Linear, Norm, Activation, Dropout]`` per hidden layer, then a head."""

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        n_in = math.prod(layout.input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in layout.widths:
            # A bias before BatchNorm is redundant: BN subtracts it right away.
            layers.append(nn.Linear(n_in, width, bias=layout.norm != "batch"))
            if layout.norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            elif layout.norm == "layer":
                layers.append(nn.LayerNorm(width))
            layers.append(_ACTIVATIONS[layout.activation]())
            if layout.dropout > 0:
                layers.append(nn.Dropout(layout.dropout))
            n_in = width
        layers.append(nn.Linear(n_in, layout.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvBlock(nn.Module):
    """Conv, Norm, Activation; plus a (projected) skip connection when ``residual``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, norm: str, activation: str, residual: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=norm != "batch")
        self.norm: nn.Module
        if norm == "batch":
            self.norm = nn.BatchNorm2d(c_out)
        elif norm == "layer":
            self.norm = nn.GroupNorm(1, c_out)  # LayerNorm over (C, H, W)
        else:
            self.norm = nn.Identity()
        self.act = _ACTIVATIONS[activation]()
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.conv(x)))
        return y if self.skip is None else y + self.skip(x)


class CNN(nn.Module):
    """Conv blocks, each followed by 2x2 pooling while the feature map is at least 2x2,
    then global average pooling, dropout and a linear head."""

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        c_in, h, w = layout.input_shape
        layers: list[nn.Module] = []
        for width, kernel in zip(layout.widths, layout.kernel_sizes, strict=True):
            layers.append(
                ConvBlock(c_in, width, kernel, layout.norm, layout.activation, layout.residual)
            )
            if layout.pooling != "none" and min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2) if layout.pooling == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if layout.dropout > 0:
            layers.append(nn.Dropout(layout.dropout))
        layers.append(nn.Linear(c_in, layout.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
