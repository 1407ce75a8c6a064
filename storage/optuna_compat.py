"""Every use of Optuna's private API, in one module.

Optuna keeps some things nas-study needs behind underscores: a study's storage and id, a
trial's id, the cached trial list, the heartbeat switch and thread, one attempt at creating
a trial, the heartbeat table, the gRPC proxy's server and channel, and its hypervolume
routine. Each
is reached through a function here, so an Optuna release that moves one breaks this module
alone, and ``pyproject.toml`` caps Optuna below the next major version (``optuna>=5.0,<6``).

It lives in ``storage/``, the lowest of the three packages, because both ``storage`` and
``studies`` need it and ``storage`` never imports ``studies``.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Container, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import optuna
import sqlalchemy
from optuna._hypervolume import compute_hypervolume as _compute_hypervolume
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
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


def backend_of(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The storage behind Optuna's cache (which every Study puts in front of an
    RDBStorage), or ``storage`` itself."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


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
    :meth:`WorkerCachedStorage.hold_reads`): the worker loop's, before it asks for a trial."""
    hold = getattr(study._storage, "hold_reads", None)
    if hold is not None:
        hold(study._study_id)


def release_reads(study: optuna.Study) -> None:
    """End :func:`hold_reads`: the study's next read is a read of the database."""
    refresh = getattr(study._storage, "refresh", None)
    if refresh is not None:
        refresh(study._study_id)


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


def set_user_attrs(trial: optuna.trial.Trial, attrs: dict[str, Any]) -> None:
    """Set several user attributes of a live trial: in one transaction where the storage
    has a ``set_trial_user_attrs`` (nas-study's RDB storage: one commit instead of one per
    key), else one by one.

    ``Trial.set_user_attr`` writes through the storage and then into the trial's cached
    frozen copy, which ``trial.user_attrs`` reads; this does both.
    """
    write_all = getattr(trial.storage, "set_trial_user_attrs", None) or getattr(
        backend_of(trial.storage), "set_trial_user_attrs", None
    )
    if write_all is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    write_all(trial._trial_id, attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


@dataclass
class TrialWrites:
    """Writes to one trial, stored together in one transaction by :func:`write_trial`.

    ``params`` maps a name to its internal value, its distribution and the distribution
    the name already has in the study, if known (``None``: the database is asked).
    """

    params: dict[str, tuple[float, BaseDistribution, BaseDistribution | None]] = field(
        default_factory=dict
    )
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.params or self.user_attrs or self.system_attrs or self.intermediate_values)


def write_trial(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    writes: TrialWrites,
    state: TrialState | None = None,
    values: Sequence[float] | None = None,
    completed_at: datetime | None = None,
) -> bool:
    """Store ``writes`` and, unless ``state`` is ``None``, end the trial with ``state`` and
    ``values`` at ``completed_at`` (default: now), in one transaction of a few statements,
    into Optuna's tables as Optuna's own per-call writes would
    (``tests/storage/test_worker_cache.py`` compares the two).

    Optuna's writes take one ORM lookup and one statement per row, each in its own
    transaction: 12 ms for the 20 rows a digits trial writes before it trains, here 2 ms.
    The trial row is locked as ``set_trial_state_values`` locks it, so a process declaring
    the trial dead waits or skips it. Parameters the trial has already are skipped, and
    attributes, intermediate values and values replace theirs, so a retry after a commit
    whose answer was lost writes nothing twice. Raises ``UpdateFinishedTrialError`` as
    Optuna does, writing nothing, for a finished trial; ``ValueError`` for a parameter whose
    distribution the study's earlier trials contradict.
    """
    if state is not None and not state.is_finished():
        raise ValueError(f"write_trial ends a trial; {state.name} is not an end state")
    with _create_scoped_session(storage.scoped_session) as session:
        trial = _models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        storage.check_trial_is_updatable(trial_id, trial.state)
        if writes.params:
            _insert_params(session, trial, writes)
        for model, attrs in (
            (_models.TrialUserAttributeModel, writes.user_attrs),
            (_models.TrialSystemAttributeModel, writes.system_attrs),
        ):
            _replace_rows(
                session,
                model,
                trial_id,
                "key",
                [{"key": k, "value_json": json.dumps(v)} for k, v in attrs.items()],
            )
        stored_repr = _models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
        rows = []
        for step, value in writes.intermediate_values.items():
            stored, kind = stored_repr(value)
            rows.append(
                {"step": step, "intermediate_value": stored, "intermediate_value_type": kind}
            )
        _replace_rows(session, _models.TrialIntermediateValueModel, trial_id, "step", rows)
        if state is not None:
            to_stored = _models.TrialValueModel.value_to_stored_repr
            results = [
                dict(zip(("objective", "value", "value_type"), (i, *to_stored(v)), strict=True))
                for i, v in enumerate(values or ())
            ]
            _replace_rows(session, _models.TrialValueModel, trial_id, "objective", results)
            trial.state = state
            trial.datetime_complete = completed_at or datetime.now()
    return True


def trial_ids_to_read(
    storage: optuna.storages.RDBStorage, study_id: int, unfinished: set[int], after: int
) -> list[int]:
    """The ids of the study's trials that Optuna's cache reads on its next refresh (those in
    ``unfinished``, and every trial above ``after``), without loading them."""
    trials = _models.TrialModel.__table__
    wanted = trials.c.trial_id > after
    if unfinished:
        wanted = sqlalchemy.or_(wanted, trials.c.trial_id.in_(sorted(unfinished)))
    query = sqlalchemy.select(trials.c.trial_id).where(trials.c.study_id == study_id, wanted)
    with storage.engine.connect() as conn:
        return [int(i) for i in conn.execute(query).scalars()]


def _insert_params(session: Any, trial: Any, writes: TrialWrites) -> None:
    """Insert the parameters of ``writes`` the trial does not have yet, each checked
    against the distribution its name has in the study, as Optuna checks it."""
    table = _models.TrialParamModel.__table__
    trials = _models.TrialModel.__table__
    names = list(writes.params)
    have = set(
        session.execute(
            sqlalchemy.select(table.c.param_name).where(
                table.c.trial_id == trial.trial_id, table.c.param_name.in_(names)
            )
        ).scalars()
    )
    unknown = [n for n in names if n not in have and writes.params[n][2] is None]
    known: dict[str, str] = {}
    if unknown:
        # One stored distribution per name, of any trial of the study, as Optuna reads it.
        query = (
            sqlalchemy.select(table.c.param_name, sqlalchemy.func.min(table.c.distribution_json))
            .join(trials, trials.c.trial_id == table.c.trial_id)
            .where(trials.c.study_id == trial.study_id, table.c.param_name.in_(unknown))
            .group_by(table.c.param_name)
        )
        known = {name: text for name, text in session.execute(query)}
    rows = []
    for name in names:
        if name in have:
            continue
        value, dist, previous = writes.params[name]
        if previous is None and name in known:
            previous = optuna.distributions.json_to_distribution(known[name])
        if previous is not None:
            check_distribution_compatibility(previous, dist)
        rows.append(
            {
                "trial_id": trial.trial_id,
                "param_name": name,
                "param_value": value,
                "distribution_json": optuna.distributions.distribution_to_json(dist),
            }
        )
    if rows:
        session.execute(sqlalchemy.insert(table), rows)


def _replace_rows(
    session: Any, model: Any, trial_id: int, key: str, rows: list[dict[str, Any]]
) -> None:
    """Set the trial's rows of ``model`` keyed by ``key`` to ``rows`` (others are kept):
    the upsert of every database, in the transaction that holds the trial row's lock."""
    if not rows:
        return
    table = model.__table__
    column = table.c[key]
    session.execute(
        sqlalchemy.delete(table).where(
            table.c.trial_id == trial_id, column.in_([row[key] for row in rows])
        )
    )
    session.execute(sqlalchemy.insert(table), [{"trial_id": trial_id, **row} for row in rows])


def publish(trial: optuna.trial.Trial) -> None:
    """Store what was written to the live ``trial`` so far, where its storage keeps a
    trial's writes for later (:class:`WorkerCachedStorage`); else they are stored already."""
    store = getattr(trial.storage, "publish", None)
    if store is not None:
        store(trial._trial_id)


def write_user_attrs(
    storage: optuna.storages.RDBStorage, trial_id: int, attrs: dict[str, Any]
) -> None:
    """``set_trial_user_attr`` for each of ``attrs``, in one transaction (Optuna's own
    upsert per key). Raises ``UpdateFinishedTrialError`` as it does, writing nothing."""
    with _create_scoped_session(storage.scoped_session, True) as session:
        for key, value in attrs.items():
            storage._set_trial_attr_without_commit(
                session, _models.TrialUserAttributeModel, trial_id, key, value
            )


def create_trial_once(
    storage: optuna.storages.RDBStorage, study_id: int, template: FrozenTrial
) -> FrozenTrial:
    """One attempt at Optuna's trial-creation transaction, without its own retry loop.

    ``RDBStorage._create_new_trial`` retries a failed commit up to five times by itself; a
    commit that succeeded but whose answer was lost would then leave a second trial.
    """
    with _create_scoped_session(storage.scoped_session) as session:
        # The study row lock numbers trials densely, as in Optuna.
        _models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        row = storage._get_prepared_new_trial(study_id, template, session)
        frozen = copy.deepcopy(template)
        frozen.number = int(row.number)
        frozen.datetime_start = cast(datetime, row.datetime_start)
        frozen._trial_id = int(row.trial_id)
        return frozen


def trial_with_system_attr(
    storage: optuna.storages.RDBStorage, study_id: int, key: str, value: Any
) -> int | None:
    """The id of the study's first trial whose system attribute ``key`` is ``value``."""
    attrs = _models.TrialSystemAttributeModel.__table__
    trials = _models.TrialModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id)
        .join(attrs, attrs.c.trial_id == trials.c.trial_id)
        .where(trials.c.study_id == study_id)
        .where(attrs.c.key == key, attrs.c.value_json == json.dumps(value))
        .order_by(trials.c.trial_id)
        .limit(1)
    )
    with storage.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else int(found)


def running_trial_beats(
    storage: optuna.storages.RDBStorage, study_id: int
) -> tuple[datetime, list[tuple[int, datetime | None, datetime | None]]]:
    """The database's clock and ``(trial_id, datetime_start, last heartbeat or None)`` of
    each RUNNING trial, naive in the database session's time zone as Optuna compares them."""
    trials = _models.TrialModel.__table__
    beats = _models.TrialHeartbeatModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id, trials.c.datetime_start, beats.c.heartbeat)
        .select_from(trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING)
    )
    with storage.engine.connect() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one()
        rows = [(int(r[0]), r[1], r[2]) for r in conn.execute(query)]
    # As Optuna does: PostgreSQL answers with the session's time zone attached.
    return cast(datetime, now).replace(tzinfo=None), rows


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


def proxy_cached_storage(storage: optuna.storages.RDBStorage) -> optuna.storages.BaseStorage:
    """Optuna's trial cache in front of ``storage``, for the gRPC proxy server, which also
    takes parameters for a trial it has not read yet.

    Optuna's ``_CachedStorage.set_trial_param`` raises KeyError for a trial it has not seen;
    behind a proxy that was restarted, that is every trial created through the one before.
    """
    return _ProxyCachedStorage(storage)


class _ProxyCachedStorage(_CachedStorage):
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


#: Least seconds between two stale-trial checks of one study by one worker process. Optuna
#: checks before every trial; a dead trial is found at most this much later.
STALE_CHECK_EVERY_S = 1.0


class _OwnTrial:
    """A trial this process runs: what it knows the stored trial to be (``view``, with its
    own writes applied) and the writes not stored yet (``pending``)."""

    __slots__ = ("pending", "view", "view_is_fresh")

    def __init__(self, view: FrozenTrial | None) -> None:
        self.view = view
        # The view was taken as the trial was created: nobody else can have written yet.
        self.view_is_fresh = view is not None
        self.pending = TrialWrites()


class WorkerCachedStorage(_CachedStorage):
    """Optuna's trial cache in front of a worker's RDB storage, which stores each of the
    worker's trials in three transactions instead of one per write.

    Optuna writes every parameter, attribute and intermediate value of a trial the moment
    it is set: about 16 transactions a trial, each a few SQLAlchemy round trips. Here the
    writes to a trial this process runs (created or claimed from the queue) are kept and
    stored together, in one transaction, when:

    * the trial is published (:meth:`publish`: the objective does so once its
      architecture is sampled and built, before training, so other workers, the dashboard
      and a re-queued copy see its parameters while it trains);
    * it reports an intermediate value (other workers' pruners read those);
    * it ends: its last writes and its state and values go in one transaction.

    A write that finds the trial declared dead raises ``UpdateFinishedTrialError`` there,
    as the write itself would have (the worker's lifeline then moves to the copy).

    Reads:

    * ``get_trial`` of a trial this process runs is answered from what it knows when no
      one can have written to it since (just created, or its heartbeats prove nobody
      declared it dead: ``surely_alive``), else read and merged with the pending writes;
    * the worker loop reads the study before each trial and then holds that read
      (:meth:`hold_reads`): the ask's own reads of the study (the queue of WAITING trials,
      the sampler's) reuse it, until the trial is published or ends, or a read is asked
      to be fresh (:func:`fresh_trials`: the budget rank);
    * stale trials are looked for at most every :data:`STALE_CHECK_EVERY_S` seconds.

    Only for an :class:`~optuna.storages.RDBStorage` with ``write_trial`` (nas-study's
    ``RetryingRDBStorage``); relies on ``_CachedStorage``'s internals (Optuna ``<6``).
    """

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._write_trial = backend.write_trial  # type: ignore[attr-defined]
        self._own: dict[int, _OwnTrial] = {}
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
        frozen = self._backend._create_new_trial(study_id, template_trial)
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            self._add_trials_to_cache(study_id, [frozen])
        if frozen.state == TrialState.RUNNING:
            with self._own_lock:
                self._own[frozen._trial_id] = _OwnTrial(copy.deepcopy(frozen))
        return int(frozen._trial_id)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None or not state.is_finished():
            claimed = self._backend.set_trial_state_values(trial_id, state=state, values=values)
            if claimed and state == TrialState.RUNNING:
                with self._own_lock:
                    self._own[trial_id] = _OwnTrial(None)
            if state.is_finished():
                self._ended(trial_id)
            return claimed
        completed_at = datetime.now()
        try:
            stored = bool(self._write_trial(trial_id, own.pending, state, values, completed_at))
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
            self._held.discard(study_id)

    def publish(self, trial_id: int) -> None:
        """Store the trial's pending writes now, in one transaction; reads of its study are
        fresh again (the trial trains next: what others do meanwhile matters)."""
        self.refresh(self._study_of(trial_id))
        self._store(trial_id, TrialWrites())

    def _store(self, trial_id: int, extra: TrialWrites) -> None:
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None:
            writes = extra
        else:
            writes, own.pending = own.pending, TrialWrites()
            writes.intermediate_values.update(extra.intermediate_values)
        if not writes:
            return
        try:
            self._write_trial(trial_id, writes)
        except UpdateFinishedTrialError:
            with self._own_lock:
                self._own.pop(trial_id, None)  # declared dead: not this process's any more
            raise
        except BaseException:
            if own is not None:  # kept for the next attempt, before the newer writes
                with self._own_lock:
                    newer, own.pending = own.pending, writes
                _merge(own.pending, newer)
            raise
        self._remember_distributions(trial_id, writes)

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
        if previous is not None:  # refused at once, as Optuna would
            check_distribution_compatibility(previous, distribution)
        with self._own_lock:
            own.pending.params[param_name] = (param_value_internal, distribution, previous)
            if own.view is not None:
                own.view.params[param_name] = distribution.to_external_repr(param_value_internal)
                own.view.distributions[param_name] = distribution

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
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
        self._write_trial(trial_id, TrialWrites(user_attrs=dict(attrs)))

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
        if own.view is not None and (own.view_is_fresh or self._surely_alive(trial_id)):
            own.view_is_fresh = False
            return copy.deepcopy(own.view)
        stored = self._backend.get_trial(trial_id)
        if stored.state != TrialState.RUNNING:
            return stored
        with self._own_lock:
            _apply(stored, own.pending)
            own.view = copy.deepcopy(stored)
            own.view_is_fresh = False
        return stored

    def _surely_alive(self, trial_id: int) -> bool:
        if self._backend.get_heartbeat_interval() is None:
            return True  # without heartbeats nothing declares a trial dead
        surely_alive = getattr(self._backend, "surely_alive", None)
        return bool(surely_alive is not None and surely_alive(trial_id))

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
            return copy.deepcopy(trials) if deepcopy else trials

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
            ids = backend._call_with_retry(  # type: ignore[attr-defined]
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


def _apply(trial: FrozenTrial, writes: TrialWrites) -> None:
    """Apply ``writes`` to ``trial``, a copy read from the storage."""
    for name, (value, dist, _) in writes.params.items():
        trial.params[name] = dist.to_external_repr(value)
        trial.distributions[name] = dist
    trial.user_attrs.update(copy.deepcopy(writes.user_attrs))
    trial.system_attrs.update(copy.deepcopy(writes.system_attrs))
    trial.intermediate_values.update(writes.intermediate_values)


def _merge(older: TrialWrites, newer: TrialWrites) -> None:
    """Add ``newer`` to ``older``, the newer write of a key winning."""
    older.params.update(newer.params)
    older.user_attrs.update(newer.user_attrs)
    older.system_attrs.update(newer.system_attrs)
    older.intermediate_values.update(newer.intermediate_values)


def worker_cached_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The storage a worker's study should use: :class:`WorkerCachedStorage` in front of
    nas-study's RDB storage, else ``storage`` itself (Optuna caches what it caches)."""
    if isinstance(storage, optuna.storages.RDBStorage) and hasattr(storage, "write_trial"):
        return WorkerCachedStorage(storage)
    return storage
