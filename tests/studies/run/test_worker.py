"""Many worker processes on one study, against the real PostgreSQL server and SQLite files.

Workers are real ``nas-study worker`` processes, started and stopped by PID. Nothing waits
on a fixed sleep: tests poll the storage (or the process) until a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import psycopg
from optuna.trial import FrozenTrial, TrialState

from storage import open_storage
from tests.conftest import POSTGRES_URL

CHEAP_STUDY = """
name = "{name}"
dataset = "digits"
epochs = {epochs}
n_trials = {n_trials}
seed = 3

[model]
depth = [1, 2]
width = [4, 32]

[training]
batch_size = [64, 128]

[sampler]
name = "random"

[heartbeat]
interval = 1
grace_period = 3
max_retry = 3
"""


def _study_file(tmp_path: Path, name: str, *, n_trials: int = 40, epochs: int = 2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(CHEAP_STUDY.format(name=name, n_trials=n_trials, epochs=epochs))
    return path


def _worker(url: str, study: Path, *args: str, command: str = "worker") -> subprocess.Popen[str]:
    env = {**os.environ, "CI": "true", "NAS_STUDY_STORAGE": url, "NAS_STUDY_OFFLINE": "1"}
    return subprocess.Popen(
        # One PyTorch thread per worker: several workers share this machine's 2 cores.
        [sys.executable, "-m", "studies", "-q", command, str(study), "--threads", "1", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(predicate: Callable[[], object], what: str, timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)  # polling interval, not synchronisation: the deadline decides
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 240.0) -> list[str]:
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        errs.append(err)
        assert p.returncode == 0, err
    return errs


def _trials(url: str, name: str) -> list[FrozenTrial]:
    """The study's trials; none while the first worker has not created the study yet."""
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=None))
    except KeyError:
        return []
    return study.get_trials()


def _freeze_in_mid_trial(
    url: str, name: str, proc: subprocess.Popen[str], *, trained: bool = False
) -> FrozenTrial:
    """SIGSTOP ``proc`` while it holds a RUNNING trial and return that trial.

    A trial read as RUNNING may finish before a signal lands (a 30-epoch digits trial takes
    well under a second), so the process is frozen first and the trial read again: a trial
    that is still RUNNING once its worker is stopped can only end through recovery. With
    ``trained``, only a trial whose parameters are all suggested (``arch`` is set) counts.
    """
    tag = f"{socket.gethostname()}:{proc.pid}"

    def held() -> FrozenTrial | None:
        return next(
            (
                t
                for t in _trials(url, name)
                if t.state == TrialState.RUNNING
                and t.user_attrs.get("worker") == tag
                and (not trained or "arch" in t.user_attrs)
            ),
            None,
        )

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if held() is None:
            time.sleep(0.1)  # polling interval, not synchronisation: the deadline decides
            continue
        proc.send_signal(signal.SIGSTOP)
        trial = held()
        if trial is not None:
            return trial
        proc.send_signal(signal.SIGCONT)  # it finished that trial meanwhile: try the next
    raise AssertionError(f"timed out waiting for worker {tag} to hold a RUNNING trial")


def _count(trials: list[FrozenTrial], *states: TrialState) -> int:
    return sum(t.state in states for t in trials)


def _assert_budget_met_cleanly(trials: list[FrozenTrial], budget: int) -> None:
    assert _count(trials, TrialState.COMPLETE, TrialState.PRUNED) == budget
    assert _count(trials, TrialState.RUNNING) == 0
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.values is not None and len(t.values) == 2
    # A re-queued copy ran at most once: no original trial has two finished copies.
    origins = [
        t.system_attrs["failed_trial"]
        for t in trials
        if "failed_trial" in t.system_attrs and t.state == TrialState.COMPLETE
    ]
    assert len(origins) == len(set(origins))


def test_four_workers_meet_the_global_budget_exactly(tmp_path: Path, unique_name: str) -> None:
    study = _study_file(tmp_path, unique_name, n_trials=40, epochs=1)
    procs = [_worker(POSTGRES_URL, study, "--worker-index", str(i)) for i in range(4)]
    _finish(procs)  # every worker exited 0
    trials = _trials(POSTGRES_URL, unique_name)
    _assert_budget_met_cleanly(trials, 40)
    # Trials record the process that ran them: one of these four. How many of the four ran
    # trials is the machine's timing: on a busy machine a worker that is still importing
    # torch when the others have taken the budget finds it met and exits 0 having run none.
    tags = {f"{socket.gethostname()}:{p.pid}" for p in procs}
    ran_in = {t.user_attrs["worker"] for t in trials}
    assert ran_in and ran_in <= tags, (ran_in, tags)


def test_killed_worker_trial_is_failed_and_its_copy_completes(
    tmp_path: Path, unique_name: str
) -> None:
    study = _study_file(tmp_path, unique_name, n_trials=6, epochs=30)
    victim = _worker(POSTGRES_URL, study, "--worker-index", "0")
    killed = _freeze_in_mid_trial(POSTGRES_URL, unique_name, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor = _worker(POSTGRES_URL, study, "--worker-index", "1")

    def copy_of_killed_completed() -> bool:
        trials = _trials(POSTGRES_URL, unique_name)
        state = next(t.state for t in trials if t.number == killed.number)
        copies = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
        return state == TrialState.FAIL and any(c.state == TrialState.COMPLETE for c in copies)

    _wait(copy_of_killed_completed, "the killed trial to fail and its copy to complete")
    _finish([survivor])
    _assert_budget_met_cleanly(_trials(POSTGRES_URL, unique_name), 6)


def test_workers_survive_terminated_database_connections(tmp_path: Path, unique_name: str) -> None:
    study = _study_file(tmp_path, unique_name, n_trials=30, epochs=3)
    procs = [_worker(POSTGRES_URL, study, "--worker-index", str(i)) for i in range(2)]
    _wait(
        lambda: _count(_trials(POSTGRES_URL, unique_name), TrialState.COMPLETE) >= 5,
        "the first trials",
    )
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = 'test' AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    _finish(procs)
    _assert_budget_met_cleanly(_trials(POSTGRES_URL, unique_name), 30)


def test_sigterm_ends_the_worker_with_status_0_and_requeues_its_trial(
    tmp_path: Path, unique_name: str
) -> None:
    study = _study_file(tmp_path, unique_name, n_trials=10, epochs=500)
    proc = _worker(POSTGRES_URL, study)
    _wait(
        lambda: _count(_trials(POSTGRES_URL, unique_name), TrialState.RUNNING) == 1,
        "a running trial",
    )
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 20
    trials = _trials(POSTGRES_URL, unique_name)
    assert _count(trials, TrialState.RUNNING) == 0
    stopped = [t for t in trials if t.user_attrs.get("fail_reason") == "worker stopped"]
    assert len(stopped) == 1 and stopped[0].state == TrialState.FAIL
    copies = [t for t in trials if t.system_attrs.get("failed_trial") == stopped[0].number]
    assert [c.state for c in copies] == [TrialState.WAITING]
    assert copies[0].params == stopped[0].params


def test_two_workers_through_the_grpc_proxy(tmp_path: Path, unique_name: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NAS_STUDY_STORAGE": POSTGRES_URL}
    server = subprocess.Popen(
        [sys.executable, "-m", "studies", "serve-storage", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"grpc://127.0.0.1:{port}"

        def proxy_up() -> bool:
            try:
                optuna.get_all_study_summaries(open_storage(url))
            except Exception:
                return False
            return True

        _wait(proxy_up, "the proxy to answer", timeout=60)
        study = _study_file(tmp_path, unique_name, n_trials=12, epochs=1)
        _finish([_worker(url, study, "--worker-index", str(i)) for i in range(2)])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    # The trials are in PostgreSQL, behind the proxy.
    _assert_budget_met_cleanly(_trials(POSTGRES_URL, unique_name), 12)


def test_two_local_workers_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    study = _study_file(tmp_path, "shared", n_trials=20, epochs=1)
    errs = _finish([_worker(url, study, "--worker-index", str(i)) for i in range(2)])
    assert not any("locked" in e for e in errs)
    _assert_budget_met_cleanly(_trials(url, "shared"), 20)


def test_launch_starts_workers_and_meets_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/launch.db"
    study = _study_file(tmp_path, "launched", n_trials=12, epochs=1)
    env = {**os.environ, "CI": "true", "NAS_STUDY_STORAGE": url, "NAS_STUDY_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "studies", "launch", str(study), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # The launcher exits 0 only if every worker it started exited 0.
    assert proc.returncode == 0, proc.stderr
    (launched,) = [line for line in proc.stderr.splitlines() if line.startswith("launched ")]
    assert launched.startswith("launched 2 workers: pids "), launched
    pids = set(launched.removeprefix("launched 2 workers: pids ").split())
    assert len(pids) == 2
    trials = _trials(url, "launched")
    _assert_budget_met_cleanly(trials, 12)
    # Every trial ran in a worker the launcher started. How the trials split between them
    # is the machine's timing, not a guarantee: on a busy machine the first worker can
    # finish all 12 one-epoch trials before the second has imported torch, and the second
    # then finds the budget met and exits 0.
    ran_in = {t.user_attrs["worker"].rpartition(":")[2] for t in trials}
    assert ran_in and ran_in <= pids, (ran_in, pids)


def test_password_never_shows_in_worker_output(tmp_path: Path, unique_name: str) -> None:
    # The server trusts local connections, so any password is accepted and must stay hidden.
    url = "postgresql://postgres:Sekr3tPassw0rd@127.0.0.1:5432/test"
    study = _study_file(tmp_path, unique_name, n_trials=2, epochs=1)
    env = {**os.environ, "CI": "true", "NAS_STUDY_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "studies", "-v", "run", str(study), "--storage", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "127.0.0.1" in proc.stderr  # the URL is shown...
    assert "Sekr3tPassw0rd" not in proc.stdout + proc.stderr  # ...without its password


def test_first_signal_asks_to_stop_and_a_second_exits_at_once() -> None:
    # The real handlers, in a real process signalling itself: Python runs a handler before
    # the next statement, so the order is deterministic.
    code = """
import os, signal, sys
from studies import stop_on_signals
with stop_on_signals() as stop:
    os.kill(os.getpid(), signal.SIGTERM)
    print("stop requested:", stop.is_set(), flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    print("still running", flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "stop requested: True\n"
    assert proc.returncode == 128 + signal.SIGINT
