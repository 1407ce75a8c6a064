"""SQLAlchemy engine settings per database, which driver errors are transient (a new
connection or a second try can cure them), and turning driver errors into ``StorageError``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from storage._errors import StorageError, StorageUnavailableError, first_line
from storage._url import redact_text, redact_url

#: Seconds a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60
#: Seconds to wait for a PostgreSQL or MySQL server to accept a new connection.
CONNECT_TIMEOUT_S = 10
#: Seconds a PostgreSQL session may sit idle inside a transaction (a frozen client) before
#: the server ends it and releases its locks; Optuna's transactions take milliseconds.
IDLE_IN_TRANSACTION_TIMEOUT_S = 10
#: Pooled connections of a worker: its main thread and its heartbeat thread.
WORKER_POOL_SIZE = 2
#: The ``nas-study[...]`` extra that installs each backend's driver.
EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "grpc": "grpc"}


class WalSQLiteConnection(sqlite3.Connection):
    """A SQLite connection with ``synchronous=NORMAL``, the setting SQLite recommends for
    WAL mode (which :func:`~storage._rdb.sqlite.prepare_sqlite_file` switches every file to).

    The default, FULL, syncs the log to disk at every commit: 0.9 ms a commit on this
    project's CI machine against 0.04 ms, and a trial commits about 20 times. In WAL mode
    NORMAL cannot corrupt the file; a commit is lost only if the machine itself loses
    power just after it, never when a worker process is killed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


def engine_kwargs(parsed: URL, *, pool_size: int = WORKER_POOL_SIZE) -> dict[str, Any]:
    """The ``create_engine`` arguments for the database ``parsed`` names.

    PostgreSQL and MySQL connections are checked before each use (``pool_pre_ping``), so one
    the server closed while a trial trained is replaced instead of failing the next call.
    """
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "factory": WalSQLiteConnection}}
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": 2 * pool_size,
        "pool_recycle": 1800,
        "pool_timeout": 30,
    }
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        # Without it, a firewalled host makes psycopg wait for the OS TCP timeout (minutes).
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    if parsed.get_backend_name() == "postgresql" and "options" not in parsed.query:
        # A worker frozen (SIGSTOP, a paused VM) inside a transaction would hold its row
        # locks forever, and the trial row lock blocks whoever declares it dead; the study
        # row lock, every new trial. The server ends such a session instead.
        timeout_ms = IDLE_IN_TRANSACTION_TIMEOUT_S * 1000
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={timeout_ms}"
    if connect_args:
        kwargs["connect_args"] = connect_args
    return kwargs


def missing_module(url: str, backend: str, module: str | None) -> StorageError:
    """The error for a database driver (or grpcio) that is not installed."""
    extra = EXTRAS.get(backend, backend)
    return StorageError(
        f"storage {redact_url(url)}: the module {module!r} is not installed; "
        f'pip install "nas-study[{extra}]"'
    )


@contextmanager
def database_errors(url: str, parsed: URL) -> Iterator[None]:
    """Turn a missing driver or a failed connection into a one-line :class:`StorageError`."""
    try:
        yield
    except ImportError as exc:
        # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError.
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        name = getattr(missing, "name", None) or exc.name
        raise missing_module(url, parsed.get_backend_name(), name) from None
    except (SQLAlchemyError, OSError, optuna.exceptions.StorageInternalError) as exc:
        # Optuna wraps driver errors in StorageInternalError("An exception is raised during
        # the commit..."); the driver's own message says what went wrong.
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.OptunaError) else None
        reason = redact_text(first_line(cause or exc), url)
        if parsed.get_backend_name() == "sqlite":
            raise StorageError(f"cannot open storage {redact_url(url)}: {reason}") from None
        where = f"{parsed.host or 'localhost'}:{parsed.port or 'default port'}"
        message = (
            f"cannot open storage {redact_url(url)} (host {where}, database "
            f"{parsed.database!r}): {reason}"
        )
        transient = transient_cause(exc)
        if transient is not None:
            raise StorageUnavailableError(message, answered=server_answered(transient)) from None
        raise StorageError(message) from None


# SQLSTATE classes of PostgreSQL errors that a new connection or a second try can cure:
# 08 connection exceptions, 57P01-03 server shutdown / crash / not yet accepting
# connections, 40001 / 40P01 serialization failure / deadlock (transaction rolled back).
_PG_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01")
# MySQL / MariaDB: lock wait timeout, deadlock, cannot connect, server gone away, lost
# connection, connection out of sync, ... (client error codes 2xxx).
_MYSQL_TRANSIENT_CODES = frozenset({1205, 1213, 2002, 2003, 2006, 2013, 2014, 2045, 2055, 4031})
_DISCONNECT_TEXT = re.compile(
    r"server closed the connection|terminating connection|connection (?:failed|refused|reset"
    r"|timed out|is closed|is lost)|could not connect|lost connection|gone away|broken pipe"
    r"|ssl syscall error|eof detected",
    re.IGNORECASE,
)


def transient_cause(exc: BaseException) -> DBAPIError | None:
    """The transient database error behind ``exc`` (itself, its cause or context), if any.

    Transient means a new connection or a second try can succeed: SQLAlchemy found the
    connection broken, the server could not be reached, or it rolled back a deadlock.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and _is_transient(current):
            return current
        # Optuna raises StorageInternalError *from* the driver error; a failure while
        # handling one (a rollback on a dead connection) carries it as its context.
        current = current.__cause__ or current.__context__
    return None


def server_answered(error: DBAPIError) -> bool:
    """Whether the server itself answered ``error``: it is starting up, shutting down or in
    recovery (SQLSTATE 57P01-03), as opposed to refusing or ignoring the connection."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(("57P01", "57P02", "57P03")):
        return True
    return bool(re.search(r"starting up|shutting down|in recovery", str(error.orig), re.I))


def _is_transient(error: DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_PG_TRANSIENT_SQLSTATES):
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_TRANSIENT_CODES:
        return True
    return isinstance(error, (OperationalError, InterfaceError)) and bool(
        _DISCONNECT_TEXT.search(str(orig))
    )
