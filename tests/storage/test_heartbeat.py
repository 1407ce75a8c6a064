from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from storage import DEFAULT_HEARTBEAT, HeartbeatSettings, open_storage
from tests.storage.conftest import open_rdb, wait_until

FAST = HeartbeatSettings(interval=1, grace_period=2, max_retry=1)
SPACE = {"x": FloatDistribution(0, 1), "n": IntDistribution(1, 8)}

# The tests that wait out a grace period do not wait: the grace period is an hour, far longer
# than any step of a test, and "time passes" by making the trial's heartbeat row in the real
# database older. Whether a trial is stale never depends on how fast the machine is.
GRACE = 3600
LONG = HeartbeatSettings(interval=60, grace_period=GRACE, max_retry=1)

_READ_HEARTBEAT = sqlalchemy.text(
    "SELECT heartbeat FROM trial_heartbeats WHERE trial_id = :trial_id"
).columns(heartbeat=sqlalchemy.DateTime)
_WRITE_HEARTBEAT = sqlalchemy.text(
    "UPDATE trial_heartbeats SET heartbeat = :heartbeat WHERE trial_id = :trial_id"
).bindparams(sqlalchemy.bindparam("heartbeat", type_=sqlalchemy.DateTime))


def _age_heartbeat(storage: RDBStorage, trial_id: int, seconds: float) -> None:
    """Move the trial's last heartbeat ``seconds`` into the past, as if no beat came since."""
    with storage.engine.begin() as conn:
        beat = conn.execute(_READ_HEARTBEAT, {"trial_id": trial_id}).scalar_one()
        older = beat - timedelta(seconds=seconds)
        written = conn.execute(_WRITE_HEARTBEAT, {"heartbeat": older, "trial_id": trial_id})
        assert written.rowcount == 1


def _objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1) + trial.suggest_int("n", 1, 8)


def test_open_storage_is_an_rdb_storage_with_optunas_heartbeat(sqlite_url: str) -> None:
    storage = open_rdb(sqlite_url)
    assert is_heartbeat_enabled(storage)
    assert storage.get_heartbeat_interval() == DEFAULT_HEARTBEAT.interval == 60
    assert storage.grace_period is None  # Optuna's own default: 2 * interval
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, RetryHeartbeatStaleTrialCallback)
    assert callback._max_retry == 3

    custom = open_rdb(sqlite_url, heartbeat=HeartbeatSettings(interval=5, grace_period=11))
    assert (custom.get_heartbeat_interval(), custom.grace_period) == (5, 11)
    assert not is_heartbeat_enabled(open_storage(sqlite_url, heartbeat=None))


def test_heartbeats_warn_as_optunas_own_storage_does_and_the_cli_hides_it(
    sqlite_url: str,
) -> None:
    # Optuna's storage contract: heartbeat options raise its ExperimentalWarning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_storage(sqlite_url, heartbeat=FAST)
    experimental = optuna.exceptions.ExperimentalWarning
    assert [w for w in caught if issubclass(w.category, experimental)]
    # The CLI's users cannot act on it: main() filters it out.
    from studies.cli import main

    with warnings.catch_warnings(record=True) as caught:
        main(["studies", "--storage", sqlite_url])
        open_storage(sqlite_url, heartbeat=FAST)
    assert not [w for w in caught if issubclass(w.category, experimental)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 0}, "at least 1 second"),
        ({"interval": 10, "grace_period": 10}, "longer than the interval"),
        ({"max_retry": -1}, "not be negative"),
    ],
)
def test_bad_heartbeat_settings_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HeartbeatSettings(**kwargs)


def test_storage_survives_pickling_with_its_heartbeat(sqlite_url: str, unique_name: str) -> None:
    storage = open_rdb(sqlite_url, heartbeat=FAST)
    optuna.create_study(storage=storage, study_name=unique_name)
    again = pickle.loads(pickle.dumps(storage))
    assert type(again) is type(storage)
    assert again.get_heartbeat_interval() == 1
    assert [s.study_name for s in again.get_all_studies()] == [unique_name]


# study.ask() on a heartbeat storage is what a dead worker leaves behind; Optuna warns about it.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_dead_workers_trial_fails_after_grace_and_a_copy_is_queued(
    storage_url: str, unique_name: str
) -> None:
    # Two studies whose workers die at once: one retried (max_retry=1), one not (0).
    no_retry = HeartbeatSettings(interval=60, grace_period=GRACE, max_retry=0)
    dead_storage = open_rdb(storage_url, heartbeat=LONG)
    names = (unique_name, f"{unique_name}-noretry")
    studies = [optuna.create_study(storage=dead_storage, study_name=name) for name in names]
    survivor = optuna.load_study(
        study_name=names[0], storage=open_storage(storage_url, heartbeat=LONG)
    )
    other = optuna.load_study(
        study_name=names[1], storage=open_storage(storage_url, heartbeat=no_retry)
    )

    dead = []
    for study in studies:
        trial = study.ask(SPACE)
        # The worker records one heartbeat, then dies without another.
        dead_storage.record_heartbeat(trial._trial_id)
        dead.append(trial)

    def states_after_the_check() -> tuple[TrialState, TrialState]:
        fail_stale_trials(survivor)
        fail_stale_trials(other)
        return survivor.trials[0].state, other.trials[0].state

    # Just after the heartbeat, and half a grace period later, the trials are still alive.
    assert states_after_the_check() == (TrialState.RUNNING, TrialState.RUNNING)
    for trial in dead:
        _age_heartbeat(dead_storage, trial._trial_id, GRACE / 2)
    assert states_after_the_check() == (TrialState.RUNNING, TrialState.RUNNING)
    # Past the grace period without another heartbeat, both are stale.
    for trial in dead:
        _age_heartbeat(dead_storage, trial._trial_id, GRACE)
    assert states_after_the_check() == (TrialState.FAIL, TrialState.FAIL)

    original = dead[0]
    waiting = survivor.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].params == original.params
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(waiting[0]) == original.number
    assert other.get_trials(states=(TrialState.WAITING,)) == []  # max_retry=0: no copy

    # The next worker runs the queued copy, with the dead trial's parameters.
    survivor.optimize(_objective, n_trials=1)
    completed = survivor.get_trials(states=(TrialState.COMPLETE,))
    assert [t.params for t in completed] == [original.params]
    optuna.delete_study(study_name=names[1], storage=dead_storage)


_WORKER = textwrap.dedent(
    """
    import sys, threading, optuna
    from storage import HeartbeatSettings, open_storage

    # One heartbeat when the trial starts; the next would come a minute later.
    storage = open_storage(sys.argv[1], heartbeat=HeartbeatSettings(60, 3600, 1))
    study = optuna.load_study(study_name=sys.argv[2], storage=storage)

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        threading.Event().wait()  # trains forever, until killed

    study.optimize(objective, n_trials=1)
    """
)


def test_killed_worker_process_is_detected_and_its_trial_rerun(
    postgres_url: str, unique_name: str, tmp_path: Path
) -> None:
    storage = open_rdb(postgres_url, heartbeat=LONG)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    log = tmp_path / "worker.log"
    with log.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, postgres_url, unique_name], stderr=stderr
        )
    try:

        def training() -> bool:
            assert worker.poll() is None, log.read_text()
            if not study.trials or "x" not in study.trials[0].params:
                return False
            with storage.engine.connect() as conn:
                return bool(
                    conn.execute(
                        sqlalchemy.text(
                            "SELECT count(*) FROM trial_heartbeats h JOIN trials t "
                            "ON h.trial_id = t.trial_id WHERE t.study_id = :s"
                        ),
                        {"s": storage.get_study_id_from_name(unique_name)},
                    ).scalar_one()
                )

        wait_until(training, timeout=30, what="the worker to suggest x and record a heartbeat")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    # Its last heartbeat is recent: the trial is not stale yet.
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING
    # A grace period and more without a heartbeat: the killed worker's trial is stale.
    _age_heartbeat(storage, study.trials[0]._trial_id, GRACE + LONG.interval)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL
    # A surviving worker takes the queued copy before asking the sampler for new parameters.
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(study.trials[1]) == 0


def test_beat_log_proves_a_trial_alive_only_without_a_gap_near_the_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from storage import _heartbeat

    clock = {"now": 1000.0}
    monkeypatch.setattr(_heartbeat.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(_heartbeat.time, "time", lambda: clock["now"] + 5e8)
    log = _heartbeat.BeatLog()
    # Grace 120 s, interval 60 s (Optuna's default pair): a gap under 90 s proves it alive.
    alive = lambda trial: log.surely_alive(trial, grace_period=120, interval=60)  # noqa: E731
    assert not alive(7)  # never beat: unknown, so read it
    for _ in range(5):
        log.beat(7)
        clock["now"] += 60
    assert alive(7)  # beats every interval, the last one an interval ago
    clock["now"] += 31  # 91 s since the last beat: too close to the grace period
    assert not alive(7)
    log.beat(7)  # back, but the gap stays in the trial's history (a SIGSTOP, say)
    assert not alive(7)
    log.beat(8)
    assert alive(8)  # another trial is unaffected
