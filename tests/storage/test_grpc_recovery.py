"""Heartbeats, stale trials and outages behind ``serve_storage``: real proxy processes in
front of the real PostgreSQL server, killed and restarted by PID."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from storage import worker_cached_storage
from storage._grpc.client import HeartbeatGrpcProxy
from storage.optuna_compat import heartbeat_thread, is_heartbeat_enabled
from tests.conftest import POSTGRES_URL
from tests.storage.conftest import open_when_answering, wait_until

SPACE: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}


class Proxy:
    """``nas-study serve-storage`` on one port, in a subprocess that can be killed."""

    def __init__(self, port: int, log: Path, *, grace_period: int = 3) -> None:
        self.port = port
        self.log = log
        self.grace_period = grace_period
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [sys.executable, "-m", "studies", "serve-storage", "--port", str(self.port)]
        args += ["--heartbeat-interval", "1", "--grace-period", str(self.grace_period)]
        args += ["--max-retry", "2"]
        env = {**os.environ, "NAS_STUDY_STORAGE": POSTGRES_URL}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stderr=out)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def proxy(free_port: int, tmp_path: Path, unique_name: str) -> Iterator[Proxy]:
    p = Proxy(free_port, tmp_path / "proxy.log")
    p.start()
    yield p
    p.stop()
    from tests.storage.conftest import delete_study_if_present

    delete_study_if_present(POSTGRES_URL, unique_name)


def _client(proxy: Proxy) -> optuna.storages.BaseStorage:
    assert proxy.proc is not None
    return open_when_answering(proxy.url, proxy.proc, proxy.log, outage_timeout=60)


def test_workers_beat_through_the_proxy_which_fails_the_dead_and_queues_copies(
    proxy: Proxy, unique_name: str
) -> None:
    # A worker's client: its trials beat from the transaction that creates them.
    client = worker_cached_storage(_client(proxy))
    assert is_heartbeat_enabled(client)
    assert isinstance(client, HeartbeatGrpcProxy) and client.get_heartbeat_interval() == 1
    study = optuna.create_study(storage=client, study_name=unique_name)
    alive = study.ask(SPACE)
    beating = heartbeat_thread(alive._trial_id, client)
    beating.start()
    # A worker killed after creating its trial, before its first beat: a zombie, unless
    # the trial beat from its creation on.
    zombie = study.ask(SPACE)
    try:

        def copy_queued() -> bool:
            states = {t.number: t.state for t in study.get_trials()}
            return states[zombie.number] == TrialState.FAIL and TrialState.WAITING in (
                states.values()
            )

        wait_until(copy_queued, timeout=30, what="the proxy to fail the zombie and queue a copy")
        # The beating trial outlived the zombie's grace period: its beats reached the proxy.
        assert study.trials[alive.number].state == TrialState.RUNNING
    finally:
        beating.join()
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [study.trials[zombie.number].params]
    assert waiting[0].system_attrs["failed_trial"] == zombie.number


def test_a_proxy_restart_is_waited_out_with_one_log_line(
    free_port: int, tmp_path: Path, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A grace period well past the restart: this test is about the outage, not staleness,
    # and a loaded machine can take seconds to start the new proxy and reach it again.
    proxy = Proxy(free_port, tmp_path / "proxy.log", grace_period=30)
    proxy.start()
    try:
        _restart_is_waited_out(proxy, unique_name, caplog)
    finally:
        proxy.stop()
        from tests.storage.conftest import delete_study_if_present

        delete_study_if_present(POSTGRES_URL, unique_name)


def _restart_is_waited_out(
    proxy: Proxy, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(proxy)
    study = optuna.create_study(storage=client, study_name=unique_name)
    study.tell(study.ask(SPACE), 0.5)
    pending = study.ask()  # created through the proxy that is about to die
    beating = heartbeat_thread(pending._trial_id, client)
    beating.start()
    proxy.kill()
    threading.Timer(2.0, proxy.start).start()  # the restart being simulated
    try:
        with caplog.at_level(logging.WARNING, logger="storage"):
            # The new proxy takes parameters for a trial it never saw (Optuna's cache does not).
            pending.suggest_float("x", 0, 1)
            study.tell(pending, 0.25)
    finally:
        beating.join()
    assert [t.value for t in study.trials] == [0.5, 0.25]  # no duplicate trial either
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "retrying for up to 60 s" in lines[0], lines


def test_an_unreachable_proxy_is_one_line_and_exit_2_for_run_and_worker(
    free_port: int, tmp_path: Path
) -> None:
    env = {**os.environ, "NAS_STUDY_STORAGE": f"grpc://127.0.0.1:{free_port}", "CI": "true"}
    for command in (["run"], ["worker", "--outage-timeout", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "studies", *command[:1], "digits-mlp", *command[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        # `run` fails at once; a worker first says (once) that it waits.
        assert len(lines) == (1 if command == ["run"] else 2), done.stderr
        assert lines[-1].startswith("nas-study: error: cannot reach the gRPC storage proxy")
        assert f"127.0.0.1:{free_port}" in lines[-1] and "Traceback" not in done.stderr


def test_outage_timeout_must_be_a_positive_number() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "studies", "worker", "digits-mlp", "--outage-timeout", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--outage-timeout" in done.stderr and "Traceback" not in done.stderr
