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
