from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from storage import StorageError, StorageURLError, open_storage, parse_storage_url


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
