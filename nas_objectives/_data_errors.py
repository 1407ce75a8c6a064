"""The one error type of dataset loading, shared by the readers in ``_data_*.py``."""

from __future__ import annotations

from typing import Any


class DatasetError(RuntimeError):
    """A dataset is unknown, missing or unreadable."""


def data_error(file: object, field: str, problem: str, value: Any = ...) -> DatasetError:
    """``file: field: problem (got value)``, the one-line form the CLI prints."""
    got = "" if value is ... else f" (got {value!r})"
    return DatasetError(f"{file}: {field}: {problem}{got}")
