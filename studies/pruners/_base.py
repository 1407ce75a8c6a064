"""Pruning for multi-objective studies: accuracy evolves per epoch, costs are fixed.

Optuna 5 refuses ``trial.report``/``should_prune`` in multi-objective studies, so the
validation accuracy of every epoch (epochs count from 1) is shared through the storage
another way, and the pruners here decide from it. A trial's vector at epoch ``e`` takes,
for ``accuracy`` and ``f1`` (both follow the validation-accuracy curve), its intermediate
value at ``e`` or, failing that, element ``e - 1`` of its ``val_accuracy`` user attribute
(the list the objective writes); and for the cost objectives (``params``, ``flops``,
``latency_ms``), which are known before training, the user attribute of that name.

Two rules, both comparing a trial only with other trials **at the same epoch**:

* :class:`ParetoRankPruner`, multi-objective ASHA (Schmucker et al., 2021): at rung epochs
  ``min_epochs * reduction_factor**k``, keep a trial only if it is among the best
  ``1/reduction_factor`` by non-dominated sorting, ties broken by crowding distance.
* :class:`DominancePruner`: at every epoch, prune a trial that ``k`` others dominate.

The core (:func:`dominates`, :func:`pareto_ranks`, :func:`crowding_distances`,
:func:`keep_by_pareto_rank`, :func:`count_dominating`) works on plain vectors and knows
nothing of Optuna.
"""

from __future__ import annotations

import abc
import bisect
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

_logger = logging.getLogger(__name__)

#: Objectives read from a trial's validation-accuracy curve.
CURVE_OBJECTIVES = ("accuracy", "f1")
#: Objectives read from a trial's user attributes, set before training starts.
COST_OBJECTIVES = ("params", "flops", "latency_ms")
#: User attribute holding the validation-accuracy curve (a list, epoch 1 first), read
#: where a trial has no intermediate value at the epoch.
CURVE_ATTR = "val_accuracy"
#: Names accepted by :func:`build_mo_pruner`.
MO_PRUNERS = ("pareto_rank", "dominance")
#: Trial states whose stored curves a decision compares against.
COMPARED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

_DIRECTIONS = ("maximize", "minimize")
_PLAIN_NUMBERS = frozenset({int, float})


# --------------------------------------------------------------------------- core


def _signs(directions: Sequence[str]) -> np.ndarray:
    """+1 for minimize, -1 for maximize: multiplied in, every objective is minimized."""
    bad = [d for d in directions if d not in _DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be 'maximize' or 'minimize', got {bad[0]!r}")
    return np.array([1.0 if d == "minimize" else -1.0 for d in directions])


def _as_minimized(points: Any, directions: Sequence[str]) -> np.ndarray:
    signs = _signs(directions)
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return np.empty((0, len(signs)))
    if arr.ndim != 2 or arr.shape[1] != len(signs):
        raise ValueError(
            f"points must be n vectors of {len(signs)} values (one per direction), "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("points must be finite")
    return arr * signs


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every objective and better in one.

    Example:
        >>> dominates([0.9, 100], [0.8, 100], ["maximize", "minimize"])
        True
        >>> dominates([0.9, 100], [0.9, 100], ["maximize", "minimize"])
        False
    """
    if not len(a) == len(b) == len(directions):
        raise ValueError("a, b and directions must have the same length")
    _signs(directions)
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if x == y:
            continue
        if (x > y) != (d == "maximize"):
            return False
        better = True
    return better


def pareto_ranks(points: Any, directions: Sequence[str]) -> list[int]:
    """Non-dominated sorting: each point's front, 0 for the Pareto front.

    A point's rank is one more than the highest rank of the points that dominate it, so
    identical points share a rank. Two or three objectives take an ``O(n log n)`` sweep
    (about a millisecond for 2,000 points); four or more a vectorised ``O(n^2)`` count.

    Args:
        points: ``n`` vectors of ``len(directions)`` finite values.
        directions: ``"maximize"`` or ``"minimize"`` per objective.

    Example:
        >>> pareto_ranks([[0.9, 500], [0.8, 100], [0.7, 200], [0.9, 500]],
        ...              ["maximize", "minimize"])
        [0, 0, 1, 0]
    """
    return _ranks(_as_minimized(points, directions)).tolist()


def _ranks(q: np.ndarray) -> np.ndarray:
    n, m = q.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 1:
        return np.unique(q[:, 0], return_inverse=True)[1].astype(np.int64).reshape(n)
    if m > 3:
        return _ranks_by_counting(q)
    # Sorted lexicographically, every point comes after all points dominating it, and
    # the points before it that dominate it are exactly those no worse in the remaining
    # objectives (identical points excepted, which share a group). Its rank is then the
    # first front that holds none of them; fronts are searched by bisection, since a
    # front holding a dominator means every earlier front holds one too.
    order = np.lexsort(q.T[::-1])
    qs = q[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (qs[1:] != qs[:-1]).any(axis=1)
    group_of = np.cumsum(starts) - 1
    uniq = qs[starts]
    if m == 2:
        group_ranks = _sweep_2d(uniq[:, 1].tolist())
    else:
        group_ranks = _sweep_3d(uniq[:, 1].tolist(), uniq[:, 2].tolist())
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.asarray(group_ranks, dtype=np.int64)[group_of]
    return ranks


def _sweep_2d(ys: list[float]) -> list[int]:
    # best[k]: the lowest y in front k so far; non-decreasing in k, so a bisection finds
    # the first front with no point at or below y.
    best: list[float] = []
    out = []
    for y in ys:
        r = bisect.bisect_right(best, y)
        if r == len(best):
            best.append(y)
        else:
            best[r] = y
        out.append(r)
    return out


def _sweep_3d(ys: list[float], zs: list[float]) -> list[int]:
    # Each front keeps the staircase of its points in (y, z): y increasing, z decreasing,
    # after a sentinel (-inf, inf). The step with the largest y <= y0 has the lowest z of
    # all the front's points with y <= y0.
    bisect_right = bisect.bisect_right
    stair_y: list[list[float]] = []
    stair_z: list[list[float]] = []
    out = []
    for y, z in zip(ys, zs, strict=True):
        lo, hi = 0, len(stair_y)
        while lo < hi:
            mid = (lo + hi) >> 1
            if stair_z[mid][bisect_right(stair_y[mid], y) - 1] <= z:
                lo = mid + 1
            else:
                hi = mid
        out.append(lo)
        if lo == len(stair_y):
            stair_y.append([-math.inf, y])
            stair_z.append([math.inf, z])
            continue
        sy, sz = stair_y[lo], stair_z[lo]
        pos = end = bisect_right(sy, y)
        while end < len(sy) and sz[end] >= z:  # steps this point now covers
            end += 1
        if sy[pos - 1] == y:  # same y, higher z (a lower z would dominate this point)
            pos -= 1
        sy[pos:end] = [y]
        sz[pos:end] = [z]
    return out


def _ranks_by_counting(q: np.ndarray) -> np.ndarray:
    n = len(q)
    no_worse = np.ones((n, n), dtype=bool)  # [i, j]: i is no worse than j everywhere
    for j in range(q.shape[1]):
        no_worse &= q[:, None, j] <= q[None, :, j]
    dom = no_worse & ~no_worse.T
    remaining = np.count_nonzero(dom, axis=0)
    ranks = np.full(n, -1, dtype=np.int64)
    rank = 0
    while True:
        front = np.flatnonzero((remaining == 0) & (ranks < 0))
        if front.size == 0:
            return ranks
        ranks[front] = rank
        remaining -= np.count_nonzero(dom[front], axis=0)
        rank += 1


def crowding_distances(points: Any, ranks: Sequence[int], directions: Sequence[str]) -> list[float]:
    """NSGA-II crowding distance of each point within its front (same rank).

    Per objective, a point scores the gap between the nearest *distinct* values below and
    above its own in its front, divided by the front's range, and the scores add up.
    Points holding a front's lowest or highest value of an objective that varies there
    are boundary points (``inf``), as are all points of a front of identical points (a
    single point included). Using distinct values makes the result independent of the
    order of the points: tied points get the same distance.

    Example:
        >>> crowding_distances([[1, 4], [2, 2], [4, 1], [3, 3]], [0, 0, 0, 1],
        ...                    ["minimize", "minimize"])
        [inf, 2.0, inf, inf]
    """
    q = _as_minimized(points, directions)
    n = len(q)
    r = np.asarray(ranks, dtype=np.int64).reshape(-1)
    if len(r) != n:
        raise ValueError(f"got {n} points but {len(r)} ranks")
    if n == 0:
        return []
    dist = np.zeros(n)
    varies_anywhere = np.zeros(n, dtype=bool)
    for j in range(q.shape[1]):
        order = np.lexsort((q[:, j], r))
        v, rs = q[order, j], r[order]
        new_front = np.ones(n, dtype=bool)
        new_front[1:] = rs[1:] != rs[:-1]
        new_value = new_front.copy()
        new_value[1:] |= v[1:] != v[:-1]
        front_first = np.maximum.accumulate(np.where(new_front, np.arange(n), 0))
        front_last = np.minimum.accumulate(
            np.where(np.append(new_front[1:], True), np.arange(n), n)[::-1]
        )[::-1]
        lo, hi = v[front_first], v[front_last]
        span = hi - lo
        # Runs of equal values: the value before a run and after it, in the same front.
        run_first = np.maximum.accumulate(np.where(new_value, np.arange(n), 0))
        ends = np.append(new_value[1:], True)
        run_last = np.minimum.accumulate(np.where(ends, np.arange(n), n)[::-1])[::-1]
        below = v[np.maximum(run_first - 1, 0)]
        above = v[np.minimum(run_last + 1, n - 1)]
        varies = span > 0
        boundary = varies & ((v == lo) | (v == hi))
        inner = varies & ~boundary
        score = np.zeros(n)
        score[inner] = (above[inner] - below[inner]) / span[inner]
        score[boundary] = np.inf
        dist[order] += score
        varies_anywhere[order] |= varies
    dist[~varies_anywhere] = np.inf
    return dist.tolist()


def keep_by_pareto_rank(
    own: Sequence[float],
    others: Any,
    directions: Sequence[str],
    reduction_factor: float,
) -> bool:
    """The multi-objective ASHA rule: is ``own`` in the best ``1/reduction_factor``?

    ``own`` and ``others`` (``n`` points in all) are ordered by Pareto rank, then by
    crowding distance within a front (larger first); ``own`` is kept if fewer than
    ``ceil(n / reduction_factor)`` points come strictly before it. Points tied with
    ``own`` on both (identical points, above all) never count against it: a trial is never
    pruned in favour of one it cannot be told apart from, which also keeps the decision
    independent of the order of ``others``.

    Example:
        >>> # The smallest model is on the front despite the lowest accuracy.
        >>> keep_by_pareto_rank([0.5, 100], [[0.9, 9000], [0.8, 8000], [0.7, 7000]],
        ...                     ["maximize", "minimize"], 3)
        True
    """
    if reduction_factor <= 1:
        raise ValueError(f"reduction_factor must be greater than 1, got {reduction_factor}")
    o = _as_minimized([list(own)], directions)[0]
    others_q = _as_minimized(others, directions)
    n = 1 + len(others_q)
    budget = math.ceil(n / reduction_factor)
    no_worse = (others_q <= o).all(axis=1)
    no_better = (others_q >= o).all(axis=1)
    # Whatever dominates own is ahead of it: often enough to decide at no further cost.
    if np.count_nonzero(no_worse & ~no_better) >= budget:
        return False
    # Whatever own dominates ranks behind it, and so does all it dominates in turn: those
    # points change neither own's rank nor the fronts up to it, and the sort skips them.
    q = np.concatenate([o[None, :], others_q[~(no_better & ~no_worse)]])
    ranks = _ranks(q)
    own_rank = ranks[0]
    ahead = int(np.count_nonzero(ranks < own_rank))
    same = np.flatnonzero(ranks == own_rank)
    if ahead >= budget:
        return False
    if ahead + len(same) <= budget:
        return True
    # Own front straddles the cut: only its crowding distances matter (own is at index 0).
    crowd = np.asarray(crowding_distances(q[same], [0] * len(same), ["minimize"] * q.shape[1]))
    ahead += int(np.count_nonzero(crowd > crowd[0]))
    return ahead < budget


def count_dominating(own: Sequence[float], others: Any, directions: Sequence[str]) -> int:
    """How many of ``others`` dominate ``own``.

    Example:
        >>> count_dominating([0.8, 500], [[0.9, 400], [0.9, 600], [0.8, 500]],
        ...                  ["maximize", "minimize"])
        1
    """
    o = _as_minimized([list(own)], directions)[0]
    q = _as_minimized(others, directions)
    if len(q) == 0:
        return 0
    return int(np.count_nonzero((q <= o).all(axis=1) & (q < o).any(axis=1)))


# --------------------------------------------------------------------------- pruners


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
        _check_int("min_epochs", min_epochs, 1)
        _check_int("min_trials", min_trials, 0)
        self.min_epochs = min_epochs
        self.min_trials = min_trials
        self._objectives: tuple[str, ...] | None = None
        self._directions: tuple[str, ...] = ()
        self._logged_failure = False
        self._logged_bad_trial = False
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
        _signs(directions)
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
            if not self._logged_failure:
                self._logged_failure = True
                _logger.warning(
                    "%s could not decide for trial %s at epoch %s; the trial keeps training "
                    "(further failures of this pruner are not logged)",
                    type(self).__name__,
                    trial_number,
                    epoch,
                    exc_info=True,
                )
            return None

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
        trials = study.get_trials(deepcopy=False, states=COMPARED_STATES)
        key = (id(study._storage), study._study_id, epoch)
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
        if not self._logged_bad_trial:
            self._logged_bad_trial = True
            _logger.warning(
                "%s ignores trial %s: a value it needs is not a finite number "
                "(further such trials are not logged)",
                type(self).__name__,
                trial.number,
            )


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


class ParetoRankPruner(BaseMultiObjectivePruner):
    """Multi-objective ASHA: asynchronous rungs, Pareto rank with crowding distance.

    At rung epochs ``min_epochs * reduction_factor**k`` (k = 0, 1, ...), a trial is kept
    only if it is in the best ``ceil(n / reduction_factor)`` of the ``n`` trials with a
    value at that epoch (itself included), by :func:`keep_by_pareto_rank`. Other epochs
    never prune.

    Example:
        >>> pruner = ParetoRankPruner(min_epochs=1, reduction_factor=3)
        >>> [e for e in range(1, 30) if pruner.is_rung(e)]
        [1, 3, 9, 27]
    """

    def __init__(
        self,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        min_trials: int = 4,
        *,
        objectives: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
    ) -> None:
        _check_int("reduction_factor", reduction_factor, 2)
        self.reduction_factor = reduction_factor
        super().__init__(
            min_epochs=min_epochs,
            min_trials=min_trials,
            objectives=objectives,
            directions=directions,
        )

    def is_rung(self, epoch: int) -> bool:
        """Whether ``epoch`` is ``min_epochs * reduction_factor**k`` for some k >= 0."""
        rung = self.min_epochs
        while rung < epoch:
            rung *= self.reduction_factor
        return rung == epoch

    def _decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own: tuple[float, ...]
    ) -> str | None:
        if not self.is_rung(epoch):
            return None
        others = self._others_at(study, trial_number, epoch)
        if len(others) < self.min_trials:
            return None
        if keep_by_pareto_rank(own, others, self._directions, self.reduction_factor):
            return None
        return (
            f"pareto rank: not in the best 1/{self.reduction_factor} of {len(others) + 1} "
            f"trials at epoch {epoch}"
        )


class DominancePruner(BaseMultiObjectivePruner):
    """Prunes a trial that at least ``k`` other trials dominate at the same epoch.

    Decides at every epoch from ``min_epochs`` on.
    """

    def __init__(
        self,
        k: int = 3,
        min_epochs: int = 1,
        min_trials: int = 4,
        *,
        objectives: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
    ) -> None:
        _check_int("k", k, 1)
        self.k = k
        super().__init__(
            min_epochs=min_epochs,
            min_trials=min_trials,
            objectives=objectives,
            directions=directions,
        )

    def _decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own: tuple[float, ...]
    ) -> str | None:
        if epoch < self.min_epochs:
            return None
        others = self._others_at(study, trial_number, epoch)
        if len(others) < self.min_trials:
            return None
        dominating = count_dominating(own, others, self._directions)
        if dominating < self.k:
            return None
        trials = "trial" if dominating == 1 else "trials"
        return f"dominated by {dominating} {trials} at epoch {epoch}"


# --------------------------------------------------------------------------- factory

_OPTIONS: dict[str, dict[str, int]] = {  # option -> smallest allowed value
    "pareto_rank": {"min_epochs": 1, "reduction_factor": 2, "min_trials": 0},
    "dominance": {"k": 1, "min_epochs": 1, "min_trials": 0},
}
_CLASSES: dict[str, type[ParetoRankPruner] | type[DominancePruner]] = {
    "pareto_rank": ParetoRankPruner,
    "dominance": DominancePruner,
}


def _check_int(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def check_mo_pruner_options(name: str, options: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """Return ``(field, problem, value)`` if ``options`` don't suit pruner ``name``, else None.

    ``field`` is ``"name"`` for an unknown pruner, else the option's key.

    Example:
        >>> check_mo_pruner_options("pareto_rank", {"reduction_factor": 1})
        ('reduction_factor', 'must be an integer greater than 1', 1)
    """
    if name not in _OPTIONS:
        return "name", f"unknown multi-objective pruner (known: {', '.join(MO_PRUNERS)})", name
    allowed = _OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            return key, f"unknown option for pruner {name!r} (known: {known})", value
        least = allowed[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            if least == 2:
                return key, "must be an integer greater than 1", value
            return key, f"must be an integer >= {least}", value
    return None


def build_mo_pruner(name: str, options: Mapping[str, Any]) -> BaseMultiObjectivePruner:
    """The multi-objective pruner ``name`` (one of :data:`MO_PRUNERS`), still unbound.

    Raises:
        ValueError: the options :func:`check_mo_pruner_options` rejects.

    Example:
        >>> build_mo_pruner("dominance", {"k": 2}).k
        2
    """
    problem = check_mo_pruner_options(name, options)
    if problem is not None:
        field, message, value = problem
        raise ValueError(f"pruner {name!r}, {field}={value!r}: {message}")
    return _CLASSES[name](**options)
