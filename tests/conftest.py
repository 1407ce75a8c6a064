"""Shared fixtures: real SQLite files and the real PostgreSQL server on this machine."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import optuna
import pytest

#: The PostgreSQL that .ci/run starts; override with $NAS_STUDY_TEST_POSTGRES.
POSTGRES_URL = os.environ.get(
    "NAS_STUDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests choose their storage explicitly; a developer's own setting must not leak in.
    monkeypatch.delenv("NAS_STUDY_STORAGE", raising=False)
    monkeypatch.setenv("NAS_STUDY_OFFLINE", "1")


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/studies.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A real SQLite file, then the real PostgreSQL server. Use with ``unique_name``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/studies.db"
    else:
        yield POSTGRES_URL


@pytest.fixture
def unique_name() -> Iterator[str]:
    """A study name no other test (or run) uses; that study is removed from PostgreSQL after."""
    name = f"pytest-{uuid.uuid4().hex[:10]}"
    yield name
    from storage import open_storage

    storage = open_storage(POSTGRES_URL, heartbeat=None)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)
