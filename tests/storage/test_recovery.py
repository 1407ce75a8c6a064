"""Zombies, outages and exactly-once writes on real databases.

Outages are real: a TCP relay in front of the real PostgreSQL server is taken down and
brought back (the server itself keeps running for the other tests). Time passing beyond a
grace period is simulated by ageing the trial's stored start, never by sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import optuna
import pytest
import sqlalchemy
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from storage import (
    HeartbeatSettings,
    StorageError,
    StorageUnavailableError,
    open_storage,
    worker_cached_storage,
)
from tests.storage.conftest import TcpRelay, open_rdb

GRACE = 3600
LONG = HeartbeatSettings(interval=60, grace_period=GRACE, max_retry=1)
SPACE: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}


def _age_first_beat(storage: RDBStorage, trial_id: int, seconds: float) -> None:
    """Move the trial's only heartbeat ``seconds`` into the past, as if it were that old."""
    beats = sqlalchemy.table(
        "trial_heartbeats",
        sqlalchemy.column("trial_id"),
        sqlalchemy.column("heartbeat", sqlalchemy.DateTime),
    )
    with storage.engine.begin() as conn:
        beat = conn.execute(
            sqlalchemy.select(beats.c.heartbeat).where(beats.c.trial_id == trial_id)
        ).scalar_one()
        conn.execute(
            beats.update()
            .where(beats.c.trial_id == trial_id)
            .values(heartbeat=beat - timedelta(seconds=seconds))
        )


def test_a_workers_trial_that_never_beat_is_declared_dead_a_grace_period_after_its_start(
    storage_url: str, unique_name: str
) -> None:
    # A worker killed between creating its trial and its heartbeat thread's first beat:
    # the trial beats from the transaction that created it, so Optuna's rule finds it.
    storage = open_rdb(storage_url, heartbeat=LONG)
    worker = optuna.create_study(storage=worker_cached_storage(storage), study_name=unique_name)
    zombie = worker.ask(SPACE)
    # Another process checks (the worker's own storage checks at most once a second).
    study = optuna.load_study(study_name=unique_name, storage=storage)

    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # just started
    _age_first_beat(storage, zombie._trial_id, GRACE / 2)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # half a grace period
    _age_first_beat(storage, zombie._trial_id, GRACE)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL
    copies = study.get_trials(states=(TrialState.WAITING,))
    assert [c.params for c in copies] == [study.trials[0].params]
    assert copies[0].system_attrs["failed_trial"] == zombie.number


def test_a_plain_optuna_trial_that_never_beat_is_left_running(
    storage_url: str, unique_name: str
) -> None:
    # A plain Optuna ask/tell process sharing the study beats never: Optuna's rule leaves
    # its trial alone, and so does nas-study, so its later tell is taken.
    storage = open_rdb(storage_url, heartbeat=LONG)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    trial = study.ask(SPACE)
    with storage.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE trial_id = :i"),
            {"t": datetime.now() - timedelta(seconds=10 * GRACE), "i": trial._trial_id},
        )
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING
    study.tell(trial, 1.0)
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].system_attrs == {}  # no creation token among them


@pytest.fixture
def lost_answer() -> Iterator[list[bool]]:
    """While the list holds True, the next commit that writes succeeds, but its answer is
    lost as if the connection had dropped just then."""
    armed: list[bool] = []

    def wrote(session: Session, context: object) -> None:
        if armed:
            session.info["wrote"] = True

    def drop_the_answer(session: Session) -> None:
        if session.info.pop("wrote", False) and armed:
            armed.pop()
            raise OperationalError(
                "COMMIT", None, ConnectionError("server closed the connection unexpectedly")
            )

    sqlalchemy.event.listen(Session, "after_flush", wrote)
    sqlalchemy.event.listen(Session, "after_commit", drop_the_answer)
    yield armed
    sqlalchemy.event.remove(Session, "after_commit", drop_the_answer)
    sqlalchemy.event.remove(Session, "after_flush", wrote)


def test_a_retried_write_that_had_committed_is_applied_once(
    storage_url: str,
    unique_name: str,
    lost_answer: list[bool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = open_rdb(storage_url, heartbeat=None)
    study = optuna.create_study(storage=storage, study_name=unique_name)

    lost_answer.append(True)
    with caplog.at_level(logging.INFO, logger="storage"):
        trial = study.ask(SPACE)
    assert not lost_answer  # the commit was cut off, and retried
    assert len(study.trials) == 1  # not two
    assert "had committed before its answer was lost" in caplog.text

    lost_answer.append(True)
    study.tell(trial, 0.5)  # its retry finds the trial COMPLETE, as asked: no error
    assert not lost_answer
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 0.5)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_outage_is_waited_out_with_one_log_line(
    relay: TcpRelay, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_storage(relay.url, heartbeat=None, outage_timeout=60)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    relay.stop()
    # The database comes back in 3 s (the outage being simulated, not a synchronisation).
    threading.Timer(3.0, relay.start).start()
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="storage"):
        study.tell(study.ask(SPACE), 0.25)
        study.tell(study.ask(SPACE), 0.75)
    assert time.monotonic() - began >= 2.5  # it did wait for the relay
    assert [t.value for t in study.trials] == [0.25, 0.75]
    lines = _warnings(caplog)
    assert len(lines) == 1, lines  # one line per outage, not per retry
    assert "retrying for up to 60 s" in lines[0]


def test_an_outage_longer_than_the_timeout_is_one_line(relay: TcpRelay, unique_name: str) -> None:
    storage = open_storage(relay.url, heartbeat=None, outage_timeout=1.5)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    relay.stop()
    try:
        with pytest.raises(StorageError) as err:
            study.ask(SPACE)
    finally:
        relay.start()  # so that the fixtures can delete the study
    message = str(err.value)
    assert "unreachable for 1.5 s (--outage-timeout)" in message and "\n" not in message


def test_at_start_a_worker_waits_for_the_database_and_run_does_not(relay: TcpRelay) -> None:
    relay.stop()
    began = time.monotonic()
    with pytest.raises(StorageUnavailableError) as err:
        open_storage(relay.url, wait=False)  # `run`: a URL that never answered
    assert time.monotonic() - began < 10
    assert f"127.0.0.1:{relay.port}" in str(err.value) and not err.value.answered

    threading.Timer(2.0, relay.start).start()  # the database comes up later
    storage = open_storage(relay.url, wait=True, outage_timeout=60)  # `worker`
    assert isinstance(storage, RDBStorage)
    storage.engine.dispose()
