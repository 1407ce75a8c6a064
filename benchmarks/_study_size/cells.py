"""One measured cell of ``study_size.py``: a sampler joining a study of N finished trials
and running K more through the real worker loop, timed per trial."""

from __future__ import annotations

import time
import warnings
from typing import Any

import optuna

from benchmarks._study_size.stand_in import StandIn
from benchmarks._study_size.timing import (
    StatementCounter,
    Timers,
    TrialClock,
    breakdown,
    instrument,
    ms,
)
from studies import StudySpec, open_study, run_trials


def measure(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    *,
    trials: int,
    warmup: int,
) -> dict[str, Any]:
    """Join ``spec``'s study in ``storage`` as a worker does (:func:`studies.open_study`,
    which builds the sampler from ``spec``), run ``warmup`` untimed trials, then ``trials``
    timed ones, each through :func:`studies.run_trials` with the stand-in objective."""
    engine = storage.engine if isinstance(storage, optuna.storages.RDBStorage) else None
    counter = StatementCounter(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = open_study(spec, storage)
    # A joining worker's first read loads every trial into Optuna's cache; later reads
    # fetch only trials that changed since.
    start = time.perf_counter()
    existing = len(study.get_trials(deepcopy=False))
    first_read = time.perf_counter() - start
    objective = StandIn(spec.objective)
    # Never the limit: the loop runs exactly max_trials trials.
    budget = existing + warmup + trials + 1
    start = time.perf_counter()
    if warmup:
        warm = run_trials(study, objective, budget=budget, max_trials=warmup)
        if warm.failed:
            raise RuntimeError(f"warm-up trial failed: {warm.last_failure}")
    warmup_s = time.perf_counter() - start

    timers = Timers()
    clock = TrialClock(timers)
    instrument(study, timers, clock)
    objective.section = timers.section
    counter.counting = True
    clock.start()
    with timers.section("worker_loop"):
        report = run_trials(study, objective, budget=budget, max_trials=trials)
    counter.counting = False
    rows = clock.per_trial("wall")
    if report.failed or len(rows) != trials:
        raise RuntimeError(
            f"{spec.sampler.name}: {report.failed} of {len(rows)} timed trials failed "
            f"({report.last_failure})"
        )
    cell = breakdown(rows)
    cpu = breakdown(clock.per_trial("cpu"))
    cell["cpu"] = {k: cpu[k] for k in ("sampler_ms", "storage_ms", "loop_ms", "total_ms")}
    cell["cpu"]["sampler_plus_loop_ms"] = cpu["sampler_plus_loop_ms"]
    cell.update(
        trials_before=existing,
        trials_timed=trials,
        first_read_ms=ms(first_read),
        warmup_trial_ms=ms(warmup_s / warmup) if warmup else None,
        statements_per_trial=round(counter.count / trials, 1) if engine is not None else None,
    )
    return cell
