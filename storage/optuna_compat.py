"""Every use of Optuna's private API, in one module.

Optuna keeps some things nas-study needs behind underscores: a study's storage and id, a
trial's id, the cached trial list, the heartbeat switch, and its hypervolume routine. Each
is reached through a function here, so an Optuna release that moves one breaks this module
alone, and ``pyproject.toml`` caps Optuna below the next major version (``optuna>=5.0,<6``).

It lives in ``storage/``, the lowest of the three packages, because both ``storage`` and
``studies`` need it and ``storage`` never imports ``studies``.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume as _compute_hypervolume
from optuna.distributions import BaseDistribution
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

#: Private methods of ``RDBStorage`` that Optuna's ``_CachedStorage`` (which every Study
#: puts in front of an RDBStorage) calls instead of the public ones, plus the heartbeat query.
RDB_PRIVATE_CALLS = (
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage object a study reads and writes through (Optuna's cache in front of it)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage."""
    return study._study_id


def trial_id(trial: optuna.trial.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (``Trial`` and ``FrozenTrial`` both carry one)."""
    return trial._trial_id


def cached_trials(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """The study's trials without a deep copy, through Optuna's per-study trial cache.

    Unlike ``study.get_trials``, finished trials are read from the storage once per process
    and kept, so a sampler that reads the history before every trial pays for new trials only.
    """
    return study._get_trials(deepcopy=False, states=states, use_cache=True)


def contains_internal(dist: BaseDistribution, internal: float) -> bool:
    """Whether ``internal`` (Optuna's float representation) is a value of ``dist``."""
    return bool(dist._contains(internal))


def is_heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether ``storage`` runs heartbeats (an RDB storage with a heartbeat interval)."""
    return bool(_is_heartbeat_enabled(storage))


def compute_hypervolume(
    loss_points: np.ndarray, reference: np.ndarray, assume_pareto: bool = False
) -> float:
    """Optuna's exact hypervolume of ``loss_points`` (every objective minimized) up to
    ``reference``."""
    return float(_compute_hypervolume(loss_points, reference, assume_pareto=assume_pareto))
