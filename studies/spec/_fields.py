"""The field checks of a study file: tables, numbers, ranges and choices.

Every problem is one line naming the file, the field and the bad value, e.g.
``my.toml: optimizers.adamw.lr: low 0.1 is above high 0.001 (got [0.1, 0.001])``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nas_objectives import Choice, FloatRange, IntRange
from studies.errors import StudySpecError


class FieldReader:
    """Reads one study file's fields, each problem a one-line :class:`StudySpecError`
    naming the file, the field and the value."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, problem: str, value: Any = ...) -> StudySpecError:
        got = "" if value is ... else f" (got {value!r})"
        return StudySpecError(f"{self.path}: {where}: {problem}{got}")

    def table(self, data: Mapping[str, Any], key: str, where: str, allowed: set[str]) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table", value)
        for k in value:
            if k not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(f"{where}.{k}", f"unknown field (known: {known})", value[k])
        return value

    def number(self, value: Any, where: str, *, integer: bool = False) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            raise self.fail(where, "must be an integer" if integer else "must be a number", value)
        if not math.isfinite(value):
            raise self.fail(where, "must be finite", value)
        return value

    def positive_int(self, data: Mapping[str, Any], key: str, default: int | None) -> int:
        if key not in data:
            if default is None:
                raise self.fail(key, "is required")
            return default
        value = int(self.number(data[key], key, integer=True))
        if value < 1:
            raise self.fail(key, "must be at least 1", value)
        return value

    def range_(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: IntRange | FloatRange | Choice,
        *,
        integer: bool = False,
        log: bool | None = None,
        lo: float = -math.inf,
        hi: float = math.inf,
    ) -> Any:
        """A scalar (fixed), ``[low, high]``, ``{low, high, log}`` or ``{choices = [...]}``.

        ``log=None`` picks a log scale when low > 0 for a ``[low, high]`` pair. Choices
        become a :class:`Choice` (a categorical parameter) of numbers within ``[lo, hi]``.
        """
        where = f"{where}.{key}"
        if key not in data:
            return default
        raw = data[key]
        explicit_log: bool | None = None
        if isinstance(raw, dict) and "choices" in raw:
            return self.numeric_choices(raw, where, integer=integer, lo=lo, hi=hi)
        if isinstance(raw, dict):
            extra = set(raw) - {"low", "high", "log"}
            if extra or "low" not in raw or "high" not in raw:
                raise self.fail(
                    where, "a range table needs exactly low, high and optional log", raw
                )
            low, high = raw["low"], raw["high"]
            explicit_log = raw.get("log")
            if explicit_log is not None and not isinstance(explicit_log, bool):
                raise self.fail(f"{where}.log", "must be true or false", explicit_log)
        elif isinstance(raw, list):
            if len(raw) != 2:
                raise self.fail(where, "a range is [low, high]", raw)
            low, high = raw
        else:
            low = high = raw
        low = self.number(low, where, integer=integer)
        high = self.number(high, where, integer=integer)
        if low > high:
            raise self.fail(where, f"empty range: low {low} is above high {high}", raw)
        if low < lo or high > hi:
            raise self.fail(where, f"must lie within [{lo}, {hi}]", raw)
        use_log = (
            explicit_log if explicit_log is not None else (log if log is not None else low > 0)
        )
        use_log = bool(use_log) and low != high
        if use_log and low <= 0:
            raise self.fail(where, "a log-scale range needs low > 0", raw)
        if integer:
            return IntRange(int(low), int(high), log=use_log)
        return FloatRange(float(low), float(high), log=use_log)

    def numeric_choices(
        self, raw: Mapping[str, Any], where: str, *, integer: bool, lo: float, hi: float
    ) -> Choice:
        """``{choices = [16, 64, 256]}``: distinct numbers within ``[lo, hi]``."""
        if set(raw) != {"choices"}:
            raise self.fail(where, "a choices table has only the field choices", dict(raw))
        options = raw["choices"]
        if not isinstance(options, list) or not options:
            raise self.fail(f"{where}.choices", "must be a non-empty list of numbers", options)
        values: list[int | float] = []
        for opt in options:
            number = self.number(opt, f"{where}.choices", integer=integer)
            if not lo <= number <= hi:
                raise self.fail(f"{where}.choices", f"must lie within [{lo}, {hi}]", opt)
            values.append(int(number) if integer else float(number))
        if len(set(values)) != len(values):
            raise self.fail(f"{where}.choices", "options must be distinct", options)
        return Choice(tuple(values))

    def choice(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: Choice,
        allowed: tuple[Any, ...] | type,
    ) -> Choice:
        """A scalar (fixed) or a non-empty list of distinct options."""
        where = f"{where}.{key}"
        if key not in data:
            return default
        raw = data[key]
        options = raw if isinstance(raw, list) else [raw]
        if not options:
            raise self.fail(where, "needs at least one option", raw)
        for opt in options:
            if isinstance(allowed, type):
                ok = isinstance(opt, allowed) and not (allowed is int and isinstance(opt, bool))
                if not ok or (allowed is int and opt < 1):
                    raise self.fail(where, f"options must be positive {allowed.__name__}s", opt)
            elif opt not in allowed:
                raise self.fail(
                    where, f"unknown option (known: {', '.join(map(str, allowed))})", opt
                )
        if len(set(options)) != len(options):
            raise self.fail(where, "options must be distinct", raw)
        return Choice(tuple(options))
