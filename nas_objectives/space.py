"""The search space, and the one place that turns an Optuna trial into plain values.

This is the only module that calls ``trial.suggest_*``. Everything downstream (model
building, training, metrics) receives the plain dataclasses :class:`Layout` and
:class:`OptimizerSettings`, so it can be tested without Optuna.

Parameter names are stable and indexed so dashboards and reports can read them:

* MLP: ``n_layers``, ``units_l0`` ... ``units_l{n-1}``, ``activation``, ``norm``, ``dropout``.
* CNN: ``n_blocks``, ``channels_l{i}``, ``kernel_l{i}``, ``activation``, ``norm``,
  ``pooling``, ``residual``, ``dropout``.
* Cell: ``width`` (stem channels C), ``cells_per_stage`` (N), and one categorical per edge,
  ``edge_{to}_{from}`` (``edge_1_0``, ``edge_2_0``, ``edge_2_1``, ...).
* Optimizer: ``optimizer``, then ``{optimizer}_lr``, ``{optimizer}_weight_decay``,
  ``{optimizer}_beta1``/``_beta2`` (adam, adamw), ``{optimizer}_momentum`` (sgd, rmsprop),
  ``sgd_nesterov``.
* Training: ``batch_size``, ``schedule``, ``label_smoothing``.

Per-layer parameters are only sampled for layers that exist (define-by-run). A range whose
low equals its high, or a choice with one option, is a fixed value: it is not suggested and
so does not appear among the trial's parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nas_objectives._cell_graph import CELL_OPS, NB201_OPS, cell_edges, edge_param, to_nb201

__all__ = [
    "ACTIVATIONS",
    "CELL_OPS",
    "FAMILIES",
    "NB201_OPS",
    "NORMS",
    "OPTIMIZERS",
    "OPTIMIZER_HYPERPARAMETERS",
    "POOLINGS",
    "SCHEDULES",
    "Choice",
    "FloatRange",
    "IntRange",
    "Layout",
    "ModelSpace",
    "OptimizerSettings",
    "OptimizerSpace",
    "SearchSpace",
    "SuggestTrial",
    "TrainingSpace",
    "suggest",
]

FAMILIES = ("mlp", "cnn", "cell")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "leaky_relu", "elu")
NORMS = ("none", "batch", "layer")
POOLINGS = ("max", "avg", "none")
#: Each optimizer and the hyperparameters it takes (``[optimizers.NAME]`` fields of a study
#: file, sampled as ``{NAME}_{field}``): the one statement of which takes which.
OPTIMIZER_HYPERPARAMETERS: Mapping[str, tuple[str, ...]] = {
    "adam": ("lr", "weight_decay", "beta1", "beta2"),
    "adamw": ("lr", "weight_decay", "beta1", "beta2"),
    "rmsprop": ("lr", "weight_decay", "momentum"),
    "sgd": ("lr", "weight_decay", "momentum", "nesterov"),
}
OPTIMIZERS = tuple(OPTIMIZER_HYPERPARAMETERS)
SCHEDULES = ("constant", "cosine", "onecycle")


class SuggestTrial(Protocol):
    """The part of :class:`optuna.trial.BaseTrial` that :func:`suggest` uses."""

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class IntRange:
    """Integers in ``[low, high]``, optionally on a log scale. ``low == high`` is fixed."""

    low: int
    high: int
    log: bool = False

    def sample(self, trial: SuggestTrial, name: str) -> int:
        if self.low == self.high:
            return self.low
        return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class FloatRange:
    """Floats in ``[low, high]``, optionally on a log scale. ``low == high`` is fixed."""

    low: float
    high: float
    log: bool = False

    def sample(self, trial: SuggestTrial, name: str) -> float:
        if self.low == self.high:
            return self.low
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of ``options``. A single option is fixed."""

    options: tuple[Any, ...]

    def sample(self, trial: SuggestTrial, name: str) -> Any:
        if len(self.options) == 1:
            return self.options[0]
        return trial.suggest_categorical(name, list(self.options))


@dataclass(frozen=True)
class ModelSpace:
    """Ranges of the architecture. ``width`` is units (MLP) or channels (CNN) per layer.

    A numeric field is a range or a :class:`Choice` of numbers (a grid, sampled as a
    categorical parameter). A cell space uses ``width`` (stem channels), ``nodes``, ``ops``
    (the choices of every edge) and ``cells_per_stage``; its depth, activation, norm and
    dropout are NAS-Bench-201's (fixed).
    """

    family: str = "mlp"
    depth: IntRange | Choice = IntRange(1, 3)
    width: IntRange | Choice = IntRange(8, 128, log=True)
    activation: Choice = Choice(("relu",))
    norm: Choice = Choice(("none",))
    dropout: FloatRange | Choice = FloatRange(0.0, 0.0)
    # CNN only.
    kernel_size: Choice = Choice((3,))
    pooling: Choice = Choice(("max",))
    residual: Choice = Choice((False,))
    # Cell only.
    nodes: int = 4
    ops: tuple[str, ...] = NB201_OPS
    cells_per_stage: IntRange | Choice = IntRange(1, 1)


@dataclass(frozen=True)
class OptimizerSpace:
    """Ranges (or numeric choices) of one optimizer's hyperparameters.

    Fields an optimizer lacks are ignored.
    """

    lr: FloatRange | Choice = FloatRange(1e-4, 1e-2, log=True)
    weight_decay: FloatRange | Choice = FloatRange(0.0, 0.0)
    beta1: FloatRange | Choice = FloatRange(0.9, 0.9)
    beta2: FloatRange | Choice = FloatRange(0.999, 0.999)
    momentum: FloatRange | Choice = FloatRange(0.9, 0.9)
    nesterov: Choice = Choice((False,))


@dataclass(frozen=True)
class TrainingSpace:
    """Ranges of the training loop's settings.

    ``min_steps`` is not searched: a floor on a trial's optimizer steps. On a small dataset
    a large batch leaves few steps per epoch (1,300 images at batch 512: 3), too few for
    any network to learn; each epoch is then lengthened to ``ceil(min_steps / epochs)``
    steps, drawing batches from fresh permutations, so pruning still sees every epoch.
    """

    batch_size: Choice = Choice((128,))
    schedule: Choice = Choice(("constant",))
    label_smoothing: FloatRange | Choice = FloatRange(0.0, 0.0)
    min_steps: int = 0


@dataclass(frozen=True)
class SearchSpace:
    """The whole search space: architecture, optimizers (in order) and training settings."""

    model: ModelSpace = ModelSpace()
    optimizers: Mapping[str, OptimizerSpace] = field(
        default_factory=lambda: {"adamw": OptimizerSpace()}
    )
    training: TrainingSpace = TrainingSpace()


@dataclass(frozen=True)
class Layout:
    """A concrete architecture: everything :func:`nas_objectives.build_model` needs.

    ``widths`` holds hidden units (MLP) or channels (CNN) per layer; ``kernel_sizes`` is
    empty for an MLP. A cell layout holds ``widths == (C,)``, ``nodes``, ``cell`` (its edges'
    ops in NAS-Bench-201's order) and ``cells_per_stage``.
    """

    family: str
    input_shape: tuple[int, int, int]
    num_classes: int
    widths: tuple[int, ...]
    activation: str = "relu"
    norm: str = "none"
    dropout: float = 0.0
    kernel_sizes: tuple[int, ...] = ()
    pooling: str = "none"
    residual: bool = False
    nodes: int = 0
    cell: tuple[str, ...] = ()
    cells_per_stage: int = 0

    def summary(self) -> str:
        """One line, e.g. ``64-256-128-10 relu bn drop0.1``; for a cell, its NAS-Bench-201
        string then the width and cells per stage: ``|nor_conv_3x3~0|+|...| C16 N5``."""
        if self.family == "cell":
            return f"{to_nb201(self.cell)} C{self.widths[0]} N{self.cells_per_stage}"
        norm = {"none": "", "batch": "bn", "layer": "ln"}[self.norm]
        drop = f"drop{self.dropout:.2g}" if self.dropout > 0 else ""
        if self.family == "mlp":
            n_in = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
            shape = "-".join(str(w) for w in (n_in, *self.widths, self.num_classes))
            parts = [shape, self.activation, norm, drop]
        else:
            c, h, w = self.input_shape
            convs = "-".join(
                f"c{ch}k{k}" for ch, k in zip(self.widths, self.kernel_sizes, strict=True)
            )
            pool = "" if self.pooling == "none" else f"{self.pooling}pool"
            shape = f"{c}x{h}x{w}-{convs}-gap-{self.num_classes}"
            parts = [shape, self.activation, norm, pool, "res" if self.residual else "", drop]
        return " ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        values = dict(data)
        for key in ("input_shape", "widths", "kernel_sizes", "cell"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


@dataclass(frozen=True)
class OptimizerSettings:
    """Concrete optimizer and training-loop settings for one trial."""

    name: str
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    nesterov: bool = False
    batch_size: int = 128
    schedule: str = "constant"
    label_smoothing: float = 0.0

    def summary(self) -> str:
        """One line, e.g. ``adamw lr=3e-3 wd=1e-4 bs=256 cosine``."""
        parts = [self.name, f"lr={_short(self.lr)}"]
        if self.weight_decay > 0:
            parts.append(f"wd={_short(self.weight_decay)}")
        if "momentum" in OPTIMIZER_HYPERPARAMETERS[self.name] and self.momentum > 0:
            parts.append(f"mom={self.momentum:.3g}" + (" nesterov" if self.nesterov else ""))
        parts += [f"bs={self.batch_size}", self.schedule]
        if self.label_smoothing > 0:
            parts.append(f"ls={self.label_smoothing:.2g}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizerSettings:
        values = dict(data)
        values["betas"] = tuple(values.get("betas", (0.9, 0.999)))
        return cls(**values)


def _short(x: float) -> str:
    """``0.003 -> '3e-3'``, ``0.00015 -> '1.5e-4'``."""
    mantissa, exponent = f"{x:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def suggest(
    trial: SuggestTrial,
    space: SearchSpace,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> tuple[Layout, OptimizerSettings]:
    """Sample one architecture and its optimizer settings from ``space``.

    Example:
        >>> import optuna
        >>> trial = optuna.trial.FixedTrial({"n_layers": 1, "units_l0": 32, "adamw_lr": 1e-3})
        >>> layout, opt = suggest(trial, SearchSpace(), (1, 8, 8), 10)
        >>> layout.summary(), opt.summary()
        ('64-32-10 relu', 'adamw lr=1e-3 bs=128 constant')
    """
    m = space.model
    if m.family == "cell":
        layout = _suggest_cell(trial, m, input_shape, num_classes)
        return layout, _suggest_settings(trial, space)
    if m.family == "mlp":
        depth = m.depth.sample(trial, "n_layers")
        widths = tuple(m.width.sample(trial, f"units_l{i}") for i in range(depth))
        kernels: tuple[int, ...] = ()
    else:
        depth = m.depth.sample(trial, "n_blocks")
        widths_l, kernels_l = [], []
        for i in range(depth):
            widths_l.append(m.width.sample(trial, f"channels_l{i}"))
            kernels_l.append(int(m.kernel_size.sample(trial, f"kernel_l{i}")))
        widths, kernels = tuple(widths_l), tuple(kernels_l)
    activation = m.activation.sample(trial, "activation")
    norm = m.norm.sample(trial, "norm")
    pooling, residual = "none", False
    if m.family == "cnn":
        pooling = m.pooling.sample(trial, "pooling")
        residual = bool(m.residual.sample(trial, "residual"))
    dropout = m.dropout.sample(trial, "dropout")
    layout = Layout(
        family=m.family,
        input_shape=tuple(input_shape),  # type: ignore[arg-type]
        num_classes=num_classes,
        widths=widths,
        activation=activation,
        norm=norm,
        dropout=dropout,
        kernel_sizes=kernels,
        pooling=pooling,
        residual=residual,
    )
    return layout, _suggest_settings(trial, space)


def _suggest_cell(
    trial: SuggestTrial, m: ModelSpace, input_shape: tuple[int, int, int], num_classes: int
) -> Layout:
    width = int(m.width.sample(trial, "width"))
    n = int(m.cells_per_stage.sample(trial, "cells_per_stage"))
    ops = Choice(tuple(m.ops))
    cell = tuple(str(ops.sample(trial, edge_param(i, j))) for i, j in cell_edges(m.nodes))
    return Layout(
        family="cell",
        input_shape=tuple(input_shape),  # type: ignore[arg-type]
        num_classes=num_classes,
        widths=(width,),
        norm="batch",
        nodes=m.nodes,
        cell=cell,
        cells_per_stage=n,
    )


def _suggest_settings(trial: SuggestTrial, space: SearchSpace) -> OptimizerSettings:
    names = list(space.optimizers)
    name = Choice(tuple(names)).sample(trial, "optimizer")
    o = space.optimizers[name]
    lr = o.lr.sample(trial, f"{name}_lr")
    weight_decay = o.weight_decay.sample(trial, f"{name}_weight_decay")
    takes = OPTIMIZER_HYPERPARAMETERS[name]
    betas = (0.9, 0.999)
    momentum, nesterov = 0.0, False
    if "beta1" in takes:
        betas = (o.beta1.sample(trial, f"{name}_beta1"), o.beta2.sample(trial, f"{name}_beta2"))
    if "momentum" in takes:
        momentum = o.momentum.sample(trial, f"{name}_momentum")
    if "nesterov" in takes and momentum > 0:
        nesterov = bool(o.nesterov.sample(trial, f"{name}_nesterov"))
    t = space.training
    settings = OptimizerSettings(
        name=name,
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        momentum=momentum,
        nesterov=nesterov,
        batch_size=int(t.batch_size.sample(trial, "batch_size")),
        schedule=t.schedule.sample(trial, "schedule"),
        label_smoothing=t.label_smoothing.sample(trial, "label_smoothing"),
    )
    return settings
