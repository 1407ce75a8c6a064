"""An ``RDBStorage`` that survives a dropped database connection.

A worker trains for minutes between two storage calls. Meanwhile the database may restart,
fail over, or close idle connections; without a retry the next call raises and the worker
dies with its trial. Each storage method here retries such transient errors with exponential
backoff, and lets every other error through at once.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import re
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

import optuna
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from storage._errors import first_line
from storage._heartbeat import HeartbeatSettings
from storage._url import redact_text, redact_url
from storage.optuna_compat import RDB_PRIVATE_CALLS

_logger = logging.getLogger(__name__)

#: Attempts per storage call (the first one included).
MAX_ATTEMPTS = 6
#: Seconds before the first retry; doubled after each one, up to ``MAX_DELAY_S``.
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0

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
# Methods that never touch the database, or must not be repeated half-way (a migration).
_NOT_RETRIED = frozenset(
    {
        "check_trial_is_updatable",
        "get_failed_trial_callback",
        "get_heartbeat_interval",
        "get_heartbeat_stale_trial_callback",
        "remove_session",
        "upgrade",
    }
)
# Set while a retrying method runs in this thread, so the storage methods it calls in turn
# (get_best_trial calls get_trial) do not multiply the attempts.
_in_retry = threading.local()

_F = TypeVar("_F", bound=Callable[..., Any])


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


def _retrying(method: _F) -> _F:
    name = method.__name__

    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_in_retry, "active", False):
            return method(self, *args, **kwargs)
        _in_retry.active = True
        try:
            return self._call_with_retry(name, method, *args, **kwargs)
        finally:
            _in_retry.active = False

    return cast(_F, call)


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage`` whose methods retry transient database errors.

    Each call is tried up to :data:`MAX_ATTEMPTS` times, sleeping 0.2, 0.4, 0.8, ... seconds
    (at most :data:`MAX_DELAY_S`) in between, with one logged warning per retry; other errors
    are raised at once. A failed attempt's transaction was rolled back, so its retry starts
    clean. The one exception is a connection lost after the server committed but before it
    answered: the retried write is then applied again, which is harmless for attributes and
    values, raises ``UpdateFinishedTrialError`` for a state change, and leaves one extra
    trial for ``create_new_trial`` (Optuna's own deadlock retry there has the same gap).

    It is an ``RDBStorage`` in every other respect: heartbeats, caching by Optuna's
    ``_CachedStorage``, pickling.
    """

    def __init__(
        self,
        url: str,
        *,
        engine_kwargs: dict[str, Any] | None = None,
        heartbeat: HeartbeatSettings | None = None,
        skip_compatibility_check: bool = False,
        skip_table_creation: bool = False,
        max_attempts: int = MAX_ATTEMPTS,
        shown_url: str | None = None,
    ) -> None:
        """Open the database at ``url`` (see ``RDBStorage``).

        Args:
            url: The SQLAlchemy URL, password included.
            engine_kwargs: ``create_engine`` arguments.
            heartbeat: Heartbeat settings; ``None`` disables heartbeats.
            skip_compatibility_check: Open a database whose schema is not Optuna's head.
            skip_table_creation: Create no missing tables.
            max_attempts: Attempts per call, the first one included.
            shown_url: How log lines name the storage (default: ``url``, password masked).
        """
        self._shown_url = redact_url(shown_url or url)
        # Kept to mask the password wherever a driver message repeats it.
        self._secret_url = url
        self._max_attempts = max_attempts
        with warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna 5; the warning is noise for our users.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(
                url,
                engine_kwargs=engine_kwargs,
                skip_compatibility_check=skip_compatibility_check,
                skip_table_creation=skip_table_creation,
                **(heartbeat.rdb_kwargs() if heartbeat is not None else {}),
            )

    def _call_with_retry(
        self, name: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        delay = FIRST_DELAY_S
        for attempt in range(1, self._max_attempts + 1):
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                cause = transient_cause(exc)
                if cause is None:
                    raise
                reason = redact_text(first_line(cause), self._secret_url)
                if attempt == self._max_attempts:
                    _logger.warning(
                        "storage %s: %s failed %d times with a transient database error, "
                        "giving up: %s",
                        self._shown_url,
                        name,
                        attempt,
                        reason,
                    )
                    raise
                # Jitter, so a fleet of workers does not reconnect in lock step.
                pause = delay * random.uniform(0.8, 1.2)
                _logger.warning(
                    "storage %s: %s failed with a transient database error (attempt %d of %d), "
                    "retrying in %.1f s: %s",
                    self._shown_url,
                    name,
                    attempt,
                    self._max_attempts,
                    pause,
                    reason,
                )
                time.sleep(pause)
                delay = min(2 * delay, MAX_DELAY_S)
        raise AssertionError("unreachable")  # pragma: no cover


def _storage_methods() -> list[str]:
    # Every public method of the storage (so one Optuna adds later is covered too), plus the
    # private ones that Optuna's _CachedStorage calls instead (see optuna_compat).
    names = {
        name
        for cls in optuna.storages.RDBStorage.__mro__
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    return [*sorted(names - _NOT_RETRIED), *RDB_PRIVATE_CALLS]


for _name in _storage_methods():
    setattr(RetryingRDBStorage, _name, _retrying(getattr(optuna.storages.RDBStorage, _name)))
