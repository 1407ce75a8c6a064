"""Optuna's storage contract from the installed wheel (``StorageTestCase``), unchanged, on
nas-study's database storage and the worker's cache in front of it, over SQLite.

The same test case runs on every kind, the gRPC proxy's included, over SQLite and
PostgreSQL, as ``test_storages.py`` of Optuna's source distribution
(``test_optuna_suite.py``); here it runs in-process, where a failure is quickest to read.
"""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from optuna.testing.pytest_storages import StorageTestCase

from tests.storage.optuna_contract import kinds


@pytest.fixture(scope="module", autouse=True)
def _backend() -> Iterator[kinds.Backend]:
    backend = kinds.this_backend()
    yield backend
    backend.close()


@pytest.fixture(params=kinds.HEARTBEAT_MODES)
def storage(request: pytest.FixtureRequest) -> Iterator[optuna.storages.BaseStorage]:
    kinds.this_backend().clear()
    with kinds.supplied(request.param) as supplied:
        yield supplied


class TestNasStudyStorage(StorageTestCase):
    """Every test of Optuna's ``StorageTestCase``, on ``storage`` above."""
