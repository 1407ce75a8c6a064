"""The exceptions of this package."""

from __future__ import annotations


class StorageError(RuntimeError):
    """A storage could not be opened or used. The message never contains a password."""


class StorageURLError(StorageError, ValueError):
    """A storage URL is malformed or names an unknown scheme."""


class StorageUnavailableError(StorageError):
    """The database or proxy could not be reached, for a reason that may pass (it is down,
    restarting or unreachable), unlike a bad URL, password or schema.

    Attributes:
        answered: The server answered, saying it is starting up or shutting down (a restart),
            rather than nothing answering at all.
    """

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class MultiHostSQLiteWarning(UserWarning):
    """One SQLite file is used from several machines, which SQLite does not support."""


def first_line(exc: BaseException) -> str:
    """The first line of the driver's own message (``exc.orig``), else of ``exc``."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
