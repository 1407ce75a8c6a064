"""``open_storage``: the one place that builds an Optuna storage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import optuna
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from storage._engine import WORKER_POOL_SIZE, database_errors, engine_kwargs
from storage._errors import StorageError, StorageUnavailableError
from storage._grpc.common import require_grpc
from storage._heartbeat import DEFAULT_HEARTBEAT, HeartbeatSettings
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S
from storage._rdb.sqlite import is_in_memory, prepare_sqlite_file, sqlite_path
from storage._rdb.storage import RetryingRDBStorage
from storage._url import parse_storage_url, redact_url

_logger = logging.getLogger("storage")

#: Attempts at opening a new database that other workers are initialising at the same time.
INIT_ATTEMPTS = 5


def open_storage(
    url: str,
    *,
    heartbeat: HeartbeatSettings | None = DEFAULT_HEARTBEAT,
    create: bool = True,
    outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
    wait: bool = False,
) -> optuna.storages.BaseStorage:
    """Open (and create, if new and ``create``) the Optuna storage at ``url``.

    * ``sqlite:///FILE``: the file is switched to WAL mode with a busy timeout, so several
      local processes can share it; a file opened from several machines gets a
      :class:`MultiHostSQLiteWarning`.
    * ``postgresql://`` (psycopg 3) and ``mysql+pymysql://``: pooled connections that are
      checked before use.
    * ``grpc://HOST:PORT``: a client of :func:`serve_storage` running there. It beats
      through the proxy at the proxy's interval, and the proxy fails the trials of dead
      workers and queues their copies, so ``heartbeat`` does not apply to it.

    A database storage is an :class:`optuna.storages.RDBStorage` whose calls retry transient
    connection errors with exponential backoff for up to ``outage_timeout`` seconds (one
    warning per outage), and whose heartbeats (unless ``heartbeat`` is ``None``) fail the
    trials of dead workers and queue a copy.

    At opening, an unreachable storage is an error at once, unless ``wait`` (a worker, which
    may start while its database restarts) or the server answered that it is starting up or
    shutting down: then it is waited for, up to ``outage_timeout`` seconds.

    Args:
        url: The storage URL.
        heartbeat: Heartbeat settings, or ``None`` for no heartbeats.
        outage_timeout: Seconds a call (and, with ``wait``, the opening) waits out an outage.
        wait: Wait for a storage that does not answer yet (see above).
        create: Create a SQLite file that does not exist yet. Commands that only read
            (``best``, ``report``, ``export``, ``dashboard``) pass False, so a mistyped path
            is an error rather than a new, empty database.

    Raises:
        StorageURLError: the URL is malformed or its scheme unknown.
        StorageError: the database cannot be reached (or, with ``create=False``, a SQLite
            file does not exist), its driver is not installed, or its
            schema is older than this Optuna's; the message names host, port and database
            and never the password.

    Example:
        >>> s = open_storage("sqlite:///:memory:")
        >>> isinstance(s, optuna.storages.RDBStorage)
        True
    """
    if not outage_timeout > 0:
        raise StorageError(f"--outage-timeout {outage_timeout}: must be a positive number")
    parsed = parse_storage_url(url)
    if parsed.get_backend_name() == "grpc":
        require_grpc(url)
        from storage._grpc.worker_client import open_grpc_proxy  # imports grpc

        return open_grpc_proxy(url, parsed, outage_timeout=outage_timeout, wait=wait)
    if parsed.get_backend_name() == "sqlite":  # a file: nothing to wait for
        return open_rdb_storage(
            url, parsed, heartbeat=heartbeat, create=create, outage_timeout=outage_timeout
        )
    return wait_for_storage(
        lambda: open_rdb_storage(
            url, parsed, heartbeat=heartbeat, create=create, outage_timeout=outage_timeout
        ),
        url,
        timeout=outage_timeout,
        wait=wait,
    )


def wait_for_storage(
    opener: Callable[[], RetryingRDBStorage], url: str, *, timeout: float, wait: bool
) -> RetryingRDBStorage:
    """``opener()``, tried again while the database is unavailable, up to ``timeout``
    seconds, when ``wait`` or when the server answered that it is (re)starting."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    logged = False
    while True:
        try:
            return opener()
        except StorageUnavailableError as exc:
            if not (wait or exc.answered) or time.monotonic() + delay > deadline:
                raise
            if not logged:
                logged = True
                _logger.warning("%s; waiting up to %g s for it", exc, timeout)
        time.sleep(delay)
        delay = min(2 * delay, 5.0)


def open_rdb_storage(
    url: str,
    parsed: URL,
    *,
    heartbeat: HeartbeatSettings | None,
    pool_size: int = WORKER_POOL_SIZE,
    create: bool = True,
    outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
) -> RetryingRDBStorage:
    """The retrying ``RDBStorage`` for the database URL ``parsed`` (see :func:`open_storage`)."""
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if not create and path is not None and not path.exists():
            raise StorageError(f"storage {redact_url(url)}: no database file at {path}")
        prepare_sqlite_file(parsed, url)
        if is_in_memory(parsed):
            # Each thread gets its own in-memory database, so the heartbeat thread would
            # find no tables; and no other worker can see such a database anyway.
            heartbeat = None
    with database_errors(url, parsed):
        storage = _create_rdb_storage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=engine_kwargs(parsed, pool_size=pool_size),
            heartbeat=heartbeat,
            shown_url=url,
            outage_timeout=outage_timeout,
        )
        current, head = storage.get_current_version(), storage.get_head_version()
        known = current in storage.get_all_versions()
    if current != head:
        storage.engine.dispose()
        raise StorageError(schema_mismatch_message(redact_url(url), current, head, known=known))
    return storage


def schema_mismatch_message(shown_url: str, current: str, head: str, *, known: bool) -> str:
    """What to do about a database whose schema version is not this Optuna's."""
    if known:
        return (
            f"storage {shown_url}: its schema ({current}) is older than optuna "
            f"{optuna.__version__} needs ({head}); back it up, then run "
            f"`optuna storage upgrade --storage {shown_url}`"
        )
    return (
        f"storage {shown_url}: its schema ({current}) was written by a newer optuna than "
        f"{optuna.__version__} (which knows up to {head}); pip install -U optuna"
    )


def _create_rdb_storage(
    url: str,
    *,
    engine_kwargs: dict[str, Any],
    heartbeat: HeartbeatSettings | None,
    shown_url: str,
    outage_timeout: float,
) -> RetryingRDBStorage:
    # Workers started together on a new database all create Optuna's tables and stamp its
    # schema version; all but one then fail ("table studies already exists", a duplicate
    # alembic_version row). Trying again finds the tables the winner made.
    for attempt in range(1, INIT_ATTEMPTS + 1):
        try:
            return RetryingRDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat=heartbeat,
                shown_url=shown_url,
                outage_timeout=outage_timeout,
                # We compare the versions ourselves, to say what to do in one line.
                skip_compatibility_check=True,
            )
        except SQLAlchemyError as exc:
            if attempt == INIT_ATTEMPTS or not _lost_creation_race(exc):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _lost_creation_race(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, IntegrityError) or "already exists" in text
