"""The worker's trial cache: a trial's writes stored in a few transactions, exactly as
Optuna's one-per-write calls store them, on a real SQLite file, PostgreSQL and MariaDB."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from storage import (
    HeartbeatSettings,
    RequeueStaleTrial,
    open_storage,
    trial_writer,
    worker_cached_storage,
)
from storage._rdb.worker_cache import WorkerCachedStorage
from storage.optuna_compat import (
    fail_and_queue_copy,
    fresh_trials,
    hold_reads,
    release_reads,
    study_id,
    trial_id,
)
from studies.run._lifeline import ADOPTED_ATTR, Lifeline
from tests.conftest import POSTGRES_URL
from tests.storage.conftest import (
    MYSQL_URL,
    delete_study_if_present,
    open_rdb,
    publish,
    worker_trial,
)

#: The creation token: unique per trial, so never equal between two studies.
_TOKEN = "nas_study:create_token"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[str]:
    url = {
        "sqlite": f"sqlite:///{tmp_path}/studies.db",
        "postgresql": POSTGRES_URL,
        "mysql": MYSQL_URL,
    }[request.param]
    yield url
    if request.param != "sqlite":
        for suffix in ("", "-plain"):
            delete_study_if_present(url, unique_name + suffix)


def _worker_study(url: str, name: str, **kwargs: Any) -> optuna.Study:
    storage = worker_cached_storage(open_storage(url, heartbeat=None, **kwargs))
    assert isinstance(storage, WorkerCachedStorage)
    return optuna.create_study(
        storage=storage,
        study_name=name,
        directions=["maximize"],
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def _plain_study(url: str, name: str) -> optuna.Study:
    """The same database through Optuna's own cache: one transaction per write."""
    return optuna.create_study(
        storage=open_storage(url, heartbeat=None),
        study_name=name + "-plain",
        directions=["maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def _a_trial(trial: optuna.trial.Trial, end: str) -> float:
    """Every kind of write a trial makes, in the order a worker makes them."""
    trial_writer(trial.study._storage).keep_writes(trial._trial_id)  # as the worker does
    trial.set_user_attr("worker", "host:1")
    x = trial.suggest_float("x", 1e-4, 1.0, log=True)
    trial.suggest_int("n", 1, 4)
    trial.suggest_categorical("act", ["relu", "gelu"])
    trial.set_user_attr("arch", {"layers": [64, 32], "note": "ünïcode"})
    trial.set_constraint("max_params", -3.0)
    publish(trial)
    for step in range(3):
        trial.report(0.1 * step + x, step)
    trial.set_user_attr("curve", [0.1, 0.2, 0.3])
    trial.set_user_attr("arch", {"layers": [64, 32], "note": "rewritten"})  # a key twice
    if end == "pruned":
        raise optuna.TrialPruned()
    if end == "fail":
        raise RuntimeError("boom")
    return 0.5 + x


def _stored(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "state": trial.state,
        "values": trial.values,
        "params": trial.params,
        "distributions": trial.distributions,
        "user_attrs": trial.user_attrs,
        "system_attrs": {k: v for k, v in trial.system_attrs.items() if k != _TOKEN},
        "intermediate_values": trial.intermediate_values,
        "finished": trial.datetime_complete is not None,
    }


@pytest.mark.parametrize("end", ["complete", "pruned", "fail"])
def test_a_trial_is_stored_as_optunas_own_writes_store_it(
    db_url: str, unique_name: str, end: str
) -> None:
    sides = {
        "worker": _worker_study(db_url, unique_name),
        "plain": _plain_study(db_url, unique_name),
    }
    for study in sides.values():
        study.optimize(lambda t: _a_trial(t, end), n_trials=2, catch=(RuntimeError,))
    # Read back by a third process's view: plain Optuna on the same database.
    reader = open_storage(db_url, heartbeat=None)
    stored = {
        side: [
            _stored(t)
            for t in optuna.load_study(study_name=study.study_name, storage=reader).get_trials(
                deepcopy=False
            )
        ]
        for side, study in sides.items()
    }
    assert stored["worker"] == stored["plain"]
    # The worker's own view of its study (the trials it ended are not loaded again) is the
    # database's, times included.
    mine = sides["worker"].get_trials(deepcopy=False)
    theirs = optuna.load_study(study_name=unique_name, storage=reader).get_trials(deepcopy=False)
    assert [(_stored(t), t.datetime_start, t.datetime_complete) for t in mine] == [
        (_stored(t), t.datetime_start, t.datetime_complete) for t in theirs
    ]
    assert (
        stored["worker"][0]["state"]
        == {
            "complete": TrialState.COMPLETE,
            "pruned": TrialState.PRUNED,
            "fail": TrialState.FAIL,
        }[end]
    )
    assert stored["worker"][0]["params"].keys() == {"x", "n", "act"}
    assert stored["worker"][0]["user_attrs"]["arch"]["note"] == "rewritten"


def _commits(storage: optuna.storages.BaseStorage) -> Callable[[], int]:
    engine = storage._backend.engine  # type: ignore[attr-defined]
    count = [0]

    def on_commit(_conn: Any) -> None:
        count[0] += 1

    sqlalchemy.event.listen(engine, "commit", on_commit)
    return lambda: count[0]


def test_writes_wait_for_publish_a_report_or_the_end_in_one_transaction_each(
    sqlite_url: str, unique_name: str
) -> None:
    study = _worker_study(sqlite_url, unique_name)
    commits = _commits(study._storage)
    reader = open_storage(sqlite_url, heartbeat=None)

    def stored() -> FrozenTrial:
        return reader.get_trial(trial_id(trial))

    trial = worker_trial(study)
    created = commits()
    trial.set_user_attr("worker", "w")
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_int("n", 1, 4)
    assert stored().params == {} and stored().user_attrs == {}
    assert commits() == created
    publish(trial)
    assert stored().params == trial.params and stored().user_attrs == {"worker": "w"}
    assert commits() == created + 1
    trial.set_user_attr("curve", [0.5])
    trial.report(0.5, 0)  # another worker's pruner reads intermediate values: stored now
    assert stored().intermediate_values == {0: 0.5}
    assert stored().user_attrs["curve"] == [0.5]
    assert commits() == created + 2
    trial.set_user_attr("epochs_run", 1)
    # What study.tell stores the result with (its own reads of the trial aside).
    assert study._storage.set_trial_state_values(trial_id(trial), TrialState.COMPLETE, [0.5])
    assert stored().state == TrialState.COMPLETE and stored().user_attrs["epochs_run"] == 1
    assert commits() == created + 3


def test_a_write_to_a_trial_declared_dead_raises_and_stores_nothing(
    storage_url: str, unique_name: str
) -> None:
    a_write_to_a_dead_trial_raises_and_stores_nothing(
        _worker_study(storage_url, unique_name), storage_url
    )


def a_write_to_a_dead_trial_raises_and_stores_nothing(study: optuna.Study, url: str) -> None:
    """A trial declared dead by another process before its writes were stored: storing
    them raises, and the database holds none of them. Shared with the gRPC proxy's test."""
    trial = worker_trial(study)
    trial.suggest_float("x", 0.0, 1.0)
    other = open_storage(url, heartbeat=None)
    assert other.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        publish(trial)
    assert other.get_trial(trial_id(trial)).params == {}


def test_a_retried_write_that_had_committed_writes_nothing_twice(
    db_url: str, unique_name: str
) -> None:
    study = _worker_study(db_url, unique_name)
    backend = study._storage._backend  # type: ignore[attr-defined]
    trial = worker_trial(study)
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("a", 1)
    pending = study._storage._own[trial_id(trial)].pending  # type: ignore[attr-defined]
    publish(trial)
    # The same writes again, as the retry of a commit whose answer was lost makes them.
    assert backend.write_trial(trial_id(trial), pending)
    assert backend.write_trial(trial_id(trial), pending, TrialState.COMPLETE, [0.25])
    stored = open_storage(db_url, heartbeat=None).get_trial(trial_id(trial))
    assert stored.params == trial.params and stored.user_attrs == {"a": 1}
    assert stored.values == [0.25] and stored.state == TrialState.COMPLETE


def test_a_distribution_the_study_contradicts_is_refused(
    storage_url: str, unique_name: str
) -> None:
    first = _worker_study(storage_url, unique_name)
    first.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    # A second process, whose cache has not seen "x" yet: refused when stored.
    second = _worker_study(storage_url, unique_name)
    trial = worker_trial(second)
    with pytest.raises(ValueError, match="Cannot set different distribution"):
        trial.suggest_categorical("x", ["a", "b"])  # refused at once, as Optuna does
    # In the first process, whose cache knows "x": refused at once too.
    trial = worker_trial(first)
    with pytest.raises(ValueError, match="Cannot set different distribution"):
        trial.suggest_categorical("x", ["a", "b"])


def test_held_reads_are_reused_until_a_fresh_read_or_an_end(
    sqlite_url: str, unique_name: str
) -> None:
    study = _worker_study(sqlite_url, unique_name)
    study.optimize(lambda t: 1.0, n_trials=1)
    assert len(fresh_trials(study)) == 1
    hold_reads(study)  # as the worker loop does after its read
    elsewhere = optuna.load_study(
        study_name=unique_name, storage=open_storage(sqlite_url, heartbeat=None)
    )
    elsewhere.enqueue_trial({})
    assert len(study.get_trials(deepcopy=False)) == 1  # the held read, reused
    assert len(fresh_trials(study)) == 2  # read afresh
    hold_reads(study)
    elsewhere.enqueue_trial({})
    study.optimize(lambda t: 1.0, n_trials=1)  # claims the queued trial it knows, ends it
    # Ending a trial released the hold: this read sees the second queued trial.
    assert [t.state for t in study.get_trials(deepcopy=False)] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.WAITING,
    ]
    hold_reads(study)
    release_reads(study)
    elsewhere.enqueue_trial({})
    assert len(study.get_trials(deepcopy=False)) == 4


def test_the_dead_trials_worker_moves_its_unpublished_writes_to_the_copy(
    storage_url: str, unique_name: str
) -> None:
    heartbeat = HeartbeatSettings(interval=60)
    study = optuna.create_study(
        storage=worker_cached_storage(open_storage(storage_url, heartbeat=heartbeat)),
        study_name=unique_name,
        directions=["maximize"],
    )
    other = moves_unpublished_writes_to_the_copy(study, storage_url)
    with contextlib.suppress(Exception):
        other.remove_session()


def moves_unpublished_writes_to_the_copy(study: optuna.Study, storage_url: str) -> RDBStorage:
    """A trial declared dead (by another process) before any of its writes was stored:
    the worker's lifeline takes its queued copy over and stores them there; returns the
    other process's storage. Shared with the same test through the gRPC proxy."""
    live = study.ask()
    lifeline = Lifeline(live)
    lifeline.suggest_float("x", 0.0, 1.0)
    lifeline.suggest_int("n", 1, 4)
    lifeline.set_user_attr("arch", "mlp")
    lifeline.set_constraint("max_params", -1.0)
    # Declared dead (by another process) before anything of it was stored: its copy was
    # queued without parameters.
    other = open_rdb(storage_url, heartbeat=None)
    dead = other.get_trial(trial_id(live))
    assert dead.params == {}
    assert fail_and_queue_copy(
        other, study_id(study), dead._trial_id, RequeueStaleTrial(None).copy_of(dead)
    )
    lifeline.publish()  # finds the trial dead, takes over the copy, stores there
    assert lifeline.trial_id != dead._trial_id
    copy = other.get_trial(lifeline.trial_id)
    assert copy.state == TrialState.RUNNING
    assert copy.params == live.params and set(copy.params) == {"x", "n"}
    assert copy.user_attrs["arch"] == "mlp"
    assert copy.system_attrs[ADOPTED_ATTR] is True
    assert copy.system_attrs["constraints:max_params"] == -1.0
    study.tell(live, 0.75)  # the live trial writes to the copy now
    lifeline.close()
    stored = other.get_trial(lifeline.trial_id)
    assert stored.state == TrialState.COMPLETE and stored.values == [0.75]
    assert stored.params == copy.params
    return other
