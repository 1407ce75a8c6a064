"""Every configuration of a grid-shaped search space, as Optuna parameter dicts."""

from __future__ import annotations

import json
from typing import Any

from nas_objectives import SearchSpace, suggest

#: A grid has at most this many integers in one ``[low, high]`` range.
MAX_INT_RANGE = 64


class NotAGridError(ValueError):
    """The space has a continuous range, so it cannot be tabulated."""


class _Branch(Exception):  # control flow, not an error
    def __init__(self, options: list[Any]) -> None:
        self.options = options


class _Walker:
    """A trial that replays ``path`` and stops at the first decision beyond it.

    Running :func:`nas_objectives.suggest` with it visits the space exactly as a real trial
    does (define-by-run: per-layer parameters only for layers that exist), so the grid
    holds the names and values Optuna would store.
    """

    def __init__(self, path: list[Any]) -> None:
        self.path = path
        self.params: dict[str, Any] = {}

    def _decide(self, name: str, options: list[Any]) -> Any:
        i = len(self.params)
        if i == len(self.path):
            raise _Branch(options)
        self.params[name] = self.path[i]
        return self.path[i]

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if high - low >= MAX_INT_RANGE * step:
            raise NotAGridError(f"{name}: integer range [{low}, {high}] is too wide for a grid")
        return int(self._decide(name, list(range(low, high + 1, step))))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        raise NotAGridError(f"{name}: continuous range [{low}, {high}]; use choices")

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._decide(name, list(choices))


def enumerate_grid(
    space: SearchSpace, input_shape: tuple[int, int, int], num_classes: int
) -> list[dict[str, Any]]:
    """All parameter dicts :func:`~nas_objectives.suggest` can produce from ``space``.

    Raises:
        NotAGridError: the space has a continuous or very wide range.

    Example:
        >>> from nas_objectives import Choice, ModelSpace, OptimizerSpace
        >>> s = SearchSpace(
        ...     model=ModelSpace(depth=Choice((1, 2)), width=Choice((8, 16))),
        ...     optimizers={"adam": OptimizerSpace(lr=Choice((1e-3, 1e-2)))},
        ... )
        >>> len(enumerate_grid(s, (1, 8, 8), 10))  # (2 + 4 layouts) x 2 rates
        12
    """
    out: list[dict[str, Any]] = []
    stack: list[list[Any]] = [[]]
    while stack:
        path = stack.pop()
        walker = _Walker(path)
        try:
            suggest(walker, space, input_shape, num_classes)
        except _Branch as branch:
            stack.extend([*path, opt] for opt in reversed(branch.options))
            continue
        out.append(walker.params)
    return out


def config_key(params: dict[str, Any]) -> str:
    """A canonical text key of one configuration (sorted JSON of its parameters)."""
    return json.dumps(params, sort_keys=True)
