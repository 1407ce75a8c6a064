"""Pruning for multi-objective studies: accuracy evolves per epoch, costs are fixed.

Optuna 5 refuses ``trial.report``/``should_prune`` in multi-objective studies, so the
validation accuracy of every epoch (epochs count from 1) is shared through the storage
another way, and the pruners here decide from it. A trial's vector at epoch ``e`` takes,
for ``accuracy`` and ``f1`` (both follow the validation-accuracy curve), its intermediate
value at ``e`` or, failing that, element ``e - 1`` of its ``val_accuracy`` user attribute
(the list the objective writes); and for the cost objectives (``params``, ``flops``,
``latency_ms``), which are known before training, the user attribute of that name.

:class:`BaseMultiObjectivePruner` reads those vectors from the storage; each rule is a
subclass with one ``_decide`` (``ParetoRankPruner``, ``DominancePruner``), and the maths
lives in :mod:`studies.pareto`.
"""

from __future__ import annotations

import abc
import itertools
import logging
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_objectives.record import COST_OBJECTIVES, CURVE_OBJECTIVES, VAL_ACCURACY
from storage.optuna_compat import fresh_trials, study_id, study_storage
from studies.pareto import signs

_logger = logging.getLogger(__name__)

#: User attribute holding the validation-accuracy curve (a list, epoch 1 first), read
#: where a trial has no intermediate value at the epoch.
CURVE_ATTR = VAL_ACCURACY
#: Trial states whose stored curves a decision compares against.
COMPARED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

_PLAIN_NUMBERS = frozenset({int, float})


def check_int(name: str, value: Any, least: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def trial_vector(
    trial: FrozenTrial, epoch: int, objectives: Sequence[str]
) -> tuple[float, ...] | None:
    """A trial's objective vector at ``epoch``, or None if it lacks a value it needs.

    ``accuracy`` and ``f1`` come from the intermediate value at ``epoch``, else from the
    :data:`CURVE_ATTR` user attribute; costs from the
    user attributes of the same name. Values that are not finite real numbers (strings,
    booleans, None, NaN) count as missing.
    """
    attrs = trial.user_attrs
    curve = _curve_at(trial.intermediate_values, attrs, epoch)
    if curve is None:
        return None
    out = []
    for name in objectives:
        value = curve if name in CURVE_OBJECTIVES else attrs.get(name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        value = float(value)
        if not math.isfinite(value):
            return None
        out.append(value)
    return tuple(out)


class BaseMultiObjectivePruner(abc.ABC):
    """Decides, at an epoch, whether a trial of a multi-objective study should stop.

    Subclasses implement :meth:`_decide`; callers use :meth:`decide`, which never raises.
    The objectives and directions come from the constructor, :meth:`bind` or, for a
    pruner left unbound, from the study's metric names and directions at the first
    decision.

    Args:
        min_epochs: No decision before this epoch.
        min_trials: Warm-up: keep training while fewer other trials than this have a
            usable vector at the epoch.
        objectives: Objective names in the study's order (see :data:`CURVE_OBJECTIVES`
            and :data:`COST_OBJECTIVES`).
        directions: ``"maximize"`` or ``"minimize"`` per objective.
    """

    def __init__(
        self,
        *,
        min_epochs: int = 1,
        min_trials: int = 4,
        objectives: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
    ) -> None:
        check_int("min_epochs", min_epochs, 1)
        check_int("min_trials", min_trials, 0)
        self.min_epochs = min_epochs
        self.min_trials = min_trials
        self._objectives: tuple[str, ...] | None = None
        self._directions: tuple[str, ...] = ()
        self._warned: set[str] = set()  # kinds of warning already logged by this pruner
        # (storage, study, epoch) -> (numbers of finished trials seen, their vectors)
        self._finished_rows: dict[tuple[int, int, int], tuple[set[int], list[np.ndarray]]] = {}
        if objectives is not None or directions is not None:
            if objectives is None or directions is None:
                raise ValueError("give both objectives and directions, or neither")
            self.bind(objectives, directions)

    def bind(
        self, objectives: Sequence[str], directions: Sequence[str]
    ) -> BaseMultiObjectivePruner:
        """Set the study's objective names and directions, in order; returns ``self``.

        Raises:
            ValueError: an unknown objective or direction, or lengths that differ.
        """
        known = CURVE_OBJECTIVES + COST_OBJECTIVES
        unknown = [o for o in objectives if o not in known]
        if unknown:
            raise ValueError(f"objective {unknown[0]!r} has no per-epoch value (known: {known})")
        if len(objectives) != len(directions) or not objectives:
            raise ValueError("need one direction per objective, and at least one objective")
        signs(directions)
        self._objectives = tuple(objectives)
        self._directions = tuple(directions)
        return self

    @property
    def objectives(self) -> tuple[str, ...] | None:
        """The bound objective names, None until bound."""
        return self._objectives

    @property
    def directions(self) -> tuple[str, ...]:
        """The bound directions, empty until bound."""
        return self._directions

    def decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own_values: Sequence[float]
    ) -> str | None:
        """A one-line reason to prune trial ``trial_number`` at ``epoch``, or None.

        ``own_values`` is that trial's vector at the epoch, in objective order. Any error
        means "keep training" (None); the first one is logged.
        """
        try:
            if self._objectives is None:
                self.bind(study.metric_names or [], [d.name.lower() for d in study.directions])
            own = tuple(float(v) for v in own_values)
            if len(own) != len(self._directions) or not all(map(math.isfinite, own)):
                raise ValueError(
                    f"own_values must be {len(self._directions)} finite values "
                    f"for {self._objectives}, got {list(own_values)!r}"
                )
            return self._decide(study, trial_number, epoch, own)
        except Exception:
            self._warn_once(
                "failure",
                "could not decide for trial %s at epoch %s; the trial keeps training "
                "(further failures of this pruner are not logged)",
                trial_number,
                epoch,
                exc_info=True,
            )
            return None

    def decides_at(self, epoch: int) -> bool:
        """Whether this pruner may prune at ``epoch``; the objective shares a trial's curve
        through the storage only at such epochs (and at its end), since no decision reads
        it at the others."""
        return epoch >= self.min_epochs

    @abc.abstractmethod
    def _decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own: tuple[float, ...]
    ) -> str | None:
        """The rule itself, given a bound pruner and a validated ``own`` vector."""

    def _others_at(self, study: optuna.Study, trial_number: int, epoch: int) -> np.ndarray:
        """The vectors at ``epoch`` of every other trial that has one, as an (n, m) array.

        A finished trial never changes, so its vector at an epoch is worked out once per
        pruner and kept; only running trials and newly finished ones are read each time.
        """
        # Read afresh: the other trials' curves at this epoch, as they are now.
        trials = fresh_trials(study, COMPARED_STATES)
        key = (id(study_storage(study)), study_id(study), epoch)
        seen, blocks = self._finished_rows.setdefault(key, (set(), []))
        fresh = [t for t in trials if t.state != TrialState.RUNNING and t.number not in seen]
        if fresh:
            blocks.append(self._rows(fresh, epoch))
            seen.update(t.number for t in fresh)
        running = [t for t in trials if t.state == TrialState.RUNNING and t.number != trial_number]
        return np.vstack([*blocks, self._rows(running, epoch)])

    def _rows(self, trials: Sequence[FrozenTrial], epoch: int) -> np.ndarray:
        """The vectors at ``epoch`` of ``trials`` that have one, as an (n, m) array."""
        objectives = self._objectives
        assert objectives is not None
        costs = [name for name in objectives if name not in CURVE_OBJECTIVES]
        get_costs = operator.itemgetter(*costs) if costs else _no_costs
        kept: list[FrozenTrial] = []
        curves: list[Any] = []
        cost_rows: list[Any] = []
        # The loop is the bulk of a decision's time, so it does the least per trial; types
        # and finiteness are checked for all trials at once below.
        for t in trials:
            curve = t.intermediate_values.get(epoch)
            if curve is None:
                curve = _curve_at(None, t.user_attrs, epoch)
                if curve is None:
                    continue
            try:
                cost_rows.append(get_costs(t.user_attrs))
            except KeyError:
                continue  # a cost not recorded (yet): not comparable
            curves.append(curve)
            kept.append(t)
        flat = cost_rows if len(costs) == 1 else itertools.chain.from_iterable(cost_rows)
        if not _PLAIN_NUMBERS.issuperset(set(map(type, curves)).union(map(type, flat))):
            # Rare (numpy scalars, or garbage): check trial by trial.
            vectors = [trial_vector(t, epoch, objectives) for t in kept]
            if None in vectors:
                self._log_ignored(kept[vectors.index(None)])
            rows = [v for v in vectors if v is not None]
            return np.asarray(rows, dtype=float).reshape(len(rows), len(objectives))
        n = len(kept)
        cost_arr = np.asarray(cost_rows, dtype=float).reshape(n, len(costs))
        curve_arr = np.asarray(curves, dtype=float)
        out = np.empty((n, len(objectives)))
        for j, name in enumerate(objectives):
            out[:, j] = curve_arr if name in CURVE_OBJECTIVES else cost_arr[:, costs.index(name)]
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            self._log_ignored(kept[int(np.argmin(finite))])
            out = out[finite]
        return out

    def _log_ignored(self, trial: FrozenTrial) -> None:
        self._warn_once(
            "bad trial",
            "ignores trial %s: a value it needs is not a finite number "
            "(further such trials are not logged)",
            trial.number,
        )

    def _warn_once(self, kind: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log ``message`` (after the pruner's class name) the first time ``kind`` happens."""
        if kind not in self._warned:
            self._warned.add(kind)
            _logger.warning("%s " + message, type(self).__name__, *args, exc_info=exc_info)


def _curve_at(
    intermediate_values: Mapping[int, float] | None, attrs: Mapping[str, Any], epoch: int
) -> Any:
    """The curve's value at ``epoch`` as stored (unchecked), or None where there is none."""
    if intermediate_values is not None and epoch in intermediate_values:
        return intermediate_values[epoch]
    curve = attrs.get(CURVE_ATTR)
    if isinstance(curve, (list, tuple)) and 1 <= epoch <= len(curve):
        return curve[epoch - 1]
    return None


def _no_costs(attrs: Mapping[str, Any]) -> tuple[()]:
    return ()
