from __future__ import annotations

import logging
from collections.abc import Iterator

import optuna
import psycopg
import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from storage import open_storage
from storage._engine import transient_cause
from tests.conftest import POSTGRES_URL
from tests.storage.conftest import wait_until

PASSWORD = "hunter2pw"  # PostgreSQL trusts local connections, so any password is accepted


def _url(app_name: str, password: str | None = None) -> str:
    auth = f"postgres:{password}" if password else "postgres"
    return f"postgresql://{auth}@127.0.0.1:5432/test?application_name={app_name}"


def _backends(admin: psycopg.Connection[tuple[object, ...]], app_name: str) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND application_name = %s",
        (app_name,),
    ).fetchall()
    return [int(pid) for (pid,) in rows]  # type: ignore[call-overload]


def _terminate(admin: psycopg.Connection[tuple[object, ...]], pids: list[int]) -> None:
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wait_until(
        lambda: not set(pids) & set(_all_backends(admin)),
        timeout=10,
        what=f"backends {pids} to exit",
    )


def _all_backends(admin: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    return [int(pid) for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity").fetchall()]  # type: ignore[call-overload]


def _kill_before_next_statement(
    storage: optuna.storages.BaseStorage, admin: psycopg.Connection[tuple[object, ...]]
) -> list[int]:
    """Terminate the backend of the storage's next statement, once; returns its pid, then.

    pool_pre_ping replaces connections that died while idle; this kills one after the
    check, just before a statement runs on it, which only a retry survives.
    """
    assert isinstance(storage, optuna.storages.RDBStorage)
    killed: list[int] = []

    @sqlalchemy.event.listens_for(storage.engine, "before_cursor_execute")
    def kill_once(conn: sqlalchemy.Connection, *args: object) -> None:
        if not killed:
            killed.append(conn.connection.dbapi_connection.info.backend_pid)  # type: ignore[union-attr]
            _terminate(admin, killed)

    return killed


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="storage"):
        yield caplog


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "transient database error" in r.getMessage()]


def test_terminated_pool_connections_do_not_break_the_next_calls(
    postgres_url: str,
    unique_name: str,
    app_name: str,
    postgres_admin: psycopg.Connection[tuple[object, ...]],
) -> None:
    storage = open_storage(_url(app_name), heartbeat=None)  # ask/tell, not optimize
    study = optuna.create_study(storage=storage, study_name=unique_name)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)

    killed = postgres_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'test' "
        "AND pid <> pg_backend_pid() AND application_name = %s",
        (app_name,),
    ).fetchall()
    assert killed and all(ok for (ok,) in killed)
    wait_until(lambda: not _backends(postgres_admin, app_name), timeout=10, what="backends exit")

    # A worker after a database restart: create a trial, report values, read the study.
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 0.5)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].value == 0.5
    assert _backends(postgres_admin, app_name)  # it reconnected


def test_connection_killed_mid_call_is_retried_and_logged_without_password(
    postgres_url: str,
    unique_name: str,
    app_name: str,
    postgres_admin: psycopg.Connection[tuple[object, ...]],
    retry_log: pytest.LogCaptureFixture,
) -> None:
    storage = open_storage(_url(app_name, PASSWORD), heartbeat=None)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    trial = study.ask()
    killed = _kill_before_next_statement(storage, postgres_admin)

    storage.set_trial_user_attr(trial._trial_id, "epoch", 3)

    assert killed
    assert storage.get_trial(trial._trial_id).user_attrs == {"epoch": 3}
    retries = _retries(retry_log)
    assert len(retries) == 1
    assert "set_trial_user_attr" in retries[0] and "retrying for up to 600 s" in retries[0]
    assert "postgres:***@127.0.0.1:5432/test" in retries[0]
    assert PASSWORD not in retry_log.text


@pytest.mark.parametrize("call", ["get_trials", "ask"])
def test_calls_through_optunas_trial_cache_are_retried_too(
    postgres_url: str,
    unique_name: str,
    app_name: str,
    postgres_admin: psycopg.Connection[tuple[object, ...]],
    retry_log: pytest.LogCaptureFixture,
    call: str,
) -> None:
    # A Study puts Optuna's _CachedStorage in front of the RDBStorage, and it calls private
    # methods (_get_trials, _create_new_trial, ...): a dropped connection there must be
    # retried as well, or a worker dies on its next read of the study.
    storage = open_storage(_url(app_name), heartbeat=None)
    study = optuna.create_study(storage=storage, study_name=unique_name)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    killed = _kill_before_next_statement(storage, postgres_admin)

    if call == "get_trials":
        assert len(study.get_trials(deepcopy=False)) == 1
    else:
        study.tell(study.ask(), 0.25)
        assert [t.value for t in study.get_trials()][-1] == 0.25
    assert killed
    assert len(_retries(retry_log)) == 1


def test_a_permanent_error_is_raised_at_once_without_retry(
    postgres_url: str, app_name: str, retry_log: pytest.LogCaptureFixture
) -> None:
    storage = open_storage(_url(app_name))
    with pytest.raises(KeyError):
        storage.get_trial(-1)
    assert _retries(retry_log) == []


def _error_from(url: str, sql: str) -> SQLAlchemyError:
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(sql))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


def test_transient_errors_are_told_from_permanent_ones() -> None:
    pg = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://")
    refused = _error_from(pg.replace(":5432/", ":9/"), "SELECT 1")
    deadlock = _error_from(pg, "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$")
    syntax = _error_from(pg, "SELEKT 1")
    missing = _error_from(pg, "SELECT * FROM no_such_table_here")
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = refused

    assert transient_cause(refused) is refused
    assert transient_cause(deadlock) is deadlock
    assert transient_cause(wrapped) is refused
    assert transient_cause(syntax) is None
    assert transient_cause(missing) is None
    assert transient_cause(ValueError("x")) is None


def test_mysql_connection_killed_mid_call_is_retried(
    unique_name: str, retry_log: pytest.LogCaptureFixture
) -> None:
    import pymysql

    from tests.storage.conftest import MYSQL_URL, delete_study_if_present

    storage = open_storage(MYSQL_URL, heartbeat=None)
    assert isinstance(storage, optuna.storages.RDBStorage)
    try:
        study = optuna.create_study(storage=storage, study_name=unique_name)
        trial = study.ask()
        killed: list[int] = []

        @sqlalchemy.event.listens_for(storage.engine, "before_cursor_execute")
        def kill_once(conn: sqlalchemy.Connection, *args: object) -> None:
            if not killed:
                killed.append(conn.connection.dbapi_connection.thread_id())  # type: ignore[union-attr]
                admin = pymysql.connect(host="127.0.0.1", user="root", database="test")
                with admin, admin.cursor() as cursor:
                    cursor.execute(f"KILL {killed[0]}")

                    def gone() -> bool:
                        cursor.execute(
                            "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s",
                            (killed[0],),
                        )
                        row = cursor.fetchone()
                        return row is not None and row[0] == 0

                    wait_until(gone, timeout=10, what=f"MySQL connection {killed[0]} to end")

        storage.set_trial_user_attr(trial._trial_id, "epoch", 3)
        assert killed
        assert storage.get_trial(trial._trial_id).user_attrs == {"epoch": 3}
        assert len(_retries(retry_log)) == 1
    finally:
        delete_study_if_present(MYSQL_URL, unique_name)
