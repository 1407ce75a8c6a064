"""Whether two study files search the same space: what a worker checks before it joins.

A study's trials only make sense together if they were all sampled from one space: the
same parameter names with the same distributions. So a worker whose study file differs
from the one the study stored is refused before it runs a trial, when the difference is
in what is searched:

* ``[model]``: the family and every range or choice of it (a cell's nodes and ops too);
* ``[optimizers]``: which optimizers, in order (the choices of the ``optimizer``
  parameter), and each one's ranges;
* ``[training]``: ``batch_size``, ``schedule`` and ``label_smoothing``.

A fixed value (``beta1 = 0.9``) counts: it is a range of one point, and the stored file,
which ``export`` rebuilds trials from, must describe every trial. What is not searched
may change between workers: the budget (``n_trials``, ``timeout``), ``epochs``,
``training.min_steps`` (a floor on each trial's steps, as ``epochs`` is), the sampler,
the pruner, the heartbeat, the seed, ``constraints`` and the dataset. The objectives are
checked apart, by name and direction, when a study is joined.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from nas_objectives import (
    OPTIMIZER_HYPERPARAMETERS,
    Choice,
    FloatRange,
    IntRange,
    ModelSpace,
    OptimizerSpace,
    SearchSpace,
    TrainingSpace,
)
from studies.errors import StudySpecError
from studies.spec._parser import _Parser

_T = TypeVar("_T")

#: Fields of ``[training]`` that are not sampled: changing them changes no parameter.
_TRAINING_NOT_SEARCHED = frozenset({"min_steps"})


@dataclass(frozen=True)
class SpaceChange:
    """The first field of the search space where two study files differ, and both values
    as a study file writes them."""

    field: str
    stored: str
    new: str


def space_change(stored: Mapping[str, Any], space: SearchSpace) -> SpaceChange | None:
    """The first searched field where ``stored`` (a study file as a study stores it: parsed
    TOML) differs from ``space``; None if they search the same space.

    A section of ``stored`` that this version cannot read (a file stored by an older
    nas-study) is not compared: the sections that can be, are.

    Example:
        >>> from studies.spec import parse_spec
        >>> old = parse_spec('name = "s"\\ndataset = "digits"\\n[model]\\nnorm = ["none"]')
        >>> new = parse_spec('name = "s"\\ndataset = "digits"\\n[model]\\nnorm = ["batch"]')
        >>> space_change(old.source, new.objective.space)
        SpaceChange(field='model.norm', stored='["none"]', new='["batch"]')
    """
    reader = _Parser("<stored study file>")
    model = _readable(lambda: reader.model(stored))
    if model is not None:
        change = _model_change(model, space.model)
        if change is not None:
            return change
    optimizers = _readable(lambda: reader.optimizers(stored))
    if optimizers is not None:
        change = _optimizers_change(optimizers, space.optimizers)
        if change is not None:
            return change
    training = _readable(lambda: reader.training(stored))
    if training is not None:
        return _training_change(training, space.training)
    return None


def _readable(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except (StudySpecError, AttributeError, TypeError):
        # Not a study file this version reads (another version stored it): not comparable.
        return None


def _model_change(old: ModelSpace, new: ModelSpace) -> SpaceChange | None:
    # Fields another family does not use hold their defaults on both sides.
    for f in dataclasses.fields(ModelSpace):
        change = _compare(f"model.{f.name}", getattr(old, f.name), getattr(new, f.name))
        if change is not None:
            return change
    return None


def _optimizers_change(
    old: Mapping[str, OptimizerSpace], new: Mapping[str, OptimizerSpace]
) -> SpaceChange | None:
    # The order counts: it is the order of the `optimizer` parameter's choices.
    change = _compare("optimizers", list(old), list(new))
    if change is not None:
        return change
    for name, space in new.items():
        for hp in OPTIMIZER_HYPERPARAMETERS[name]:
            change = _compare(f"optimizers.{name}.{hp}", getattr(old[name], hp), getattr(space, hp))
            if change is not None:
                return change
    return None


def _training_change(old: TrainingSpace, new: TrainingSpace) -> SpaceChange | None:
    for f in dataclasses.fields(TrainingSpace):
        if f.name in _TRAINING_NOT_SEARCHED:
            continue
        change = _compare(f"training.{f.name}", getattr(old, f.name), getattr(new, f.name))
        if change is not None:
            return change
    return None


def _compare(field: str, old: Any, new: Any) -> SpaceChange | None:
    if old == new:
        return None
    return SpaceChange(field, _show(old), _show(new))


def _show(value: Any) -> str:
    """``value`` as a study file writes it: ``["relu", "gelu"]``, ``{low = 4, high = 256,
    log = true}``, ``0.9``."""
    if isinstance(value, Choice):
        return _show(list(value.options))
    if isinstance(value, (IntRange, FloatRange)):
        if value.low == value.high:
            return _show(value.low)
        log = _show(value.log)
        return f"{{low = {_show(value.low)}, high = {_show(value.high)}, log = {log}}}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
