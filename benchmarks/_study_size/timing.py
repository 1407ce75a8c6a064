"""Per-trial timers around the real worker loop: sampler, storage and loop time.

Every timed call is one frame on a stack; a frame's time minus its nested frames' is its
*exclusive* time, added to its category, so the categories add up to the trial's time with
nothing counted twice. Two clocks are read: wall time, and the thread's CPU time, which a
loaded machine does not inflate (storage waits on the disk show in wall time only):

``worker_loop``
    :func:`studies.run_trials` outside ``study.optimize``: reading the study before each
    trial for the global budget, and its bookkeeping.
``optuna``
    ``study.optimize(n_trials=1)`` itself, less what is below: Optuna's trial machinery
    (ask, suggest, tell, stale-trial check), nas-study's budget check and lifeline.
``sampler``
    The sampler's methods (``infer_relative_search_space``, ``sample_relative``,
    ``sample_independent``, ``before_trial``, ``after_trial``), less their storage calls.
``storage.<owner>``
    Calls to the study's storage object, by the category of the frame that made them
    (``storage.sampler`` is the storage reads a sampler makes, for instance).
``stand_in``
    The stand-in's synthetic accuracy: what stands in for training, left out of overhead.

Only the worker's main thread is timed; the heartbeat thread's storage calls run beside it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import optuna
import sqlalchemy

from storage.optuna_compat import study_storage

_F = TypeVar("_F", bound=Callable[..., Any])
SAMPLER_METHODS = (
    "infer_relative_search_space",
    "sample_relative",
    "sample_independent",
    "before_trial",
    "after_trial",
)
STORAGE = "storage"


#: The clocks every frame reads: wall time (what a worker waits) and the thread's CPU time
#: (what it computes; on a loaded machine it stays put while wall time grows).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


class Timers:
    """Exclusive time per category and clock, on the thread that created the timers."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {c: defaultdict(float) for c in CLOCKS}
        self._stack: list[tuple[str, dict[str, float]]] = []  # category, nested time
        self._thread = threading.get_ident()

    @contextmanager
    def section(self, category: str) -> Iterator[None]:
        """Time the ``with`` body as one frame of ``category``."""
        if threading.get_ident() != self._thread:
            yield
            return
        nested = dict.fromkeys(CLOCKS, 0.0)
        self._stack.append((category, nested))
        start = {c: read() for c, read in CLOCKS.items()}
        try:
            yield
        finally:
            elapsed = {c: read() - start[c] for c, read in CLOCKS.items()}
            self._stack.pop()
            if category == STORAGE:
                category = f"{STORAGE}.{self._owner()}"
            for c in CLOCKS:
                self.totals[c][category] += elapsed[c] - nested[c]
                if self._stack:
                    self._stack[-1][1][c] += elapsed[c]

    def _owner(self) -> str:
        for category, _ in reversed(self._stack):
            if category != STORAGE:
                return category
        return "none"

    def wrap(self, category: str, fn: _F) -> _F:
        """``fn``, timed as a frame of ``category`` on every call."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.section(category):
                return fn(*args, **kwargs)

        return timed  # type: ignore[return-value]

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {c: dict(totals) for c, totals in self.totals.items()}


class TrialClock:
    """Per-trial totals: a snapshot of the timers at the end of each ``study.optimize``."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.marks: list[tuple[dict[str, float], dict[str, dict[str, float]]]] = []

    def _now(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        return {c: read() for c, read in CLOCKS.items()}, self.timers.snapshot()

    def start(self) -> None:
        self.marks = [self._now()]

    def mark(self) -> None:
        self.marks.append(self._now())

    def per_trial(self, clock: str) -> list[dict[str, float]]:
        """Seconds of ``clock`` per category for each trial, and ``total``: from the end of
        the trial before (or the start) to the end of this one.

        The ``worker_loop`` frame (all of ``run_trials``) is still open at every mark, so
        its share of a trial is what the closed frames leave of the total.
        """
        out = []
        for (t0, before), (t1, after) in itertools.pairwise(self.marks):
            total = t1[clock] - t0[clock]
            row = {
                k: v - before[clock].get(k, 0.0)
                for k, v in after[clock].items()
                if k != "worker_loop"
            }
            row["worker_loop"] = total - sum(row.values())
            row["total"] = total
            out.append(row)
        return out


def instrument(study: optuna.Study, timers: Timers, clock: TrialClock) -> None:
    """Time ``study``'s sampler, storage and ``optimize`` calls from now on.

    The wrappers are set on these objects alone (instance attributes), so nothing else in
    the process is changed.
    """
    sampler = study.sampler
    for name in SAMPLER_METHODS:
        setattr(sampler, name, timers.wrap("sampler", getattr(sampler, name)))
    storage = study_storage(study)
    for name, method in inspect.getmembers(storage, inspect.ismethod):
        if not name.startswith("__"):
            setattr(storage, name, timers.wrap(STORAGE, method))
    optimize = timers.wrap("optuna", study.optimize)

    @functools.wraps(optimize)
    def optimize_and_mark(*args: Any, **kwargs: Any) -> None:
        try:
            optimize(*args, **kwargs)
        finally:
            clock.mark()

    study.optimize = optimize_and_mark  # type: ignore[method-assign]


class StatementCounter:
    """SQL statements the main thread sends through an RDB engine while ``counting``."""

    def __init__(self, engine: sqlalchemy.engine.Engine | None) -> None:
        self.count = 0
        self.counting = False
        self._thread = threading.get_ident()
        if engine is not None:
            sqlalchemy.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.counting and threading.get_ident() == self._thread:
            self.count += 1


def ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def breakdown(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Mean milliseconds per trial by category, and the sums the report judges by."""
    n = len(rows)

    def mean(key: str) -> float:
        return sum(r.get(key, 0.0) for r in rows) / n

    keys = sorted({k for r in rows for k in r} - {"total"})
    storage_keys = [k for k in keys if k.startswith(f"{STORAGE}.")]
    storage = sum(mean(k) for k in storage_keys)
    sampler, stand_in = mean("sampler"), mean("stand_in")
    worker_loop, optuna_part = mean("worker_loop"), mean("optuna")
    totals = [r["total"] for r in rows]
    loop = worker_loop + optuna_part
    return {
        "sampler_ms": ms(sampler),
        "storage_ms": ms(storage),
        "loop_ms": ms(loop),
        "sampler_plus_loop_ms": ms(sampler + loop),
        "non_training_ms": ms(sampler + storage + loop),
        "stand_in_ms": ms(stand_in),
        "total_ms": ms(mean("total")),
        "total_median_ms": ms(statistics.median(totals)),
        "total_max_ms": ms(max(totals)),
        "loop_detail_ms": {"worker_loop": ms(worker_loop), "optuna_trial": ms(optuna_part)},
        "storage_detail_ms": {
            k.removeprefix(f"{STORAGE}."): ms(mean(k)) for k in storage_keys if mean(k) > 0
        },
    }
