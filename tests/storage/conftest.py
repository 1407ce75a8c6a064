"""Fixtures of the storage tests: the real PostgreSQL and MariaDB servers, free ports, polling."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest
from optuna.storages import RDBStorage

from storage import DEFAULT_HEARTBEAT, HeartbeatSettings, StorageError, open_storage, trial_writer
from tests.conftest import POSTGRES_URL

#: The MariaDB server of this machine; a database ``test`` that root may use without password.
MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.05)  # pacing between polls, not synchronisation


def open_when_answering(
    url: str,
    server: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    **kwargs: Any,
) -> optuna.storages.BaseStorage:
    """``open_storage(url, **kwargs)`` once the proxy at ``url`` answers, polled for up to
    60 s; fails at once, with ``log``, if the proxy's process ``server`` has exited."""
    opened: list[optuna.storages.BaseStorage] = []

    def answers() -> bool:
        if server is not None:
            assert server.poll() is None, log.read_text() if log is not None else server.args
        try:
            opened.append(open_storage(url, **kwargs))
        except StorageError:
            return False
        return True

    wait_until(answers, timeout=60, what=f"the proxy at {url}")
    return opened[0]


def delete_study_if_present(url: str, name: str) -> None:
    """Delete study ``name`` unless it is gone (another test run may clean up too)."""
    storage = open_storage(url, heartbeat=None)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)


@pytest.fixture
def postgres_url(unique_name: str) -> Iterator[str]:
    """The real PostgreSQL server; the test's ``unique_name`` study is deleted afterwards."""
    yield POSTGRES_URL
    delete_study_if_present(POSTGRES_URL, unique_name)


@pytest.fixture
def postgres_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A separate autocommit connection, for pg_stat_activity and pg_terminate_backend."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app_name() -> str:
    """An ``application_name`` that marks only this test's PostgreSQL connections."""
    return f"pytest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_rdb(url: str, *, heartbeat: HeartbeatSettings | None = DEFAULT_HEARTBEAT) -> RDBStorage:
    """``open_storage`` for a database URL, typed as the ``RDBStorage`` it returns."""
    storage = open_storage(url, heartbeat=heartbeat)
    assert isinstance(storage, RDBStorage)
    return storage


class TcpRelay:
    """A real TCP relay in front of a server, which a test can take down and bring back:
    an outage of the database as its clients see it, without touching the server."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target = target
        self.port = port
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The PostgreSQL URL through the relay."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a crashed server does."""
        with self._lock:
            if self._listener is not None:
                # close() alone leaves a blocked accept() listening on Linux; shutdown wakes it.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            server = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(free_port: int) -> Iterator[TcpRelay]:
    """A running :class:`TcpRelay` in front of the real PostgreSQL server."""
    r = TcpRelay(("127.0.0.1", 5432), free_port)
    r.start()
    yield r
    r.stop()


def worker_trial(study: optuna.Study) -> optuna.trial.Trial:
    """``study.ask()`` as a worker asks: its storage keeps the trial's writes until they
    are published, reported or ended (``TrialWriter.keep_writes``)."""
    trial = study.ask()
    trial_writer(study._storage).keep_writes(trial._trial_id)
    return trial


def publish(trial: optuna.trial.Trial) -> None:
    """Store the kept writes of ``trial`` now (``TrialWriter.publish``)."""
    trial_writer(trial.study._storage).publish(trial._trial_id)
