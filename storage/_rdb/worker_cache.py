"""Optuna's trial cache (``_CachedStorage``) in front of a worker's storage, which keeps the
writes of the worker's trials (the proxy's own cache is :mod:`storage._grpc.proxy_cache`).

It subclasses Optuna's private cache and uses its internals (see :mod:`storage.optuna_compat`).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Container, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.trial import FrozenTrial, TrialState

from storage._rdb.storage import RetryingRDBStorage
from storage._trial_writes import (
    KeptWrites,
    TrialWrites,
    apply_writes,
    store_kept,
    study_distribution,
    trial_ids_to_read,
    with_pending_writes,
)

#: Least seconds between two stale-trial checks of one study by one worker process. Optuna
#: checks before every trial; a dead trial is found at most this much later.
STALE_CHECK_EVERY_S = 1.0


class _OwnTrial(KeptWrites):
    """A trial this process runs: what it knows the stored trial to be (``view``, with its
    own writes applied) and the writes not stored yet (``pending``)."""

    __slots__ = ("view",)

    def __init__(self, view: FrozenTrial | None) -> None:
        super().__init__()
        self.view = view


class WorkerCachedStorage(_CachedStorage):
    """Optuna's trial cache in front of a worker's RDB storage, which stores each of the
    worker's trials in three transactions instead of one per write.

    Optuna writes every parameter, attribute and intermediate value of a trial the moment
    it is set: about 16 transactions a trial, each a few SQLAlchemy round trips. Here the
    writes to a trial the worker declared its own (:meth:`keep_writes`, once it has created
    or claimed it) are kept and stored together, in one transaction, when:

    * the trial is published (:meth:`publish`: the objective does so once its
      architecture is sampled and built, before training, so other workers, the dashboard
      and a re-queued copy see its parameters while it trains);
    * it reports an intermediate value (other workers' pruners read those);
    * it ends: its last writes and its state and values go in one transaction.

    A write that finds the trial declared dead raises ``UpdateFinishedTrialError`` there,
    as the write itself would have (the worker's lifeline then moves to the copy).

    Every other trial, and every trial until the worker keeps its writes, is Optuna's
    ``_CachedStorage`` unchanged: each write is stored at once. Trials created here are a
    worker's: they beat from the transaction that creates (or claims) them, so a worker
    killed before its first beat leaves no RUNNING trial behind.

    Reads:

    * ``get_trial`` of a kept trial is answered from what this process knows when its
      heartbeats prove nobody declared it dead (``surely_alive``), else read and merged
      with the pending writes; reads of the whole study show the pending writes too;
    * the worker loop reads the study before each trial and then holds that read
      (:meth:`hold_reads`): the ask's own reads of the study (the queue of WAITING trials,
      the sampler's) reuse it, until the trial is published or ends, or a read is asked
      to be fresh (:func:`fresh_trials`: the budget rank);
    * stale trials are looked for at most every :data:`STALE_CHECK_EVERY_S` seconds.

    Only for an :class:`~optuna.storages.RDBStorage` with ``write_trial`` (nas-study's
    ``RetryingRDBStorage``); relies on ``_CachedStorage``'s internals (Optuna ``<6``).
    """

    def __init__(self, backend: RetryingRDBStorage) -> None:
        super().__init__(backend)
        self._rdb = backend  # the backend, typed as the storage it is
        self._own: dict[int, _OwnTrial] = {}
        # The RUNNING trials created here, as created, until the worker keeps their writes.
        self._created: dict[int, FrozenTrial] = {}
        self._held: set[int] = set()  # studies whose next reads reuse the last one
        # The trials this process ended, as stored, by study, until the next read: that read
        # need not load them again (MySQL rounds times and floats: read back there).
        self._ended_views: dict[int, dict[int, FrozenTrial]] = {}
        self._exact_views = backend.engine.name != "mysql"
        self._stale_checked_at: dict[int, float] = {}
        self._own_lock = threading.Lock()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_own_lock"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._own_lock = threading.Lock()

    def _study_of(self, trial_id: int) -> int:
        with self._lock:
            return self._trial_id_to_study_id_and_number[trial_id][0]

    # Trials this process runs.

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        frozen = self._rdb._create_new_trial(study_id, template_trial, worker=True)
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            self._add_trials_to_cache(study_id, [frozen])
        if frozen.state == TrialState.RUNNING:
            with self._own_lock:
                self._created[frozen._trial_id] = copy.deepcopy(frozen)
        return int(frozen._trial_id)

    def keep_writes(self, trial_id: int) -> None:
        """Keep the writes to ``trial_id``, a RUNNING trial this process runs, until it is
        published, reports an intermediate value, or ends (see the class docstring)."""
        with self._own_lock:
            if trial_id not in self._own:
                self._own[trial_id] = _OwnTrial(self._created.pop(trial_id, None))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None or not state.is_finished():
            if state == TrialState.RUNNING and values is None:
                # A worker's claim: it beats from the claiming transaction on.
                claimed = self._rdb.claim_trial(trial_id)
            else:
                claimed = self._backend.set_trial_state_values(trial_id, state, values)
            if state.is_finished():
                self._ended(trial_id)
            return claimed
        completed_at = datetime.now()
        try:
            stored = bool(self._rdb.write_trial(trial_id, own.pending, state, values, completed_at))
        finally:
            self._ended(trial_id)
        self._remember_distributions(trial_id, own.pending)
        if own.view is not None and self._exact_views:
            self._keep_ended_view(own.view, state, values, completed_at)
        return stored

    def _keep_ended_view(
        self,
        view: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
        completed_at: datetime,
    ) -> None:
        """Keep the trial as it is stored now, for the next read of its study."""
        ended = copy.deepcopy(view)
        ended.state = state
        ended.values = None if values is None else [float(v) for v in values]
        ended.datetime_complete = completed_at
        # As the JSON columns give them back (a tuple comes back a list, say).
        ended.user_attrs = json.loads(json.dumps(ended.user_attrs))
        ended.system_attrs = json.loads(json.dumps(ended.system_attrs))
        study_id = self._study_of(ended._trial_id)
        with self._own_lock:
            self._ended_views.setdefault(study_id, {})[ended._trial_id] = ended

    def _ended(self, trial_id: int) -> None:
        with self._lock:
            study_id = self._trial_id_to_study_id_and_number.get(trial_id, (-1, -1))[0]
        with self._own_lock:
            self._own.pop(trial_id, None)
            self._created.pop(trial_id, None)
            self._held.discard(study_id)

    def publish(self, trial_id: int) -> None:
        """Store the trial's pending writes now, in one transaction; reads of its study are
        fresh again (the trial trains next: what others do meanwhile matters)."""
        self.refresh(self._study_of(trial_id))
        self._store(trial_id, TrialWrites())

    def _store(self, trial_id: int, extra: TrialWrites) -> None:
        with self._own_lock:
            own = self._own.get(trial_id)

        def dead() -> None:
            with self._own_lock:
                self._own.pop(trial_id, None)

        stored = store_kept(
            own, extra, self._own_lock, lambda w: self._rdb.write_trial(trial_id, w), dead
        )
        if stored is not None:
            self._remember_distributions(trial_id, stored)

    def _remember_distributions(self, trial_id: int, writes: TrialWrites) -> None:
        """Keep the distributions just stored, as Optuna's cache does, so the next trial's
        parameters are checked against them without a query."""
        study_id = self._study_of(trial_id)
        with self._lock:
            study = self._studies[study_id]
            for name, (_, dist, _) in writes.params.items():
                study.param_distribution.setdefault(name, dist)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None:
            super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
            return
        study_id = self._study_of(trial_id)
        with self._lock:
            previous = self._studies[study_id].param_distribution.get(param_name)
        if previous is None:  # a name this process has not seen: the study may have it
            previous = self._rdb._call_with_retry(
                "set_trial_param",
                lambda: study_distribution(self._backend, study_id, param_name),
            )
            if previous is not None:
                with self._lock:
                    self._studies[study_id].param_distribution.setdefault(param_name, previous)
        if previous is not None:  # refused at once, as Optuna would
            check_distribution_compatibility(previous, distribution)
        with self._own_lock:
            own.pending.params[param_name] = (param_value_internal, distribution, previous)
            if own.view is not None:
                own.view.params[param_name] = distribution.to_external_repr(param_value_internal)
                own.view.distributions[param_name] = distribution

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._own_lock:
            kept = trial_id in self._own
        if not kept:
            super().set_trial_user_attr(trial_id, key, value)
            return
        self.set_trial_user_attrs(trial_id, {key: value})

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes at once (stored with the trial's next write if this
        process runs the trial, else in one transaction)."""
        with self._own_lock:
            own = self._own.get(trial_id)
            if own is not None:
                own.pending.user_attrs.update(attrs)
                if own.view is not None:
                    own.view.user_attrs.update(copy.deepcopy(attrs))
                return
        self._rdb.write_trial(trial_id, TrialWrites(user_attrs=dict(attrs)))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._own_lock:
            own = self._own.get(trial_id)
            if own is not None:
                own.pending.system_attrs[key] = value
                if own.view is not None:
                    own.view.system_attrs[key] = copy.deepcopy(value)
                return
        super().set_trial_system_attr(trial_id, key, value)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None:
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
            return
        self._store(trial_id, TrialWrites(intermediate_values={step: intermediate_value}))
        with self._own_lock:
            if own.view is not None:
                own.view.intermediate_values[step] = intermediate_value

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None:
            return super().get_trial(trial_id)
        if own.view is not None and self._surely_alive(trial_id):
            return copy.deepcopy(own.view)
        stored = self._backend.get_trial(trial_id)
        if stored.state != TrialState.RUNNING:
            return stored
        with self._own_lock:
            apply_writes(stored, own.pending)
            own.view = copy.deepcopy(stored)
        return stored

    def surely_alive(self, trial_id: int) -> bool:
        """Whether this process's beats prove nobody has declared ``trial_id`` dead
        (:meth:`RetryingRDBStorage.surely_alive`); False means "read the trial to know"."""
        return self._rdb.surely_alive(trial_id)

    def _surely_alive(self, trial_id: int) -> bool:
        if self._rdb.get_heartbeat_interval() is None:
            return True  # without heartbeats nothing declares a trial dead
        return self._rdb.surely_alive(trial_id)

    # Reads of the whole study.

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._own_lock:
            reuse = study_id in self._held and study_id in self._studies
        if not reuse:
            self._read_trials_from_remote_storage(study_id)
        with self._lock:
            study = self._studies[study_id]
            trials = sorted(
                (t for t in study.trials.values() if states is None or t.state in states),
                key=lambda t: t.number,
            )
            trials = copy.deepcopy(trials) if deepcopy else trials
        with self._own_lock:
            pending = {i: o.pending for i, o in self._own.items() if o.pending}
        return with_pending_writes(trials, pending)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        """Optuna's refresh of the study's trials, except that the trials this process
        ended since are taken as it stored them instead of being loaded again (a trial's
        load is six queries; on one worker, it is the only trial each refresh loads)."""
        with self._own_lock:
            ended = self._ended_views.pop(study_id, {})
        if not ended:
            super()._read_trials_from_remote_storage(study_id)
            return
        backend = self._backend
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            study = self._studies[study_id]
            ids = self._rdb._call_with_retry(
                "get_all_trials",
                lambda: trial_ids_to_read(
                    backend, study_id, study.unfinished_trial_ids, study.last_finished_trial_id
                ),
            )
            load = {i for i in ids if i not in ended}
            # Also every trial created since ``ids`` was read, as Optuna's read would.
            trials = backend._get_trials(study_id, None, load, max(ids, default=-1)) if load else []
            trials = sorted([*trials, *ended.values()], key=lambda t: t._trial_id)
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:  # Optuna's bookkeeping, as in its own refresh
                if not trial.state.is_finished():
                    study.unfinished_trial_ids.add(trial._trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
                study.unfinished_trial_ids.discard(trial._trial_id)

    def hold_reads(self, study_id: int) -> None:
        """Let the next reads of the study's trials reuse the last one, until this
        process publishes or ends a trial or :meth:`refresh` is called."""
        with self._own_lock:
            self._held.add(study_id)

    def refresh(self, study_id: int) -> None:
        """Make the next read of the study's trials a read of the database."""
        with self._own_lock:
            self._held.discard(study_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.monotonic()
        with self._own_lock:
            last = self._stale_checked_at.get(study_id)
            if last is not None and now - last < STALE_CHECK_EVERY_S:
                return []
            self._stale_checked_at[study_id] = now
        return self._backend._get_stale_trial_ids(study_id)


def worker_cached_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The storage a worker's study should use: :class:`WorkerCachedStorage` in front of
    nas-study's RDB storage; nas-study's gRPC client as a worker's client, keeping the
    writes of the trials it declares (:mod:`storage._grpc.worker_client`); else ``storage``."""
    if isinstance(storage, RetryingRDBStorage):
        return WorkerCachedStorage(storage)
    if isinstance(storage, optuna.storages.GrpcStorageProxy):
        from storage._grpc.worker_client import BufferingGrpcProxy  # imports grpc, installed here

        if isinstance(storage, BufferingGrpcProxy):
            return storage.keep_trial_writes()
    return storage
