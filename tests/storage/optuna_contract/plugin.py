"""A pytest plugin that runs Optuna's own storage tests, unchanged, on nas-study's storages.

``python -m pytest -p tests.storage.optuna_contract.plugin OPTUNA_SDIST/tests/storages_tests``
with ``NAS_STUDY_CONTRACT_BACKEND`` set to ``sqlite`` or a PostgreSQL URL (and, for
``test_with_server.py``, ``NAS_STUDY_CONTRACT_FRONT`` set to one of :data:`kinds.MODES`).

Only how storages are made is swapped; every test body stays Optuna's. The patches, each
with its reason:

* ``optuna.testing.storages.StorageSupplier``, ``STORAGE_MODES`` and
  ``STORAGE_MODES_HEARTBEAT``: ``test_storages.py`` and ``test_heartbeat.py`` build their
  storages with them (patched before the test modules import them);
* ``test_cached_storage.RDBStorage`` and ``._CachedStorage``: that file builds Optuna's
  ``RDBStorage`` and puts Optuna's cache in front of it; here ``open_storage``'s storage
  and the worker's trial cache;
* ``test_with_server.get_storage``: that file opens ``TEST_DB_URL`` with Optuna's
  ``RDBStorage`` (and skips without it); here the kind named by ``NAS_STUDY_CONTRACT_FRONT``;
* ``test_heartbeat.RDBStorage`` inside ``run_fail_stale_trials`` (a second process opening
  the same URL): ``open_storage``'s storage.

:data:`DESELECTED` lists the tests that cannot apply to nas-study's storages, with the
reason for each; nothing else is left out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import optuna
import optuna.testing.storages as optuna_testing_storages
import pytest

from storage import open_storage, worker_cached_storage
from tests.storage.optuna_contract import kinds

#: Tests that cannot apply to nas-study's storages: node id suffix -> reason.
DESELECTED: dict[str, str] = {
    # Optuna's storage factory, and in-memory, journal and Redis storages, are not
    # nas-study storage kinds: these tests name those classes or modes directly.
    "test_storages.py::test_get_storage": "tests optuna.storages.get_storage, Optuna's factory",
    "test_grpc.py": "tests Optuna's own gRPC server object in-process (a journal file behind it)",
    "test_callbacks.py": "tests Optuna's callback classes on an in-memory storage",
}
#: Tests that cannot apply to one kind: (node id suffix, kind) -> reason.
DESELECTED_FOR_KIND: dict[tuple[str, str], str] = {
    (k, front): (
        "forks worker processes after this process opened a gRPC channel, which gRPC "
        "does not support (Optuna runs this file on RDB storages only)"
    )
    for k in ("test_with_server.py::test_multiprocess_run_optimize",)
    for front in ("grpc", "grpc_worker")
}

_FRONT_DEFAULT = "sqlite"


def pytest_configure(config: pytest.Config) -> None:
    # Before the test modules import them (they do so at collection).
    optuna_testing_storages.StorageSupplier = kinds.NasStorageSupplier  # type: ignore[misc,assignment]
    optuna_testing_storages.STORAGE_MODES = list(kinds.MODES)
    optuna_testing_storages.STORAGE_MODES_HEARTBEAT = list(kinds.HEARTBEAT_MODES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    front = os.environ.get(kinds.FRONT_ENV, _FRONT_DEFAULT)
    for item in items:
        node = item.nodeid.split("storages_tests/")[-1]
        if any(node.startswith(k) for k in DESELECTED) or any(
            node.startswith(k) and kind == front for k, kind in DESELECTED_FOR_KIND
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_unconfigure(config: pytest.Config) -> None:
    kinds.this_backend().close()


class _IsRDBStorage(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, optuna.storages.RDBStorage)


class NasRDBStorage(metaclass=_IsRDBStorage):
    """``RDBStorage(url)`` as the test files call it: ``open_storage`` on that URL (the
    ``sqlite:///:memory:`` default becomes this run's database); ``isinstance`` checks
    against it are checks against ``RDBStorage``."""

    def __new__(cls, url: str = "", **kwargs: Any) -> Any:
        heartbeat = kinds.heartbeat_settings(kwargs)
        target = kinds.this_backend().url if url in ("", "sqlite:///:memory:") else url
        return open_storage(target, heartbeat=heartbeat)


@contextlib.contextmanager
def _get_storage() -> Iterator[optuna.storages.BaseStorage]:
    with kinds.supplied(os.environ.get(kinds.FRONT_ENV, _FRONT_DEFAULT)) as storage:
        yield storage


@pytest.fixture(autouse=True)
def _nas_study_storages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds.this_backend().clear()  # each test starts from an empty storage, as Optuna's do
    module = request.module
    name = module.__name__.rsplit(".", 1)[-1]
    if name == "test_cached_storage":
        monkeypatch.setattr(module, "RDBStorage", NasRDBStorage)
        monkeypatch.setattr(module, "_CachedStorage", worker_cached_storage)
    elif name == "test_with_server":
        monkeypatch.setattr(module, "get_storage", _get_storage)
    elif name == "test_heartbeat":
        monkeypatch.setattr(module, "RDBStorage", NasRDBStorage)
