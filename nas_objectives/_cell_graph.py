"""A cell's graph as plain values: its edges, their parameter names, and NAS-Bench-201 strings.

Node 0 is the cell's input and the last node its output; node ``i`` sums one operation
applied to every earlier node ``j``, on edge ``(i, j)``. Edges are ordered as NAS-Bench-201
orders them (by ``i``, then ``j``): ``(1, 0), (2, 0), (2, 1), (3, 0), ...``, and a cell is
the tuple of its edges' operation names in that order.

The string form is NAS-Bench-201's, one ``|op~j|`` per edge into a node and ``+`` between
nodes: ``|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|...|``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: NAS-Bench-201's five operations, in its order: the default ops of a cell's edges.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Every operation an edge may take: NAS-Bench-201's, then extra ones a study may offer
#: (built by :mod:`nas_objectives._cell_ops`).
CELL_OPS = (
    *NB201_OPS,
    "max_pool_3x3",
    "nor_conv_5x5",
    "nor_conv_7x7",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def cell_edges(nodes: int) -> tuple[tuple[int, int], ...]:
    """The ``(to, from)`` edges of a cell of ``nodes`` nodes, in NAS-Bench-201's order.

    Example:
        >>> cell_edges(3)
        ((1, 0), (2, 0), (2, 1))
    """
    return tuple((i, j) for i in range(1, nodes) for j in range(i))


def edge_param(to: int, src: int) -> str:
    """The trial parameter of an edge: ``edge_{to}_{from}``."""
    return f"edge_{to}_{src}"


def nodes_for_edges(n_edges: int) -> int:
    """The node count whose cell has ``n_edges`` edges (``n(n-1)/2``).

    Raises:
        ValueError: no node count gives that many edges.
    """
    nodes = 1
    while nodes * (nodes - 1) // 2 < n_edges:
        nodes += 1
    if nodes * (nodes - 1) // 2 != n_edges:
        raise ValueError(f"{n_edges} edges make no complete cell")
    return nodes


def to_nb201(cell: Sequence[str]) -> str:
    """The NAS-Bench-201 string of ``cell`` (its ops in :func:`cell_edges` order).

    Example:
        >>> to_nb201(("nor_conv_3x3", "skip_connect", "none"))
        '|nor_conv_3x3~0|+|skip_connect~0|none~1|'
    """
    nodes = nodes_for_edges(len(cell))
    ops = iter(cell)
    parts = []
    for i in range(1, nodes):
        parts.append("|" + "|".join(f"{next(ops)}~{j}" for j in range(i)) + "|")
    return "+".join(parts)


def from_nb201(text: str) -> tuple[str, ...]:
    """The cell (ops in :func:`cell_edges` order) that a NAS-Bench-201 string names.

    Raises:
        ValueError: the string is not a complete cell in NAS-Bench-201's form.
    """
    ops: list[str] = []
    for i, node in enumerate(text.split("+"), start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise ValueError(f"not a NAS-Bench-201 cell string: {text!r}")
        inputs = node[1:-1].split("|")
        if len(inputs) != i:
            raise ValueError(f"node {i} of {text!r} needs {i} inputs, has {len(inputs)}")
        for j, item in enumerate(inputs):
            op, sep, src = item.rpartition("~")
            if not sep or not op or src != str(j):
                raise ValueError(f"edge {item!r} of {text!r} is not 'op~{j}'")
            ops.append(op)
    return tuple(ops)
