"""A simulated fleet: N worker threads, each one nas-study worker on the gRPC proxy.

Each thread opens its own client (``storage.open_storage("grpc://...")``, as a worker
process does: its own channels, trial cache and heartbeats), joins the study with its own
seeded sampler, reads the study once (a worker's first read, timed as ``join_s``), waits for
the start signal, and runs :func:`studies.run_trials` with the study's global budget and the
sleeping objective. Threads, not processes, so that 64 workers fit on two cores: they sleep
or wait on the network almost all the time, and one process imports torch once.

Throughput is measured per worker cycle: from the start of one objective call to the start
of the same worker's next one. A cycle is the trial's sleep plus everything the loop and
the storage add (suggestions, attributes, reports, ``tell``, the budget read, the next
trial's creation and sampling), so ``sum(sleep) / sum(cycle)`` over all complete cycles is
the share of the ideal (``workers / mean sleep`` trials/s) that the fleet achieves in steady
state. The start-up burst (every worker creating its first trial at once) is reported as
``start_lag_s``; the ragged end, where the budget is taken and workers wait or leave, as
the end-to-end ratio, which counts both.
"""

from __future__ import annotations

import cProfile
import itertools
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from benchmarks._fleet.cpu import DatabaseCpu, busy_fraction, machine_ticks
from benchmarks._fleet.objective import SleepingObjective, TrialRecord
from benchmarks._fleet.proxy import Proxy

#: Seconds to wait for every worker to open the study, and for the run to end.
SETUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class FleetConfig:
    """One measured run of a fleet on one study."""

    study_name: str
    workers: int
    budget: int  # the study's global budget: COMPLETE + PRUNED trials, old ones included
    sleep: tuple[float, float]  # each trial sleeps uniform(low, high) seconds
    seed: int
    sampler: str
    poll_interval: float
    timeout: float
    profile: bool = False  # profile each worker's loop (its thread's CPU clock)


@dataclass
class _Worker:
    join_s: float = 0.0
    start: float = 0.0
    end: float = 0.0
    ran: int = 0
    error: str | None = None
    profile: cProfile.Profile | None = None


@dataclass
class FleetRun:
    """What one run measured: its trial records, worker timings and the proxy's counters."""

    config: FleetConfig
    go: float
    records: list[TrialRecord]
    workers: list[_Worker]
    client_cpu_s: float
    proxy: dict[str, Any]
    database_cpu_s: float | None
    machine_busy: float | None
    join_proxy: dict[str, Any]  # the proxy's counters while the workers opened the study


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """A worker's sampler: ``random`` (the default, so the loop and storage are measured,
    not a sampler) or Optuna's ``tpe``, seeded per worker."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _work(
    index: int,
    cfg: FleetConfig,
    url: str,
    ready: threading.Barrier,
    go: threading.Event,
    records: list[TrialRecord],
    lock: threading.Lock,
    out: _Worker,
) -> None:
    from storage import open_storage, worker_cached_storage
    from studies import run_trials

    client = None
    try:
        # As a worker's study opens it (studies.run.open_study): the writes of its trials
        # kept and sent in one call at publish, at each report and at the end.
        client = worker_cached_storage(open_storage(url))
        study = optuna.create_study(
            storage=client,
            study_name=cfg.study_name,
            direction="maximize",
            sampler=make_sampler(cfg.sampler, cfg.seed + index),
            pruner=optuna.pruners.NopPruner(),
            load_if_exists=True,
        )
        started = time.monotonic()
        study.get_trials(deepcopy=False)  # a joining worker's first read: the whole study
        out.join_s = time.monotonic() - started
        ready.wait(SETUP_TIMEOUT_S)
        if not go.wait(SETUP_TIMEOUT_S):
            raise RuntimeError("no start signal")
        out.start = time.monotonic()
        low, high = cfg.sleep
        objective = SleepingObjective(index, low, high, cfg.seed * 1000 + index, records, lock)
        if cfg.profile:
            out.profile = cProfile.Profile(time.thread_time)
            out.profile.enable()
        try:
            report = run_trials(
                study,
                objective,
                budget=cfg.budget,
                progress=False,
                poll_interval=cfg.poll_interval,
            )
        finally:
            if out.profile is not None:
                out.profile.disable()
        out.end = time.monotonic()
        out.ran = report.ran
    except BaseException as exc:  # reported by the parent, which also stops the others
        out.error = f"worker {index}: {type(exc).__name__}: {exc}"
        ready.abort()
    finally:
        if client is not None:
            client.close()  # type: ignore[attr-defined]


def run_fleet(
    cfg: FleetConfig, proxy: Proxy, database: DatabaseCpu, log: Callable[[str], None]
) -> FleetRun:
    """Run ``cfg.workers`` worker threads on ``proxy`` until the budget is met."""
    records: list[TrialRecord] = []
    lock = threading.Lock()
    ready = threading.Barrier(cfg.workers + 1)
    go = threading.Event()
    workers = [_Worker() for _ in range(cfg.workers)]
    threads = [
        threading.Thread(
            target=_work,
            args=(i, cfg, proxy.url, ready, go, records, lock, workers[i]),
            name=f"fleet-worker-{i}",
            daemon=True,
        )
        for i in range(cfg.workers)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy.control("reset")
        for thread in threads:
            thread.start()
        try:
            ready.wait(SETUP_TIMEOUT_S)
        except threading.BrokenBarrierError:
            go.set()
            _join(threads, SETUP_TIMEOUT_S)
            raise RuntimeError(_first_error(workers) or "a worker did not get ready") from None
        joined = proxy.control("snapshot")
        proxy.control("reset")
        database.reset()
        ticks = machine_ticks()
        cpu0 = time.process_time()
        start = time.monotonic()
        go.set()
        if not _join(threads, cfg.timeout):
            raise RuntimeError(f"the fleet did not finish within {cfg.timeout:g} s")
        client_cpu = time.process_time() - cpu0
        busy = busy_fraction(ticks, machine_ticks())
    snapshot = proxy.control("snapshot")
    database_cpu = database.seconds()
    error = _first_error(workers)
    if error:
        raise RuntimeError(error)
    log(
        f"  {cfg.workers} workers: {len(records)} trials in "
        f"{max(w.end for w in workers) - start:.1f} s"
    )
    records.sort(key=lambda r: r.start)
    return FleetRun(cfg, start, records, workers, client_cpu, snapshot, database_cpu, busy, joined)


def _join(threads: list[threading.Thread], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def _first_error(workers: list[_Worker]) -> str | None:
    return next((w.error for w in workers if w.error), None)


# --------------------------------------------------------------------------- summaries


def cycles(records: list[TrialRecord]) -> list[tuple[float, float, float]]:
    """``(sleep, cycle, inside)`` of every complete cycle: a trial's sleep, the time from its
    objective's start to its worker's next one, and the part of that spent in the objective
    but not asleep (suggestions, attributes, reports)."""
    by_worker: dict[int, list[TrialRecord]] = {}
    for rec in records:
        by_worker.setdefault(rec.worker, []).append(rec)
    found = []
    for runs in by_worker.values():
        runs.sort(key=lambda r: r.start)
        for a, b in itertools.pairwise(runs):
            found.append((a.sleep, b.start - a.start, a.end - a.start - a.sleep))
    return found


def throughput(run: FleetRun) -> dict[str, Any]:
    """Trials/s against the ideal, in steady state and end to end (see the module doc)."""
    cfg, records = run.config, run.records
    found = cycles(records)
    sleeps = [r.sleep for r in records]
    mean_sleep = statistics.fmean(sleeps) if sleeps else None
    result: dict[str, Any] = {
        "workers": cfg.workers,
        "trials_run": len(records),
        "mean_sleep_s": mean_sleep,
        "ideal_trials_per_s": cfg.workers / mean_sleep if mean_sleep else None,
        "cycles": len(found),
    }
    if found:
        sleep_sum = sum(s for s, _, _ in found)
        cycle_sum = sum(c for _, c, _ in found)
        mean_cycle = cycle_sum / len(found)
        inside = statistics.fmean(i for _, _, i in found)
        result.update(
            {
                "steady_trials_per_s": cfg.workers / mean_cycle,
                "steady_ideal_trials_per_s": cfg.workers * len(found) / sleep_sum
                if sleep_sum
                else None,
                "steady_ratio": sleep_sum / cycle_sum if sleep_sum else None,
                "overhead_s_per_trial": (cycle_sum - sleep_sum) / len(found),
                "overhead_in_objective_s": inside,
                "overhead_between_trials_s": mean_cycle - sleep_sum / len(found) - inside,
                "cycle_s_p50": statistics.median(c for _, c, _ in found),
                "cycle_overhead_s_p95": _quantile([c - s for s, c, _ in found], 0.95),
            }
        )
    if records and mean_sleep:
        span = max(r.end for r in records) - run.go
        result["end_to_end_s"] = span
        result["end_to_end_trials_per_s"] = len(records) / span
        result["end_to_end_ratio"] = len(records) / span / (cfg.workers / mean_sleep)
    firsts: dict[int, float] = {}
    for rec in records:
        firsts.setdefault(rec.worker, rec.start)
    if firsts:
        lags = [t - run.go for t in firsts.values()]
        result["start_lag_s"] = {"median": statistics.median(lags), "max": max(lags)}
    ends = [w.end - run.go for w in run.workers]
    result["last_worker_end_s"] = max(ends)
    result["join_s"] = {
        "median": statistics.median(w.join_s for w in run.workers),
        "max": max(w.join_s for w in run.workers),
    }
    return result


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proxy_costs(snapshot: dict[str, Any], trials: int) -> dict[str, Any]:
    """The proxy's counters per new trial, in total and by RPC method."""
    per = max(trials, 1)
    methods = snapshot.get("by_method", {})
    inside = {m: row for m, row in methods.items() if m != "outside_rpcs"}
    outside = methods.get("outside_rpcs", {})
    total = {
        key: sum(row[key] for row in inside.values())
        for key in ("calls", "seconds", "statements", "db_seconds", "checkouts")
    }
    by_method = {
        name: {
            "calls_per_trial": row["calls"] / per,
            "ms_per_call": 1e3 * row["seconds"] / row["calls"] if row["calls"] else None,
            "statements_per_call": row["statements"] / row["calls"] if row["calls"] else None,
            "db_ms_per_call": 1e3 * row["db_seconds"] / row["calls"] if row["calls"] else None,
            "handler_s_per_trial": row["seconds"] / per,
        }
        for name, row in sorted(inside.items(), key=lambda kv: -kv[1]["seconds"])
    }
    return {
        "statements_per_trial": total["statements"] / per,
        "rpcs_per_trial": total["calls"] / per,
        "checkouts_per_trial": total["checkouts"] / per,
        "handler_s_per_trial": total["seconds"] / per,
        "db_s_per_trial": total["db_seconds"] / per,
        "cpu_s_per_trial": snapshot.get("cpu_seconds", 0.0) / per,
        "statements_outside_rpcs": outside.get("statements", 0),
        "by_method": by_method,
    }
