"""Checking a study file's ``[sampler]`` or ``[pruner]`` options against the class they go to.

Shared by both registries, so a bad option is reported while the file is parsed, naming
the field, rather than when the first worker starts.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: A problem with an option: ``(field, message, value)``; ``field`` is ``"name"`` when the
#: class rejects the whole set.
Problem = tuple[str, str, Any]


def keyword_problem(
    kind: str,
    name: str,
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    reserved: frozenset[str] = frozenset(),
) -> Problem | None:
    """The first option ``factory`` does not take, or that it rejects; None if all is well.

    ``reserved`` keywords are set by nas-study itself (a seed, say), never by a study file.
    """
    accepted = set(inspect.signature(factory).parameters) - reserved
    for key, value in options.items():
        if key not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            return key, f"unknown option for {kind} {name!r} (known: {known})", value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            factory(**options)
    except (TypeError, ValueError) as exc:
        return "name", f"{factory.__name__} rejects these options: {exc}", name
    return None
