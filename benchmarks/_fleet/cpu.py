"""CPU seconds where the benchmark cannot time them itself: the whole machine, and the
PostgreSQL backends that serve the proxy (Linux ``/proc``; read as the same user or root).

The proxy's connections carry an ``application_name`` of their own (a query parameter of
the database URL it is given), so its backends are found in ``pg_stat_activity``. A backend
that exits between two readings takes its last CPU seconds with it; the proxy's pool keeps
its connections, so that is rare, and the figure is a floor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of all CPUs that was busy between two :func:`machine_ticks`."""
    total = after[1] - before[1]
    return None if total <= 0 else (after[0] - before[0]) / total


def _process_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    rest = stat.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * _TICK_S  # utime, stime


@dataclass
class DatabaseCpu:
    """CPU seconds of the PostgreSQL backends whose ``application_name`` is ``name``."""

    engine: sqlalchemy.engine.Engine
    name: str
    _start: dict[int, float] = field(default_factory=dict)

    def _backends(self) -> dict[int, float]:
        query = sqlalchemy.text("SELECT pid FROM pg_stat_activity WHERE application_name = :n")
        with self.engine.connect() as conn:
            pids = [int(row[0]) for row in conn.execute(query, {"n": self.name})]
        found = {pid: _process_seconds(pid) for pid in pids}
        return {pid: s for pid, s in found.items() if s is not None}

    def reset(self) -> None:
        self._start = self._backends()

    def seconds(self) -> float | None:
        """CPU seconds since :meth:`reset`; ``None`` where no backend could be read."""
        now = self._backends()
        if not now:
            return None
        return sum(s - self._start.get(pid, 0.0) for pid, s in now.items())
