"""nas-study's storages, built the way Optuna's storage tests build theirs.

Optuna's tests make their storages with ``StorageSupplier(mode, **kwargs)``: a mode names a
kind of storage, and the keyword arguments are ``RDBStorage``'s heartbeat options. Here the
same calls build nas-study's storages instead, on the backend this run is for:

* ``sqlite``: ``open_storage`` (a ``RetryingRDBStorage``) on a database of the backend;
* ``cached_sqlite``: the worker's trial cache (``worker_cached_storage``) in front of it;
* ``grpc``: a real ``nas-study serve-storage`` process in front of the backend, reached
  through nas-study's gRPC client, as a plain client;
* ``grpc_worker``: the same client as a worker opens it (``worker_cached_storage``).

The mode names ``sqlite`` and ``cached_sqlite`` are kept because Optuna's test bodies name
them; on the PostgreSQL backend they are PostgreSQL storages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna

from storage import HeartbeatSettings, StorageError, open_storage, worker_cached_storage

#: Environment variable naming this run's backend: ``sqlite`` or a PostgreSQL URL.
BACKEND_ENV = "NAS_STUDY_CONTRACT_BACKEND"
#: Environment variable naming the kind ``test_with_server.py``'s ``get_storage`` builds.
FRONT_ENV = "NAS_STUDY_CONTRACT_FRONT"

#: Every kind, in the order the runs list them.
MODES = ["sqlite", "cached_sqlite", "grpc", "grpc_worker"]
#: The kinds whose heartbeats the process itself records (through the proxy, the proxy
#: fails stale trials on its own clock, so Optuna's heartbeat tests do not apply).
HEARTBEAT_MODES = ["sqlite", "cached_sqlite"]


def backend_url(backend: str, directory: Path) -> str:
    """The database URL of ``backend`` (``sqlite``: a new file in ``directory``)."""
    if backend == "sqlite":
        fd, path = tempfile.mkstemp(suffix=".db", dir=directory)
        os.close(fd)
        os.unlink(path)  # open_storage creates it
        return f"sqlite:///{path}"
    return backend


def heartbeat_settings(kwargs: dict[str, Any]) -> HeartbeatSettings | None:
    """The heartbeat settings Optuna's ``RDBStorage`` keyword arguments ask for."""
    unknown = set(kwargs) - {"heartbeat_interval", "grace_period", "heartbeat_stale_trial_callback"}
    if unknown:
        raise ValueError(f"no nas-study storage option for {sorted(unknown)}")
    interval = kwargs.get("heartbeat_interval")
    grace = kwargs.get("grace_period")
    callback = kwargs.get("heartbeat_stale_trial_callback")
    if interval is None:
        if grace is not None and grace <= 0:
            raise ValueError(f"grace period must be positive, got {grace}")
        return None
    return HeartbeatSettings(interval=interval, grace_period=grace, stale_trial_callback=callback)


def clear(storage: optuna.storages.BaseStorage) -> None:
    """Delete every study, so each test starts from an empty storage, as Optuna's do."""
    for study in storage.get_all_studies():
        with contextlib.suppress(KeyError):
            storage.delete_study(study._study_id)


class ServeStorage:
    """A real ``nas-study serve-storage`` process in front of ``url``."""

    def __init__(self, url: str, log_dir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"grpc://127.0.0.1:{self.port}"
        self._log = log_dir / f"serve-storage-{self.port}.log"
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "studies",
                    "serve-storage",
                    "--storage",
                    url,
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def client(self) -> optuna.storages.BaseStorage:
        """nas-study's gRPC client of this proxy, once it answers (polled, 60 s at most)."""
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve-storage exited: {self._log.read_text()}")
            try:
                return open_storage(self.url)
            except StorageError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)  # pacing between polls

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


class Backend:
    """This run's backend: its database and, once a gRPC kind asks, one proxy in front of
    it (started once per run: each test then starts from a cleared storage)."""

    def __init__(self, backend: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="nas-contract-"))
        self.backend = backend
        self.url = backend_url(backend, self._dir)
        self._proxy: ServeStorage | None = None
        self._cleaner: optuna.storages.BaseStorage | None = None

    def proxy(self) -> ServeStorage:
        if self._proxy is None:
            self._proxy = ServeStorage(self.url, self._dir)
            self._cleaner = self._proxy.client()
        return self._proxy

    def clear(self) -> None:
        """Delete every study: through the proxy once it runs (so its cache forgets them
        too), else directly."""
        if self._cleaner is None:
            self._cleaner = open_storage(self.url, heartbeat=None)
        clear(self._cleaner)

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()


_backend: Backend | None = None


def this_backend() -> Backend:
    """The run's backend, made on first use (see :data:`BACKEND_ENV`)."""
    global _backend
    if _backend is None:
        _backend = Backend(os.environ.get(BACKEND_ENV, "sqlite"))
    return _backend


def build(mode: str, **kwargs: Any) -> tuple[optuna.storages.BaseStorage, Callable[[], None]]:
    """The storage of kind ``mode`` (see the module docstring) and how to close it."""
    backend = this_backend()
    if mode in ("sqlite", "cached_sqlite"):
        heartbeat = heartbeat_settings(kwargs)
        rdb = open_storage(backend.url, heartbeat=heartbeat)
        storage = worker_cached_storage(rdb) if mode == "cached_sqlite" else rdb
        return storage, rdb.engine.dispose  # type: ignore[attr-defined]
    if mode in ("grpc", "grpc_worker"):
        if kwargs:
            raise ValueError(f"the gRPC proxy takes its heartbeat options itself, not {kwargs}")
        client = backend.proxy().client()
        storage = worker_cached_storage(client) if mode == "grpc_worker" else client
        return storage, client.close  # type: ignore[attr-defined]
    raise ValueError(f"unknown storage kind {mode!r}")


class NasStorageSupplier:
    """``optuna.testing.storages.StorageSupplier``, building nas-study's storages (on a
    storage the run cleared before the test began, as Optuna's are new)."""

    def __init__(self, storage_specifier: str, **kwargs: Any) -> None:
        self.storage_specifier = storage_specifier
        self.extra_args = kwargs
        self._close: Callable[[], None] | None = None

    def __enter__(self) -> Any:
        storage, self._close = build(self.storage_specifier, **self.extra_args)
        return storage

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if self._close is not None:
            self._close()


@contextlib.contextmanager
def supplied(mode: str, **kwargs: Any) -> Iterator[optuna.storages.BaseStorage]:
    """``with supplied(mode) as storage``: one storage of kind ``mode``."""
    with NasStorageSupplier(mode, **kwargs) as storage:
        yield storage
