"""What the evolution and REINFORCE samplers share: finished trials read from the storage,
per-trial random streams, and valid random values for any Optuna distribution.

Both samplers rebuild their state from the stored trials, so a worker holds nothing that
another worker (or a restarted one) could not rebuild. Their randomness comes from the
sampler's seed, the trial's number and the parameter's name, never from a stream that
advances with every call, so a worker that restarts samples what it would have sampled.
"""

from __future__ import annotations

import math
import secrets
import weakref
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from storage.optuna_compat import (
    cached_trials,
    contains_internal,
    study_id,
    study_storage,
    trial_id,
)

#: Trials a sampler learns from: failed trials are treated as deleted, as Optuna's do.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

_T = TypeVar("_T")


def require_int(name: str, value: object) -> None:
    """A sampler option must be a whole number (``True`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")


def require_number(name: str, value: object) -> None:
    """A sampler option must be a number (``True`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")


def base_seed(seed: int | None) -> int:
    """``seed`` as a non-negative integer, or a fresh random one when None."""
    if seed is None:
        return secrets.randbits(63)
    return int(seed) % 2**63


def trial_rng(seed: int, number: int, key: str) -> np.random.Generator:
    """The random stream of one decision: a function of seed, trial number and ``key``."""
    return np.random.default_rng([seed, number, zlib.crc32(key.encode())])


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's COMPLETE and PRUNED trials, by trial number (one storage read per trial)."""
    trials = cached_trials(study, states=FINISHED)
    return sorted(trials, key=lambda t: t.number)


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a valid value of ``dist``."""
    try:
        return contains_internal(dist, dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _grid_size(dist: IntDistribution | FloatDistribution) -> int:
    """Number of points of a stepped range, minus one."""
    assert dist.step is not None
    return math.floor((dist.high - dist.low) / dist.step + 1e-8)


def grid_value(dist: IntDistribution | FloatDistribution, index: int) -> int | float:
    """The ``index``-th value of a stepped range, clipped into it."""
    assert dist.step is not None
    index = min(max(index, 0), _grid_size(dist))
    if isinstance(dist, IntDistribution):
        return int(dist.low + index * dist.step)
    return float(min(dist.low + index * dist.step, dist.high))


def to_unit(dist: IntDistribution | FloatDistribution, value: float) -> float:
    """``value``'s position in ``[0, 1]`` along the range, on a log scale when ``log``."""
    lo, hi, v = float(dist.low), float(dist.high), float(value)
    if dist.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.0 if hi == lo else min(max((v - lo) / (hi - lo), 0.0), 1.0)


def from_unit(dist: IntDistribution | FloatDistribution, u: float) -> int | float:
    """The valid value at position ``u`` in ``[0, 1]`` (inverse of :func:`to_unit`)."""
    u = min(max(u, 0.0), 1.0)
    lo, hi = float(dist.low), float(dist.high)
    if dist.log:
        x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        x = lo + u * (hi - lo)
    if isinstance(dist, IntDistribution):
        if dist.log:
            return int(min(max(round(x), dist.low), dist.high))
        return int(grid_value(dist, round((x - dist.low) / dist.step)))
    if dist.step is not None:
        return grid_value(dist, round((x - dist.low) / dist.step))
    return float(min(max(x, dist.low), dist.high))


def sample_uniform(dist: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniformly random valid value of ``dist`` (log-uniform for log ranges)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            # Each integer owns the log-interval around it, as Optuna's RandomSampler does.
            lo, hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            x = math.exp(rng.uniform(lo, hi))
            return int(min(max(round(x), dist.low), dist.high))
        return grid_value(dist, int(rng.integers(_grid_size(dist) + 1)))
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            return grid_value(dist, int(rng.integers(_grid_size(dist) + 1)))
        return from_unit(dist, float(rng.uniform()))
    raise TypeError(f"unsupported distribution {dist!r}")


class IndependentSampler(BaseSampler, Generic[_T]):
    """A sampler that decides every parameter on its own, in ``sample_independent``, which
    is what a define-by-run space needs: a parameter may exist only in some trials.

    What a trial needs (a parent to mutate, a policy to sample from) is rebuilt from the
    stored trials by :meth:`_new_trial_state` in ``before_trial``, kept while the trial
    samples, and rebuilt on demand by :meth:`_trial_state` if another sampler instance ran
    ``before_trial`` (as when a study is loaded again mid-trial).
    """

    def __init__(self) -> None:
        self._trial_states: TrialCache[_T | None] = TrialCache()

    def _new_trial_state(self, study: Study, trial: FrozenTrial) -> _T | None:
        raise NotImplementedError

    def _trial_state(self, study: Study, trial: FrozenTrial) -> _T | None:
        if not self._trial_states.has(study, trial):  # before_trial ran in another instance
            self._trial_states.put(study, trial, self._new_trial_state(study, trial))
        return self._trial_states.get(study, trial)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._trial_states.put(study, trial, self._new_trial_state(study, trial))

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._trial_states.pop(study, trial)

    def reseed_rng(self) -> None:
        # Nothing to do: each trial's stream derives from its own number, so copies of
        # this sampler in other threads never repeat each other.
        pass

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}


class TrialCache(Generic[_T]):
    """Per-trial values computed in ``before_trial`` and read while the trial samples.

    Keyed by storage and trial id; bounded, so trials that never reach ``after_trial`` (a
    worker killed mid-trial) cannot grow it without limit.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: dict[tuple[int, int], tuple[weakref.ref[Any], _T]] = {}

    @staticmethod
    def _key(study: optuna.Study, trial: FrozenTrial) -> tuple[int, int]:
        return id(study_storage(study)), trial_id(trial)

    def has(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        item = self._items.get(self._key(study, trial))
        # The id of a storage that is gone may be reused by a new one.
        return item is not None and item[0]() is study_storage(study)

    def get(self, study: optuna.Study, trial: FrozenTrial) -> _T | None:
        return self._items[self._key(study, trial)][1] if self.has(study, trial) else None

    def put(self, study: optuna.Study, trial: FrozenTrial, value: _T) -> None:
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[self._key(study, trial)] = (weakref.ref(study_storage(study)), value)

    def pop(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._items.pop(self._key(study, trial), None)


def per_storage(
    table: dict[tuple[int, int], tuple[weakref.ref[Any], _T]],
    study: optuna.Study,
    make: Callable[[], _T],
) -> _T:
    """``table``'s entry for ``study`` (by storage and study id), made on first use."""
    storage = study_storage(study)
    key = (id(storage), study_id(study))
    item = table.get(key)
    if item is None or item[0]() is not storage:
        item = table[key] = (weakref.ref(storage), make())
    return item[1]
