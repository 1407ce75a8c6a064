"""Workers that are killed, frozen or cut off, behind the gRPC proxy and on PostgreSQL.

Real ``nas-study worker`` and ``serve-storage`` processes, managed by PID; the storage is
polled until a deadline, never slept on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from storage import HeartbeatSettings, open_storage
from studies.run import ADOPTED_ATTR
from tests.conftest import POSTGRES_URL
from tests.studies.run.test_worker import (
    _assert_budget_met_cleanly,
    _finish,
    _freeze_in_mid_trial,
    _study_file,
    _trials,
    _wait,
    _worker,
)


@pytest.fixture
def proxy_url(tmp_path: Path) -> Iterator[str]:
    """``nas-study serve-storage`` in front of PostgreSQL, with the study files' heartbeat
    settings (interval 1 s, grace 3 s); yields its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NAS_STUDY_STORAGE": POSTGRES_URL}
    args = [sys.executable, "-m", "studies", "serve-storage", "--port", str(port)]
    args += ["--heartbeat-interval", "1", "--grace-period", "3"]
    with (tmp_path / "proxy.log").open("wb") as log:
        server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"grpc://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, (tmp_path / "proxy.log").read_text()
        try:
            optuna.get_all_study_summaries(open_storage(url))
        except Exception:
            return False
        return True

    try:
        _wait(up, "the proxy to answer", timeout=180)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _training_trial_of(url: str, name: str, proc: subprocess.Popen[str]) -> FrozenTrial | None:
    """The trial ``proc`` trains, once its parameters are all suggested (``arch`` is set)."""
    tag = f"{socket.gethostname()}:{proc.pid}"
    running = [
        t
        for t in _trials(url, name)
        if t.state == TrialState.RUNNING
        and t.user_attrs.get("worker") == tag
        and "arch" in t.user_attrs
    ]
    return running[0] if running else None


def test_kill_9_behind_the_proxy_still_meets_the_budget_exactly(
    proxy_url: str, tmp_path: Path, unique_name: str
) -> None:
    study = _study_file(tmp_path, unique_name, n_trials=8, epochs=30)
    victim = _worker(proxy_url, study, "--worker-index", "0")
    killed = _freeze_in_mid_trial(proxy_url, unique_name, victim, trained=True)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    # Before this change the killed trial stayed RUNNING forever behind the proxy: the
    # others finished at 7/8 and a later worker ran nothing.
    _finish([_worker(proxy_url, study, "--worker-index", str(i)) for i in (1, 2)])
    trials = _trials(POSTGRES_URL, unique_name)
    _assert_budget_met_cleanly(trials, 8)
    assert trials[killed.number].state == TrialState.FAIL
    copies = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert [c.state for c in copies] == [TrialState.COMPLETE]
    assert copies[0].params == killed.params


@pytest.mark.parametrize("via", ["postgres", "proxy"])
def test_a_frozen_worker_completes_the_copy_of_its_trial_declared_dead(
    via: str, request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> None:
    url = POSTGRES_URL if via == "postgres" else request.getfixturevalue("proxy_url")
    study = _study_file(tmp_path, unique_name, n_trials=1, epochs=1500)
    frozen = _worker(url, study)

    trial = _wait(lambda: _training_trial_of(url, unique_name, frozen), "a training trial")
    assert isinstance(trial, FrozenTrial)
    frozen.send_signal(signal.SIGSTOP)  # a frozen machine: no beats, but not dead
    try:
        checker = optuna.load_study(
            study_name=unique_name,
            # The study file's heartbeat settings: interval 1 s, grace period 3 s.
            storage=open_storage(url, heartbeat=HeartbeatSettings(interval=1, grace_period=3)),
        )

        def declared_dead() -> bool:
            if via == "postgres":  # behind the proxy, the proxy checks by itself
                optuna.storages.fail_stale_trials(checker)
            states = [t.state for t in checker.get_trials()]
            return states[trial.number] == TrialState.FAIL and TrialState.WAITING in states

        _wait(declared_dead, "the frozen worker's trial to be declared dead", timeout=60)
    finally:
        frozen.send_signal(signal.SIGCONT)
    _, err = frozen.communicate(timeout=240)
    assert frozen.returncode == 0, err
    assert "Traceback" not in err
    trials = _trials(POSTGRES_URL, unique_name)
    _assert_budget_met_cleanly(trials, 1)
    (copy,) = [t for t in trials if t.system_attrs.get("failed_trial") == trial.number]
    # Its own worker finished the copy with the training it had done: nothing ran twice.
    assert copy.state == TrialState.COMPLETE and copy.system_attrs.get(ADOPTED_ATTR) is True
    original = trials[trial.number]
    assert original.state == TrialState.FAIL and copy.params == original.params
    assert copy.user_attrs["worker"] == original.user_attrs["worker"]
    assert copy.user_attrs["epochs_run"] == 1500
    assert len(trials) == 2
