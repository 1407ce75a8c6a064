"""The ``cell`` family: NAS-Bench-201's macro skeleton around one searched cell.

Dong and Yang, "NAS-Bench-201", ICLR 2020 (arXiv:2001.00326); the network is
``TinyNetwork`` of D-X-Y/AutoDL-Projects::

    stem: 3x3 conv (C) + BN
    N cells at C  -> ResNet block (stride 2) -> N cells at 2C -> ResNet block -> N cells at 4C
    BN + ReLU -> global average pool -> linear

Every cell of the network repeats the same edge operations (weights are not shared). A
cell whose output no path reaches (all ``none``) outputs zeros: the network then still
trains and scores, on what the reduction blocks and the head can do with it.

:func:`edge_costs` splits the network's parameter (or FLOP) count into a fixed part and
one cost per op per edge, summed over every cell of the network. The count of a concrete
cell is the fixed part plus its ops' costs, exactly: this is what the one-shot search's
differentiable cost is built from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas_objectives._cell_graph import cell_edges
from nas_objectives._cell_ops import ResNetBlock, make_op
from nas_objectives.metrics import count_flops, count_params
from nas_objectives.space import Layout


class Cell(nn.Module):
    """One cell: node ``i`` is the sum over ``j < i`` of ``op(i, j)(node j)``."""

    def __init__(self, ops: Sequence[str], channels: int, nodes: int) -> None:
        super().__init__()
        self.edges = cell_edges(nodes)
        self.ops = nn.ModuleList(make_op(op, channels) for op in ops)
        self.nodes = nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        k = 0
        for i in range(1, self.nodes):
            total = self.ops[k](states[0])
            for j in range(1, i):
                total = total + self.ops[k + j](states[j])
            k += i
            states.append(total)
        return states[-1]


#: ``make_cell(channels)``: a cell for one stage of the skeleton.
CellFactory = Callable[[int], nn.Module]


class CellSkeleton(nn.Module):
    """The NAS-Bench-201 network around cells made by ``make_cell``.

    ``forward(x, *extra)`` passes ``extra`` (a supernet's mixing weights) to every cell.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        cells_per_stage: int,
        num_classes: int,
        make_cell: CellFactory,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        layers: list[nn.Module] = []
        c = width
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBlock(c, 2 * c))
                c *= 2
            layers += [make_cell(c) for _ in range(cells_per_stage)]
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)  # (B, C, H, W)
        for layer in self.layers:
            h = layer(h) if isinstance(layer, ResNetBlock) else layer(h, *extra)
        h = self.lastact(h).mean((2, 3))  # global average pool: (B, 4C)
        return self.head(h)


class CellNetwork(CellSkeleton):
    """A concrete cell network for a ``cell`` :class:`~nas_objectives.space.Layout`."""

    def __init__(self, layout: Layout) -> None:
        if layout.family != "cell":
            raise ValueError(f"a CellNetwork needs a 'cell' layout, got {layout.family!r}")
        nodes, ops = layout.nodes, layout.cell
        if len(ops) != len(cell_edges(nodes)):
            raise ValueError(f"a {nodes}-node cell has {len(cell_edges(nodes))} edges, got {ops}")
        super().__init__(
            layout.input_shape[0],
            layout.widths[0],
            layout.cells_per_stage,
            layout.num_classes,
            lambda c: Cell(ops, c, nodes),
        )


# --------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class EdgeCosts:
    """A cell network's cost as ``fixed + sum over edges of per_op[edge][op]``.

    ``per_op[e][k]`` is the cost of op ``ops[k]`` on edge ``e``, summed over all cells of
    the network (so it is the same for every edge).
    """

    kind: str
    ops: tuple[str, ...]
    fixed: float
    per_op: tuple[tuple[float, ...], ...]

    def of(self, cell: Sequence[str]) -> float:
        """The exact cost of the network with ``cell``."""
        return self.fixed + sum(
            row[self.ops.index(op)] for row, op in zip(self.per_op, cell, strict=True)
        )


def stage_shapes(layout: Layout) -> list[tuple[int, int, int]]:
    """``(channels, height, width)`` of each stage's cells."""
    _, h, w = layout.input_shape
    c = layout.widths[0]
    shapes = [(c, h, w)]
    for _ in range(2):
        c, h, w = 2 * c, (h - 1) // 2 + 1, (w - 1) // 2 + 1  # a stride-2, padding-1 3x3 conv
        shapes.append((c, h, w))
    return shapes


def _op_flops(op: nn.Module, shape: tuple[int, int, int]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        op.eval()(torch.zeros((1, *shape)))
    return int(counter.get_total_flops())


def edge_costs(layout: Layout, ops: Sequence[str], kind: str = "params") -> EdgeCosts:
    """The fixed and per-op costs (``"params"`` or ``"flops"``) of ``layout``'s network,
    for a cell whose edges choose among ``ops``. ``layout.cell`` is ignored.

    Counted as the trial counts them (:func:`~nas_objectives.metrics.count_params`,
    :func:`~nas_objectives.metrics.count_flops`), so ``costs.of(cell)`` equals the count of
    the network built with ``cell``.
    """
    if kind not in ("params", "flops"):
        raise ValueError(f"cost kind must be 'params' or 'flops', got {kind!r}")
    n_edges = len(cell_edges(layout.nodes))
    empty = CellNetwork(Layout(**{**layout.to_dict(), "cell": ("none",) * n_edges}))
    if kind == "params":
        fixed = float(count_params(empty))
    else:
        fixed = float(count_flops(empty, layout.input_shape))
    row = []
    for name in ops:
        total = 0
        for c, h, w in stage_shapes(layout):
            op = make_op(name, c)
            one = count_params(op) if kind == "params" else _op_flops(op, (c, h, w))
            total += layout.cells_per_stage * one
        row.append(float(total))
    return EdgeCosts(kind, tuple(ops), fixed, tuple(tuple(row) for _ in range(n_edges)))
