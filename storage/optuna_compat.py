"""Thin accessors of Optuna's private API, and the list of the modules that use it.

Optuna keeps some things nas-study needs behind underscores: a study's storage and id, a
trial's id, the cached trial list, the heartbeat switch and thread, failing a trial and
queueing its copy in one transaction, and the gRPC proxy's server and channel. Each is
reached through a function here. The jobs that need more of Optuna's insides have modules
of their own, and these five are all (``pyproject.toml`` names them beside its
``optuna>=5.0,<6`` cap):

* :mod:`storage._trial_writes`: a trial's writes into Optuna's tables in one transaction;
* :mod:`storage._rdb.storage`: the creation and claim transactions, with the creation
  token in nas-study's own table;
* :mod:`storage._rdb.worker_cache` and :mod:`storage._grpc.proxy_cache`: the trial caches
  in front of a worker's and the proxy's storage, built on Optuna's ``_CachedStorage``.

It lives in ``storage/``, the lowest of the three packages, because both ``storage`` and
``studies`` need it and ``storage`` never imports ``studies``.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages._heartbeat import BaseHeartbeat, BaseHeartbeatThread, get_heartbeat_thread
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled
from optuna.storages._rdb import models as _models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    import grpc

__all__ = ["BaseHeartbeat", "BaseHeartbeatThread"]

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


def fresh_trials(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """``study.get_trials(deepcopy=False, states=states)`` read from the database now, even
    where the storage would reuse a read held by the worker loop (:func:`hold_reads`): for
    decisions that count trials created since (the budget rank), or wait for one."""
    release_reads(study)
    return study.get_trials(deepcopy=False, states=states)


def hold_reads(study: optuna.Study) -> None:
    """Let the study's next reads reuse the last one where the storage can (see
    :meth:`storage._rdb.worker_cache.WorkerCachedStorage.hold_reads`): the worker loop's, before
    it asks for a trial."""
    from storage._rdb.worker_cache import WorkerCachedStorage  # which imports this module

    if isinstance(study._storage, WorkerCachedStorage):
        study._storage.hold_reads(study._study_id)


def release_reads(study: optuna.Study) -> None:
    """End :func:`hold_reads`: the study's next read is a read of the database."""
    from storage._rdb.worker_cache import WorkerCachedStorage  # which imports this module

    if isinstance(study._storage, WorkerCachedStorage):
        study._storage.refresh(study._study_id)


def contains_internal(dist: BaseDistribution, internal: float) -> bool:
    """Whether ``internal`` (Optuna's float representation) is a value of ``dist``."""
    return bool(dist._contains(internal))


def is_heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether ``storage`` runs heartbeats (an RDB storage with a heartbeat interval)."""
    return bool(_is_heartbeat_enabled(storage))


def heartbeat_thread(trial_id: int, storage: optuna.storages.BaseStorage) -> BaseHeartbeatThread:
    """Optuna's heartbeat thread for ``trial_id`` (a no-op one without heartbeats)."""
    return get_heartbeat_thread(trial_id, storage)


def retarget_trial(trial: optuna.trial.Trial, frozen: FrozenTrial) -> None:
    """Make the live ``trial`` write to the stored trial ``frozen`` from now on.

    What the trial recorded so far (user attributes, intermediate values) stays in its
    cache, so ``trial.user_attrs`` and pruning see the whole run.
    """
    cached = trial._cached_frozen_trial
    frozen = copy.deepcopy(frozen)
    frozen.user_attrs = {**frozen.user_attrs, **cached.user_attrs}
    frozen.intermediate_values = {**frozen.intermediate_values, **cached.intermediate_values}
    frozen.params = {**cached.params, **frozen.params}
    frozen.distributions = {**cached.distributions, **frozen.distributions}
    trial._trial_id = frozen._trial_id
    trial._cached_frozen_trial = frozen


def written_system_attrs(trial: optuna.trial.Trial) -> dict[str, Any]:
    """The system attributes the live ``trial`` wrote through its own methods (constraints),
    as its cache holds them: ``trial.system_attrs`` reads the storage instead."""
    return dict(trial._cached_frozen_trial.system_attrs)


def cache_user_attrs(trial: optuna.trial.Trial, attrs: dict[str, Any]) -> None:
    """Put ``attrs``, just stored, into the live ``trial``'s cached copy, which
    ``trial.user_attrs`` reads (as ``Trial.set_user_attr`` does after its write)."""
    trial._cached_frozen_trial.user_attrs.update(attrs)


def make_grpc_server(
    storage: optuna.storages.BaseStorage, host: str, port: int, thread_pool: ThreadPoolExecutor
) -> grpc.Server:
    """Optuna's gRPC proxy server for ``storage``, bound but not started, so more services
    can be added to it."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, thread_pool)


def reconnect_grpc_proxy(proxy: optuna.storages.GrpcStorageProxy) -> None:
    """Give ``proxy`` a fresh channel (and trial cache): a channel that lost its server
    waits out gRPC's reconnect backoff, up to two minutes, before it tries again."""
    proxy._channel.close()  # Optuna's channel only, not a subclass's others (close() may be)
    proxy._setup()


def fail_and_queue_copy(
    storage: optuna.storages.RDBStorage, study_id: int, trial_id: int, copy: FrozenTrial | None
) -> bool:
    """In one transaction: fail the RUNNING trial ``trial_id`` and queue ``copy`` (unless
    ``None``). False if the trial was no longer RUNNING (another process got there first)
    or is locked by a transaction in progress.

    Optuna's ``fail_stale_trials`` fails a trial and queues its copy in two transactions,
    so a process killed between them loses the trial for good.
    """
    with _create_scoped_session(storage.scoped_session) as session:
        # A row locked by another transaction (its worker writing, or frozen mid-write)
        # is skipped, not waited for: the next round looks again.
        row = (
            session.query(_models.TrialModel)
            .filter(_models.TrialModel.trial_id == trial_id)
            .with_for_update(skip_locked=True)
            .one_or_none()
        )
        if row is None or row.state != TrialState.RUNNING:
            return False
        row.state = TrialState.FAIL
        row.datetime_complete = datetime.now()
        if copy is not None:
            _models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            storage._get_prepared_new_trial(study_id, copy, session)
        return True
