"""SQLite files: WAL mode, and noticing a file shared between machines.

SQLite locks through the local file system. Over NFS or SMB those locks are unreliable and
WAL mode does not work at all, so a fleet of machines sharing one file corrupts it sooner or
later. Each opening records the machine's hostname in a small table of our own, and a file
that has seen more than one machine gets a warning. (Containers that get a new hostname on
every start count as new machines; ``DELETE FROM nas_study_hosts`` resets the record.)
"""

from __future__ import annotations

import socket
import sqlite3
import time
import warnings
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import URL

from storage._engine import SQLITE_BUSY_TIMEOUT_S
from storage._errors import MultiHostSQLiteWarning, StorageError
from storage._url import redact_url

#: Our table inside the SQLite file: one row per machine that opened it.
HOSTS_TABLE = "nas_study_hosts"


def is_in_memory(parsed: URL) -> bool:
    """Whether a ``sqlite://`` URL names a private in-memory database."""
    return parsed.database in (None, "", ":memory:")


def sqlite_path(parsed: URL) -> Path | None:
    """The file a ``sqlite://`` URL names; ``None`` in memory or for a ``file:`` URI."""
    database = parsed.database
    if is_in_memory(parsed) or not database or database.startswith("file:"):
        return None
    return Path(database)


def check_sqlite_directory(parsed: URL, url: str) -> Path | None:
    """The SQLite file's path, after checking that its directory exists.

    Raises:
        StorageError: the directory does not exist (SQLite would say only "unable to open").
    """
    path = sqlite_path(parsed)
    if path is not None and not path.parent.exists():
        raise StorageError(f"storage {redact_url(url)}: directory {path.parent} does not exist")
    return path


def prepare_sqlite_file(parsed: URL, url: str) -> None:
    """Switch the file to WAL mode and record this machine in it.

    Warns:
        MultiHostSQLiteWarning: the file has been opened from more than one machine.

    Raises:
        StorageError: the directory does not exist, or the file is not a usable database.
    """
    path = check_sqlite_directory(parsed, url)
    if path is None:
        return
    try:
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        with closing(conn):
            _switch_to_wal(conn)
            # IMMEDIATE takes the write lock up front: a deferred transaction that must
            # upgrade from reading to writing gets "database is locked" at once when another
            # process writes, without waiting for the busy timeout.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {HOSTS_TABLE} "
                    "(hostname TEXT PRIMARY KEY, first_seen TEXT NOT NULL)"
                )
                conn.execute(
                    f"INSERT OR IGNORE INTO {HOSTS_TABLE} VALUES (?, datetime('now'))",
                    (socket.gethostname(),),
                )
                rows = conn.execute(
                    f"SELECT hostname FROM {HOSTS_TABLE} ORDER BY first_seen, hostname"
                ).fetchall()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StorageError(f"storage {redact_url(url)}: cannot open {path}: {exc}") from None
    hosts = [str(row[0]) for row in rows]
    if len(hosts) > 1:
        message = (
            f"SQLite file {path} is used from several machines ({', '.join(hosts)}): "
            "use PostgreSQL or MySQL for a fleet"
        )
        # Point at the caller of open_storage / serve_storage.
        warnings.warn(MultiHostSQLiteWarning(message), stacklevel=4)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    # WAL persists in the file, so setting it once covers every later connection and lets
    # readers and one writer from several local processes work together. Switching needs
    # the file to itself, and SQLite answers "database is locked" at once, without its busy
    # timeout, while another process is creating the same new file: wait for it here.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
