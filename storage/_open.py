"""``open_storage``: the one place that builds an Optuna storage."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from storage._url import redact_text, redact_url

#: The schemes ``open_storage`` accepts, as SQLAlchemy backend names.
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql")
_EXTRA = {"postgresql": "postgres", "mysql": "mysql"}
#: Seconds a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60


class StorageError(RuntimeError):
    """A storage could not be opened. The message never contains a password."""


class StorageURLError(StorageError, ValueError):
    """A storage URL is malformed or names an unknown scheme."""


def parse_storage_url(url: str) -> URL:
    """Validate ``url`` and pick our default drivers (psycopg 3 for ``postgresql://``).

    Raises:
        StorageURLError: not a URL, or a scheme other than sqlite, postgresql or mysql.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageURLError(
            f"storage URL {redact_url(url)!r} is not a database URL "
            "(expected sqlite:///FILE, postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StorageURLError(
            f"storage URL {redact_url(url)!r}: unknown scheme {parsed.drivername!r} "
            f"(supported: {', '.join(SUPPORTED_BACKENDS)})"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mysql":
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open (and create, if new) the Optuna storage at ``url``.

    * ``sqlite:///FILE``: the file is switched to WAL mode with a busy timeout, so several
      local processes can share it without "database is locked" errors.
    * ``postgresql://`` (psycopg 3) and ``mysql+pymysql://``: pooled connections that are
      checked before use.

    Raises:
        StorageURLError: the URL is malformed or its scheme unknown.
        StorageError: the database cannot be reached or its driver is not installed; the
            message names host, port and database and never the password.

    Example:
        >>> s = open_storage("sqlite:///:memory:")
        >>> type(s).__name__
        'RDBStorage'
    """
    parsed = parse_storage_url(url)
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        _prepare_sqlite(parsed, url)
    else:
        engine_kwargs.update(pool_pre_ping=True, pool_size=2, max_overflow=4, pool_recycle=1800)
    try:
        return optuna.storages.RDBStorage(
            parsed.render_as_string(hide_password=False), engine_kwargs=engine_kwargs
        )
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"storage {redact_url(url)}: the database driver {exc.name!r} is not installed; "
            f"pip install 'nas-study[{_EXTRA.get(backend, backend)}]'"
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        reason = redact_text(_first_line(exc), url)
        where = f"{parsed.host or 'localhost'}:{parsed.port or 'default port'}"
        raise StorageError(
            f"cannot open storage {redact_url(url)} (host {where}, database "
            f"{parsed.database!r}): {reason}"
        ) from None


def _prepare_sqlite(parsed: URL, url: str) -> None:
    database = parsed.database
    if not database or database == ":memory:":
        return
    path = Path(database)
    if not path.parent.exists():
        raise StorageError(f"storage {redact_url(url)}: directory {path.parent} does not exist")
    try:
        # WAL persists in the file, so setting it once here covers every later connection.
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"storage {redact_url(url)}: cannot open {path}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
