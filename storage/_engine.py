"""SQLAlchemy engine settings per database, and turning driver errors into ``StorageError``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from storage._errors import StorageError, first_line
from storage._url import redact_text, redact_url

#: Seconds a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60
#: Seconds to wait for a PostgreSQL or MySQL server to accept a new connection.
CONNECT_TIMEOUT_S = 10
#: Pooled connections of a worker: its main thread and its heartbeat thread.
WORKER_POOL_SIZE = 2
#: The ``nas-study[...]`` extra that installs each backend's driver.
EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "grpc": "grpc"}


def engine_kwargs(parsed: URL, *, pool_size: int = WORKER_POOL_SIZE) -> dict[str, Any]:
    """The ``create_engine`` arguments for the database ``parsed`` names.

    PostgreSQL and MySQL connections are checked before each use (``pool_pre_ping``), so one
    the server closed while a trial trained is replaced instead of failing the next call.
    """
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": 2 * pool_size,
        "pool_recycle": 1800,
        "pool_timeout": 30,
    }
    if "connect_timeout" not in parsed.query:
        # Without it, a firewalled host makes psycopg wait for the OS TCP timeout (minutes).
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
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
        raise StorageError(
            f"cannot open storage {redact_url(url)} (host {where}, database "
            f"{parsed.database!r}): {reason}"
        ) from None
