from __future__ import annotations

import socket
import sqlite3
import warnings
from pathlib import Path

import optuna
import pytest

from storage import MultiHostSQLiteWarning, open_storage
from tests.storage.conftest import open_rdb


def _hosts(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT hostname FROM nas_study_hosts").fetchall()
    conn.close()
    return [row[0] for row in rows]


def test_each_machine_is_recorded_once(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultiHostSQLiteWarning)
        open_storage(f"sqlite:///{db}")
        open_storage(f"sqlite:///{db}")  # the same machine again: no warning
    assert _hosts(db) == [socket.gethostname()]


def test_file_used_from_a_second_machine_warns(tmp_path: Path, unique_name: str) -> None:
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    optuna.create_study(storage=open_storage(url), study_name=unique_name)
    # What opening the file on an NFS share from another machine leaves behind.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO nas_study_hosts VALUES ('gpu-node-07', datetime('now', '+1 second'))"
        )
    conn.close()

    with pytest.warns(MultiHostSQLiteWarning) as caught:
        storage = open_storage(url)
    message = str(caught[0].message)
    assert f"SQLite file {db} is used from several machines" in message
    assert f"({socket.gethostname()}, gpu-node-07)" in message
    assert "use PostgreSQL or MySQL for a fleet" in message
    assert caught[0].filename == __file__  # points at the caller of open_storage
    # Our table does not disturb Optuna.
    assert optuna.load_study(study_name=unique_name, storage=storage).study_name == unique_name


def test_in_memory_database_has_no_heartbeat_thread_to_break() -> None:
    # Each thread gets its own in-memory database: heartbeats would write into an empty one.
    storage = open_rdb("sqlite:///:memory:")
    assert storage.get_heartbeat_interval() is None
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2
