"""Argument types and the study look-up that every ``nas-study`` command shares."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

import optuna

from storage import redact_url
from studies.errors import StudyRunError, StudySpecError
from studies.spec import resolve_spec


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage first; keep it to the one line that matters.
        self.exit(2, f"{self.prog}: error: {message}\n")


def whole_number(least: int, rule: str) -> Callable[[str], int]:
    """An ``argparse`` type: a whole number of at least ``least``, else ``rule`` is said."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        return value

    return parse


positive_int = whole_number(1, "must be at least 1")
non_negative_int = whole_number(0, "must be 0 or more")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def memory_budget(text: str) -> float:
    """``--device-memory-budget``: a share of free device memory (0 to 1) or a size
    (``8GB``, ``512MiB``, or bytes), returned as the share or the bytes.

    Example:
        >>> memory_budget("0.25"), memory_budget("2GiB")
        (0.25, 2147483648.0)
    """
    t = text.strip().lower().removesuffix("b")
    number = t.rstrip("kmgi")
    unit = t[len(number) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        value = -1.0
    if not 0 <= value < float("inf") or (unit == "" and 1 < value < 1024):
        raise argparse.ArgumentTypeError(
            f"must be a share of free device memory from 0 to 1, or a size such as 8GB "
            f"(got {text!r})"
        )
    return value


def storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="database URL; default: $NAS_STUDY_STORAGE, else sqlite:///nas-study.db",
    )


def load_named_study(storage: optuna.storages.BaseStorage, name: str, url: str) -> optuna.Study:
    """Load study ``name`` from ``storage``; ``name`` may also be a catalog name or a study
    file, which names its study. Raises :class:`StudyRunError` listing the studies there."""
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    found = name
    if found not in names:
        with contextlib.suppress(StudySpecError):  # a catalog name or file names its study
            found = resolve_spec(name).name
        if found not in names:
            known = ", ".join(sorted(names)) or "none"
            raise StudyRunError(f"no study {name!r} in {redact_url(url)} (studies there: {known})")
    return optuna.load_study(study_name=found, storage=storage)
