"""Optuna's trial cache (``_CachedStorage``) in front of the gRPC proxy's database.

It subclasses Optuna's private cache and uses its internals (see :mod:`storage.optuna_compat`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models as _models
from optuna.trial import TrialState

from storage._rdb.storage import RetryingRDBStorage
from storage._trial_writes import TrialWrites


def proxy_cached_storage(storage: RetryingRDBStorage) -> ProxyCachedStorage:
    """Optuna's trial cache in front of ``storage``, for the gRPC proxy server, which also
    takes parameters for a trial it has not read yet.

    Optuna's ``_CachedStorage.set_trial_param`` raises KeyError for a trial it has not seen;
    behind a proxy that was restarted, that is every trial created through the one before.
    """
    return ProxyCachedStorage(storage)


class ProxyCachedStorage(_CachedStorage):
    """Optuna's cache in front of the proxy's database (see :func:`proxy_cached_storage`)."""

    def __init__(self, backend: RetryingRDBStorage) -> None:
        super().__init__(backend)
        self.rdb = backend  # the backend, typed as the storage it is

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        if trial_id not in self._trial_id_to_study_id_and_number:
            trials = _models.TrialModel.__table__
            query = sqlalchemy.select(trials.c.study_id).where(trials.c.trial_id == trial_id)
            with self._backend.engine.connect() as conn:
                study_id = conn.execute(query).scalar()
            if study_id is None:
                raise KeyError(f"no trial with id {trial_id}")
            self.get_all_trials(int(study_id), deepcopy=False)  # reads it into the cache
        # Optuna holds the cache's one lock across the database write, which serialises
        # every parameter write of every worker behind the proxy (65 ms a call at 64
        # workers, 2 ms of it SQL: benchmarks/fleet_scale.py). Only the cache is read and
        # written under the lock here; two writers of a new name both check it against the
        # database, which is slower but as correct.
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            cached_dist = self._studies[study_id].param_distribution.get(param_name)
        self._backend._set_trial_param(
            trial_id, param_name, param_value_internal, distribution, cached_dist
        )
        if cached_dist is None:
            with self._lock:
                self._studies[study_id].param_distribution.setdefault(param_name, distribution)

    def write_trial(
        self,
        trial_id: int,
        writes: TrialWrites,
        state: TrialState | None = None,
        values: Sequence[float] | None = None,
    ) -> bool:
        """A worker's kept writes (the proxy's ``WriteTrial``), each parameter checked
        against the distribution this cache knows for its name, as ``set_trial_param``
        does: the database is asked only about names the study has not shown yet."""
        with self._lock:
            study_id = self._trial_id_to_study_id_and_number.get(trial_id, (None, None))[0]
            study = self._studies.get(study_id) if study_id is not None else None
            if study is not None:
                for name, (value, dist, previous) in writes.params.items():
                    if previous is None and name in study.param_distribution:
                        writes.params[name] = (value, dist, study.param_distribution[name])
        stored = bool(self.rdb.write_trial(trial_id, writes, state, values))
        if study is not None:
            with self._lock:
                for name, (_, dist, _) in writes.params.items():
                    study.param_distribution.setdefault(name, dist)
        return stored
