from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest

from storage import StorageError, StorageURLError, check_storage, open_storage, parse_storage_url


def test_storage_persists_studies_across_connections(storage_url: str, unique_name: str) -> None:
    first = optuna.create_study(storage=open_storage(storage_url), study_name=unique_name)
    first.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = optuna.load_study(study_name=unique_name, storage=open_storage(storage_url))
    assert len(again.trials) == 3
    assert [t.params for t in again.trials] == [t.params for t in first.trials]


def test_sqlite_file_is_switched_to_wal(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    open_storage(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_plain_postgresql_url_uses_psycopg3() -> None:
    assert parse_storage_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_storage_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert parse_storage_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "mongodb://h/db", "file:///tmp/x"])
def test_unknown_scheme_is_a_url_error(url: str) -> None:
    with pytest.raises(StorageURLError, match="unknown scheme"):
        open_storage(url)


def test_garbage_url_is_a_url_error() -> None:
    with pytest.raises(StorageURLError, match="not a database URL"):
        open_storage("just some words")


def test_unreachable_database_names_host_port_and_database_but_not_the_password() -> None:
    # Port 9 (discard) has no PostgreSQL on this machine: the connection is refused at once.
    with pytest.raises(StorageError) as err:
        open_storage("postgresql://postgres:hunter2pw@127.0.0.1:9/somedb?connect_timeout=3")
    message = str(err.value)
    assert "127.0.0.1:9" in message and "somedb" in message
    assert "hunter2pw" not in message
    assert "\n" not in message


def test_sqlite_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir/x.db")


def test_mysql_round_trips_a_study(unique_name: str) -> None:
    from tests.storage.conftest import MYSQL_URL, delete_study_if_present

    try:
        storage = open_storage(MYSQL_URL)
        assert isinstance(storage, optuna.storages.RDBStorage)
        study = optuna.create_study(storage=storage, study_name=unique_name, direction="maximize")
        study.optimize(lambda t: t.suggest_int("units", 8, 64, log=True), n_trials=3)
        again = optuna.load_study(study_name=unique_name, storage=open_storage(MYSQL_URL))
        assert [t.params for t in again.trials] == [t.params for t in study.trials]
        assert again.best_value == max(t.params["units"] for t in study.trials)
    finally:
        delete_study_if_present(MYSQL_URL, unique_name)
    assert unique_name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)  # what Python does when it is absent
    with pytest.raises(StorageError, match=r'pip install "nas-study\[mysql\]"'):
        open_storage("mysql://root:hunter2pw@127.0.0.1:3306/test")


def _open_after(barrier: threading.Barrier, url: str) -> str:
    barrier.wait(timeout=60)
    try:
        storage = open_storage(url)
    except StorageError as exc:
        return str(exc)
    assert isinstance(storage, optuna.storages.RDBStorage)
    storage.engine.dispose()
    return "ok"


@pytest.fixture
def new_database_urls(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: psycopg.Connection[Any]
) -> Iterator[list[str]]:
    """Three URLs of databases that do not exist yet (dropped afterwards on PostgreSQL)."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path}/new-{i}.db" for i in range(3)]
        return
    names = [f"pytest_new_{uuid.uuid4().hex[:10]}" for _ in range(3)]
    for name in names:
        postgres_admin.execute(f"CREATE DATABASE {name}")
    try:
        yield [f"postgresql://postgres@127.0.0.1:5432/{name}" for name in names]
    finally:
        for name in names:
            postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("new_database_urls", ["sqlite", "postgresql"], indirect=True)
def test_workers_opening_a_new_database_together_all_succeed(
    new_database_urls: list[str],
) -> None:
    # Each of them creates Optuna's tables at the same moment; the losers of that race must
    # find the winner's tables instead of failing ("already exists", duplicate key).
    n = 4
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(n) as pool:
        for url in new_database_urls:
            barrier = manager.Barrier(n)
            assert pool.starmap(_open_after, [(barrier, url)] * n) == ["ok"] * n
        assert check_storage(url).n_studies == 0
