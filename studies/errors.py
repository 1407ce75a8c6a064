"""The exceptions of ``studies``: each is an expected problem the CLI turns into one line
on stderr and exit status 2 (the library never calls ``sys.exit``)."""

from __future__ import annotations


class StudySpecError(ValueError):
    """A study file is unreadable or invalid. ``str()`` is the one-line message, naming the
    file, the field and the bad value."""


class StudyRunError(RuntimeError):
    """A study cannot be created, joined, run or read as asked."""


class BudgetReachedError(RuntimeError):
    """This trial started after the study's budget was already taken by other trials."""


class SearchSpaceChangedError(StudyRunError):
    """A worker's study file searches another space than the study it would join.

    Attributes:
        field: The first searched field that differs, e.g. ``model.activation``.
        stored: Its value in the study file the study stored, as a study file writes it.
        new: Its value in the worker's study file.
    """

    def __init__(self, message: str, field: str, stored: str, new: str) -> None:
        super().__init__(message)
        self.field = field
        self.stored = stored
        self.new = new
