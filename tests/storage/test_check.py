from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from storage import (
    StorageError,
    StorageURLError,
    check_storage,
    open_storage,
)


def _versions(url: str) -> list[str]:
    """Optuna's schema revisions, newest first."""
    return optuna.storages.RDBStorage(url, skip_compatibility_check=True).get_all_versions()


def test_fresh_sqlite_file_is_created_at_the_head_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    status = check_storage(url)
    head = _versions(url)[0]
    assert (status.schema_version, status.head_version) == (head, head)
    assert (status.backend, status.needs_upgrade, status.n_studies) == ("sqlite", False, 0)
    assert status.url == url
    assert "up to date" in status.message


def test_existing_database_reports_its_studies(storage_url: str, unique_name: str) -> None:
    optuna.create_study(storage=open_storage(storage_url), study_name=unique_name)
    status = check_storage(storage_url)
    assert status.schema_version == status.head_version
    assert not status.needs_upgrade
    assert status.n_studies >= 1
    assert status.backend == storage_url.split(":", 1)[0]


def test_password_is_masked_in_the_status() -> None:
    # PostgreSQL trusts local connections, so the password is accepted and ignored.
    status = check_storage("postgresql://postgres:hunter2pw@127.0.0.1:5432/test")
    assert status.url == "postgresql://postgres:***@127.0.0.1:5432/test"
    assert "hunter2pw" not in status.message


def _set_revision(db: Path, revision: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()


def test_older_schema_is_reported_with_the_upgrade_command(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    optuna.create_study(storage=open_storage(url), study_name="kept")
    head, older = _versions(url)[:2]
    _set_revision(db, older)

    status = check_storage(url)
    assert (status.schema_version, status.head_version) == (older, head)
    assert status.needs_upgrade
    assert status.n_studies == 1
    assert f"optuna storage upgrade --storage {url}" in status.message

    # Opening it for work fails in one line that says the same, instead of a traceback.
    with pytest.raises(StorageError, match="optuna storage upgrade --storage") as err:
        open_storage(url)
    assert "\n" not in str(err.value)


def test_schema_from_a_newer_optuna_is_not_an_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    url = f"sqlite:///{db}"
    open_storage(url)
    _set_revision(db, "v99.0.0.a")
    status = check_storage(url)
    assert status.schema_version == "v99.0.0.a"
    assert not status.needs_upgrade
    assert "pip install -U optuna" in status.message
    with pytest.raises(StorageError, match="newer optuna"):
        open_storage(url)


def test_checking_a_grpc_proxy_is_a_url_error() -> None:
    with pytest.raises(StorageURLError, match="database behind the gRPC proxy"):
        check_storage("grpc://127.0.0.1:13000")


def test_unreachable_database_is_a_storage_error_without_password() -> None:
    with pytest.raises(StorageError) as err:
        check_storage("postgresql://postgres:hunter2pw@127.0.0.1:9/somedb?connect_timeout=3")
    assert "127.0.0.1:9" in str(err.value) and "hunter2pw" not in str(err.value)
