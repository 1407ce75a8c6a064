"""Storage overhead per trial: nas-study's worker loop against a plain Optuna loop.

What is measured, in one run, on the same storage, with the same trivial objective and
sampler, on fresh studies:

(a) **plain**: each process calls ``optuna.create_study(load_if_exists=True)`` with the
    storage as a plain Optuna user gives it (the URL string, so Optuna's default engine and
    its ``_CachedStorage``; a ``GrpcStorageProxy`` for the proxy), then
    ``study.optimize(objective, n_trials=K)``, the K of all processes summing to
    ``--trials``.
(b) **nas_study**: each process opens the storage with :func:`storage.open_storage` (default
    heartbeats, as workers run), joins the study, then runs
    :func:`studies.run_trials` with the global ``budget=--trials``: the loop that reads
    the study before each trial for the exact global budget, calls ``study.optimize(...,
    n_trials=1)`` and checks the trial's rank inside it.
(c) **nas_study_no_heartbeat**: (b) on ``open_storage(url, heartbeat=None)``, so the cost
    of heartbeats shows separately. Not run on the gRPC proxy: its client records no
    heartbeats, so (b) is already without them there.

The objective suggests 10 parameters (float, log float, int, log int, categorical) and
reports 5 intermediate values, then returns a float; no training. The study is
single-objective with ``NopPruner`` and a seeded ``RandomSampler`` (``--sampler tpe`` for
Optuna's default), so the time is the loop and the storage, not a model or a sampler.

Storages (``--storages``): a SQLite file in a temporary directory; PostgreSQL
(``--postgres-url``; studies get unique names and are deleted at the end); and the gRPC
proxy, :func:`storage.serve_storage` in front of that PostgreSQL, run in a subprocess on a
free local port, polled until it answers and stopped by PID at the end. Both loops go
through the same proxy.

Processes (``--processes``): a pool of worker processes (``spawn``) is started once, so
the cost of importing torch is paid once and not timed. For each configuration the chosen
workers open the storage and the study, say they are ready, and wait; the parent sends them
all a start signal, and the time runs from that signal to the last worker's end.
Per-trial overhead is that wall time divided by the trials counted (COMPLETE), and
throughput is its inverse. ``seconds_to_last_trial`` is the time from the signal to the
last trial's ``datetime_complete``: the nas-study loop, when the last free slots of the
budget are held by trials running elsewhere, waits ``poll_interval`` seconds (2 s by
default) before it looks again, so its workers can end up to that long after the budget
was met. That tail is part of the measured time, as it is in a real run, where it is
small against trials of minutes.

SQL statements: a SQLAlchemy ``before_cursor_execute`` listener on the RDB engine of each
process (every thread, the heartbeat thread included) counts the statements from the start
signal to the end, summed over processes and divided by the trials counted. It does not
see BEGIN/COMMIT or the ``pool_pre_ping`` ping of each connection checkout; checkouts are
counted separately (``checkouts_per_trial``; ``pings_per_trial`` where the engine pings).
Through the gRPC proxy the statements run in the proxy process and are not counted; the
clients' RPCs are counted instead (``rpcs_per_trial``).

Goals reported (``goals``): nas_study/plain ≤ 1.1 in time and in statements on every
storage (RPCs on the proxy), and nas-study throughput growing with processes on PostgreSQL.
They are computed from the numbers as measured, nothing is retried or tuned to pass.

Caveats: on a machine with few cores (this benchmark was written on 2), more processes
than cores contend for the CPU with each other, the database server and the proxy, so
throughput cannot grow much past the core count, and timings of small runs are noisy (run
twice, compare at similar load; ``load_average_1m`` is recorded). The gRPC proxy adds its
own process to that contention. Statement and RPC counts hardly vary between runs; times
do. With the default 40 trials, the nas-study loop's end-of-budget wait (above) is a large
part of its time once there is more than one process; ``--trials 200`` shows the steady
state better. Plain Optuna does not retry a dropped connection, so run it against a
database nobody restarts meanwhile (a test suite that terminates connections fails it).

Run:
    python benchmarks/storage_overhead.py                        # 2-3 min on 2 cores
    python benchmarks/storage_overhead.py --trials 200 --processes 1,2
    python benchmarks/storage_overhead.py --storages sqlite --out /tmp/sqlite.json

The JSON result is printed and written to ``--out``
(default ``benchmarks/results/storage_overhead.json``).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import multiprocessing
import os
import platform
import queue
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import optuna  # noqa: E402
import sqlalchemy  # noqa: E402
from _common import positive_int, write_report  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "storage_overhead.json"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_ENV_VAR = "NAS_STUDY_BENCH_POSTGRES"
STORAGES = ("sqlite", "postgresql", "grpc")
LOOPS = ("plain", "nas_study", "nas_study_no_heartbeat")
#: The issue's goal: nas-study at most this many times plain, in time and in statements.
GOAL_RATIO = 1.1
#: Seconds to wait for a worker to get ready, or for a configuration to finish.
JOB_TIMEOUT_S = 600.0
#: Seconds to wait for the gRPC proxy to answer after its start.
PROXY_START_TIMEOUT_S = 60.0
N_PARAMS = 10
N_STEPS = 5


def objective(trial: optuna.trial.Trial) -> float:
    """10 parameters, 5 intermediate values, a float; no training."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    momentum = trial.suggest_float("momentum", 0.8, 0.99)
    n_layers = trial.suggest_int("n_layers", 1, 4)
    units = trial.suggest_int("units", 16, 512, log=True)
    epochs = trial.suggest_int("epochs", 1, 10)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    activation = trial.suggest_categorical("activation", ["relu", "gelu", "tanh"])
    optimizer = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    loss = 1.0 + lr * 10 + weight_decay + dropout * (1 - momentum) + n_layers / units
    loss += epochs / batch_size + (activation == "gelu") * 0.01 + (optimizer == "sgd") * 0.02
    for step in range(N_STEPS):
        loss *= 0.9
        trial.report(loss, step)
    return loss


# --------------------------------------------------------------------------- worker side


class _Counter:
    """Statements, connection checkouts and gRPC calls of one process, across its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statements = 0
        self.checkouts = 0
        self.rpcs = 0

    def reset(self) -> None:
        with self._lock:
            self.statements = self.checkouts = self.rpcs = 0

    def statement(self, *_: Any) -> None:
        with self._lock:
            self.statements += 1

    def checkout(self, *_: Any) -> None:
        with self._lock:
            self.checkouts += 1

    def rpc(self) -> None:
        with self._lock:
            self.rpcs += 1


class _CountingStub:
    """A gRPC stub whose every call is counted first."""

    def __init__(self, stub: Any, counter: _Counter) -> None:
        self._stub = stub
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter.rpc()
            return method(*args, **kwargs)

        return call


def _rdb_engine(storage: optuna.storages.BaseStorage) -> sqlalchemy.engine.Engine | None:
    """The SQLAlchemy engine under an ``RDBStorage``, bare or in Optuna's ``_CachedStorage``."""
    for candidate in (storage, getattr(storage, "_backend", None)):
        engine = getattr(candidate, "engine", None)
        if isinstance(engine, sqlalchemy.engine.Engine):
            return engine
    return None


def _instrument(storage: optuna.storages.BaseStorage, counter: _Counter) -> dict[str, Any]:
    """Count ``storage``'s statements (RDB) or RPCs (gRPC proxy); say what is counted."""
    engine = _rdb_engine(storage)
    if engine is not None:
        sqlalchemy.event.listen(engine, "before_cursor_execute", counter.statement)
        sqlalchemy.event.listen(engine, "checkout", counter.checkout)
        return {"counts": "statements", "pre_ping": bool(getattr(engine.pool, "_pre_ping", False))}
    stub = getattr(storage, "_stub", None)
    cache = getattr(storage, "_cache", None)
    if stub is not None:
        counting = _CountingStub(stub, counter)
        storage._stub = counting  # type: ignore[attr-defined]
        if cache is not None and hasattr(cache, "grpc_client"):
            cache.grpc_client = counting
        return {"counts": "rpcs", "pre_ping": False}
    return {"counts": "nothing", "pre_ping": False}


def _close(storage: optuna.storages.BaseStorage) -> None:
    engine = _rdb_engine(storage)
    if engine is not None:
        engine.dispose()
    close = getattr(storage, "close", None)
    if callable(close):
        close()


@dataclass(frozen=True)
class _Job:
    """One worker's part of one configuration."""

    loop: str  # one of LOOPS
    url: str  # the URL the loop opens: an RDB URL, or grpc://HOST:PORT
    study_name: str
    n_trials: int  # plain: this process's trials; nas-study: the global budget
    seed: int
    sampler: str
    poll_interval: float


def _make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _grpc_host_port(url: str) -> tuple[str, int]:
    parsed = sqlalchemy.engine.make_url(url)
    assert parsed.host is not None and parsed.port is not None
    return parsed.host, parsed.port


def _open_for(job: _Job) -> optuna.storages.BaseStorage | str:
    """What the loop hands to ``create_study``."""
    import storage as nas_storage

    if job.loop == "plain":
        if job.url.startswith("grpc://"):
            host, port = _grpc_host_port(job.url)
            return optuna.storages.GrpcStorageProxy(host=host, port=port)
        return job.url  # Optuna's own default: RDBStorage(url) in a _CachedStorage
    if job.loop == "nas_study":
        return nas_storage.open_storage(job.url)
    return nas_storage.open_storage(job.url, heartbeat=None)


def _run_job(job: _Job, jobs: Connection, results: Any, index: int) -> None:
    from studies import run_trials

    counter = _Counter()
    study = optuna.create_study(
        storage=_open_for(job),
        study_name=job.study_name,
        direction="minimize",
        sampler=_make_sampler(job.sampler, job.seed),
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    info = _instrument(study._storage, counter)
    results.put(("ready", index, None))
    if jobs.recv() != "go":
        _close(study._storage)
        return
    counter.reset()
    start = time.monotonic()
    ran = job.n_trials
    if job.loop == "plain":
        study.optimize(objective, n_trials=job.n_trials)
    else:
        report = run_trials(
            study,
            objective,
            budget=job.n_trials,
            progress=False,
            poll_interval=job.poll_interval,
        )
        ran = report.ran
    end = time.monotonic()
    results.put(
        (
            "done",
            index,
            {
                "start": start,
                "end": end,
                "ran": ran,
                "statements": counter.statements,
                "checkouts": counter.checkouts,
                "rpcs": counter.rpcs,
                **info,
            },
        )
    )
    _close(study._storage)


def _worker_main(index: int, jobs: Connection, results: Any) -> None:
    """A pool worker: run each job it receives until it receives ``None``."""
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import studies  # noqa: F401  # pay for importing torch once, before any timing

    while True:
        job = jobs.recv()
        if job is None:
            return
        try:
            _run_job(job, jobs, results, index)
        except Exception:
            results.put(("error", index, traceback.format_exc()))


# --------------------------------------------------------------------------- parent side


class _Pool:
    """Worker processes started once; each configuration uses the first ``n`` of them."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for index in range(size):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker_main, args=(index, receive, self.results), daemon=True
            )
            proc.start()
            self.pipes.append(send)
            self.procs.append(proc)

    def _get(self, deadline: float) -> tuple[str, int, Any]:
        try:
            return self.results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("a worker did not answer in time") from None

    def run(self, jobs: list[_Job]) -> tuple[float, float, list[dict[str, Any]]]:
        """Run one job per worker; return the start signal's monotonic and wall-clock time
        and each worker's report."""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        for pipe, job in zip(self.pipes, jobs, strict=False):
            pipe.send(job)
        ready: list[int] = []
        errors: list[str] = []
        while len(ready) + len(errors) < len(jobs):
            kind, index, payload = self._get(deadline)
            if kind == "ready":
                ready.append(index)
            else:
                errors.append(str(payload))
        if errors:
            for index in ready:
                self.pipes[index].send("abort")
            raise RuntimeError("a worker failed to set up:\n" + errors[0])
        start_wall = time.time()
        start = time.monotonic()
        for index in range(len(jobs)):
            self.pipes[index].send("go")
        reports: dict[int, dict[str, Any]] = {}
        while len(reports) + len(errors) < len(jobs):
            kind, index, payload = self._get(deadline)
            if kind == "done":
                reports[index] = payload
            else:
                errors.append(str(payload))
        if errors:
            raise RuntimeError("a worker failed:\n" + errors[0])
        return start, start_wall, [reports[i] for i in range(len(jobs))]

    def close(self) -> None:
        for pipe in self.pipes:
            with suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SERVE = """
import sys
sys.path.insert(0, sys.argv[1])
import warnings, optuna
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
from storage import serve_storage
serve_storage(sys.argv[2], host=sys.argv[3], port=int(sys.argv[4]))
"""


@contextmanager
def _grpc_proxy(database_url: str) -> Iterator[tuple[str, int]]:
    """``serve_storage(database_url)`` in a subprocess on a free port, until the end."""
    host, port = "127.0.0.1", _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(REPO_ROOT), database_url, host, str(port)],
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + PROXY_START_TIMEOUT_S
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            probe = optuna.storages.GrpcStorageProxy(host=host, port=port)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the gRPC proxy exited at start (status {proc.returncode})")
                try:
                    probe.wait_server_ready(timeout=1.0)
                    probe.get_all_studies()  # answers, and reaches its database
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the gRPC proxy did not answer within {PROXY_START_TIMEOUT_S:g} s"
                        ) from None
                    time.sleep(0.5)
        finally:
            probe.close()
        yield host, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _share(total: int, processes: int) -> list[int]:
    """``total`` trials split over ``processes``, the first ones taking the remainder."""
    return [total // processes + (1 if i < total % processes else 0) for i in range(processes)]


def _measure(
    pool: _Pool,
    admin: optuna.storages.BaseStorage,
    loop: str,
    url: str,
    processes: int,
    args: argparse.Namespace,
    study_name: str,
) -> dict[str, Any]:
    """Run one loop on ``processes`` workers on a fresh study; summarize it."""
    study_id = admin.create_new_study([optuna.study.StudyDirection.MINIMIZE], study_name)
    shares = _share(args.trials, processes) if loop == "plain" else [args.trials] * processes
    jobs = [
        _Job(loop, url, study_name, n, args.seed + i, args.sampler, args.poll_interval)
        for i, n in enumerate(shares)
    ]
    start, start_wall, reports = pool.run(jobs)
    wall = max(r["end"] for r in reports) - start
    trials = admin.get_all_trials(study_id, deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    finished = [t.datetime_complete for t in complete if t.datetime_complete is not None]
    to_last = max(t.timestamp() for t in finished) - start_wall if finished else None
    counted = len(complete)
    per = max(counted, 1)
    counts = reports[0]["counts"]
    statements = sum(r["statements"] for r in reports)
    checkouts = sum(r["checkouts"] for r in reports)
    rpcs = sum(r["rpcs"] for r in reports)
    pre_ping = reports[0]["pre_ping"]
    return {
        "processes": processes,
        "trials_complete": counted,
        "trials_failed": sum(1 for t in trials if t.state == TrialState.FAIL),
        "trials_other": sum(
            1 for t in trials if t.state not in (TrialState.COMPLETE, TrialState.FAIL)
        ),
        "wall_seconds": wall,
        "seconds_per_trial": wall / per,
        "trials_per_s": counted / wall if wall > 0 else None,
        "seconds_to_last_trial": to_last,
        "seconds_per_trial_to_last_trial": None if to_last is None else to_last / per,
        "statements_per_trial": statements / per if counts == "statements" else None,
        "checkouts_per_trial": checkouts / per if counts == "statements" else None,
        "pings_per_trial": (checkouts / per if pre_ping else 0.0)
        if counts == "statements"
        else None,
        "rpcs_per_trial": rpcs / per if counts == "rpcs" else None,
        "per_process": [
            {
                "trials_run": r["ran"],
                "seconds": r["end"] - r["start"],
                "start_lag_s": r["start"] - start,
                "statements": r["statements"] if counts == "statements" else None,
                "rpcs": r["rpcs"] if counts == "rpcs" else None,
            }
            for r in reports
        ],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _ratios(plain: dict[str, Any], nas: dict[str, Any] | None) -> dict[str, float | None]:
    if nas is None:
        return {
            "time": None,
            "time_to_last_trial": None,
            "statements": None,
            "statements_and_pings": None,
            "rpcs": None,
        }

    def with_pings(loop: dict[str, Any]) -> float | None:
        if loop["statements_per_trial"] is None:
            return None
        return loop["statements_per_trial"] + loop["pings_per_trial"]

    return {
        "time": _ratio(nas["seconds_per_trial"], plain["seconds_per_trial"]),
        "time_to_last_trial": _ratio(
            nas["seconds_per_trial_to_last_trial"], plain["seconds_per_trial_to_last_trial"]
        ),
        "statements": _ratio(nas["statements_per_trial"], plain["statements_per_trial"]),
        "statements_and_pings": _ratio(with_pings(nas), with_pings(plain)),
        "rpcs": _ratio(nas["rpcs_per_trial"], plain["rpcs_per_trial"]),
    }


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("optuna", "sqlalchemy", "psycopg", "grpcio", "protobuf", "torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["python"] = platform.python_version()
    found["sqlite"] = sqlite3.sqlite_version
    return found


def _postgres_version(admin: optuna.storages.BaseStorage) -> str | None:
    engine = _rdb_engine(admin)
    if engine is None:
        return None
    with engine.connect() as conn:
        return str(conn.execute(sqlalchemy.text("SHOW server_version")).scalar())


def _int_list(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4, not {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, not {text!r}")
    return values


def _storage_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in STORAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(STORAGES)}, not {text!r}")
    return [s for s in STORAGES if s in names]


def _default_poll_interval() -> float:
    from studies import run_trials

    return float(inspect.signature(run_trials).parameters["poll_interval"].default)


def _goals(results: dict[str, dict[str, Any]], processes: list[int]) -> dict[str, Any]:
    def all_le(values: list[float | None]) -> bool | None:
        measured = [v for v in values if v is not None]
        if not measured:
            return None
        return all(v <= GOAL_RATIO for v in measured) and len(measured) == len(values)

    cells = [(s, p, cell) for s, by_p in results.items() for p, cell in by_p.items()]
    time_ratios = [cell["ratio_nas_study_over_plain"]["time"] for _, _, cell in cells]
    rdb = [c for s, _, c in cells if s != "grpc"]
    grpc = [c for s, _, c in cells if s == "grpc"]
    statement_ratios = [c["ratio_nas_study_over_plain"]["statements"] for c in rdb]
    rpc_ratios = [c["ratio_nas_study_over_plain"]["rpcs"] for c in grpc]
    statements_met = all_le(statement_ratios) if rdb else None
    rpcs_met = all_le(rpc_ratios) if grpc else None
    goals: dict[str, Any] = {
        "ratio_limit": GOAL_RATIO,
        "time_ratio_le_limit_every_storage": all_le(time_ratios),
        "time_ratio_to_last_trial_le_limit_every_storage": all_le(
            [c["ratio_nas_study_over_plain"]["time_to_last_trial"] for _, _, c in cells]
        ),
        "statement_ratio_le_limit_sqlite_postgresql": statements_met,
        "rpc_ratio_le_limit_grpc": rpcs_met,
        "statement_ratio_le_limit_every_storage": None
        if statements_met is None and rpcs_met is None
        else bool((statements_met is not False) and (rpcs_met is not False)),
        "postgresql_nas_study_throughput_grows_with_processes": None,
        "postgresql_plain_throughput_grows_with_processes": None,
        "notes": (
            "Time ratios use the default nas_study loop (heartbeats on; none through the "
            "proxy) and the wall time to the last worker's end; the *_to_last_trial variant "
            "stops the clock at the last trial's completion instead (it leaves out the "
            "loop's poll_interval wait at the end). The statement goal on the gRPC proxy is "
            "judged by client RPCs, since its SQL runs in the proxy process; it counts "
            "statements only (statements_and_pings_ratio adds the pool's pre-ping round "
            "trips, which plain Optuna's engine does not make). Throughput "
            "grows means strictly more trials/s at each larger process count measured."
        ),
    }
    pg = results.get("postgresql")
    if pg and len(processes) > 1:
        for loop, key in (
            ("nas_study", "postgresql_nas_study_throughput_grows_with_processes"),
            ("plain", "postgresql_plain_throughput_grows_with_processes"),
        ):
            rates = [pg[str(p)][loop]["trials_per_s"] for p in processes if str(p) in pg]
            goals[key] = all(b > a for a, b in itertools.pairwise(rates))
    return goals


def _summary(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, by_p in results.items():
        for p, cell in by_p.items():
            nas, plain = cell["nas_study"], cell["plain"]
            no_hb = cell.get("nas_study_no_heartbeat")
            ratios, ratios_no_hb = cell["ratio_nas_study_over_plain"], cell["ratio_no_heartbeat"]
            rows.append(
                {
                    "storage": name,
                    "processes": int(p),
                    "plain_s_per_trial": plain["seconds_per_trial"],
                    "nas_s_per_trial": nas["seconds_per_trial"],
                    "time_ratio": ratios["time"],
                    "time_ratio_to_last_trial": ratios["time_to_last_trial"],
                    "time_ratio_no_heartbeat": ratios_no_hb["time"],
                    "plain_statements_per_trial": plain["statements_per_trial"],
                    "nas_statements_per_trial": nas["statements_per_trial"],
                    "statements_ratio": ratios["statements"],
                    "statements_and_pings_ratio": ratios["statements_and_pings"],
                    "statements_ratio_no_heartbeat": ratios_no_hb["statements"],
                    "rpcs_ratio": ratios["rpcs"],
                    "plain_trials_per_s": plain["trials_per_s"],
                    "nas_trials_per_s": nas["trials_per_s"],
                    "nas_no_heartbeat_trials_per_s": no_hb["trials_per_s"] if no_hb else None,
                    "nas_budget_reached_failures": nas["trials_failed"],
                }
            )
    return rows


def _run_storage(
    name: str,
    pool: _Pool,
    args: argparse.Namespace,
    run_id: str,
    tmp: Path,
    created_pg: list[str],
    env: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    from storage import open_storage, parse_storage_url

    url = f"sqlite:///{tmp / 'storage_overhead.db'}" if name == "sqlite" else args.postgres_url
    # Plain Optuna gets the same database and driver (psycopg 3), as a URL string.
    rdb_url = parse_storage_url(url).render_as_string(hide_password=False)
    # Opening it the nas-study way once also switches a SQLite file to WAL for both loops.
    admin = open_storage(url, heartbeat=None)
    if name != "sqlite" and "postgresql_server" not in env:
        env["postgresql_server"] = _postgres_version(admin)
    by_p: dict[str, Any] = {}
    try:
        with _grpc_proxy(url) if name == "grpc" else nullcontext() as address:
            loops = [lp for lp in LOOPS if not (name == "grpc" and lp == "nas_study_no_heartbeat")]
            for processes in args.processes:
                cell: dict[str, Any] = {}
                for loop in loops:
                    if address is not None:
                        loop_url = f"grpc://{address[0]}:{address[1]}"
                    else:
                        loop_url = rdb_url if loop == "plain" else url
                    study_name = f"bench-overhead-{run_id}-{name}-{processes}p-{loop}"
                    if name != "sqlite":
                        created_pg.append(study_name)
                    cell[loop] = _measure(pool, admin, loop, loop_url, processes, args, study_name)
                    log(
                        f"{name:10s} {processes}p {loop:22s} "
                        f"{cell[loop]['seconds_per_trial'] * 1e3:8.2f} ms/trial  "
                        f"{cell[loop]['trials_per_s']:7.1f} trials/s"
                    )
                cell["ratio_nas_study_over_plain"] = _ratios(cell["plain"], cell["nas_study"])
                cell["ratio_no_heartbeat"] = _ratios(
                    cell["plain"], cell.get("nas_study_no_heartbeat")
                )
                by_p[str(processes)] = cell
    finally:
        _close(admin)
    return by_p


def _delete_studies(url: str, names: list[str]) -> list[str]:
    """Delete the benchmark's studies from PostgreSQL; return the names that failed."""
    from storage import open_storage

    if not names:
        return []
    failed = []
    admin = open_storage(url, heartbeat=None)
    try:
        for study_name in names:
            try:
                optuna.delete_study(study_name=study_name, storage=admin)
            except KeyError:
                pass  # never created (the run stopped before it)
            except Exception:
                failed.append(study_name)
    finally:
        _close(admin)
    return failed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the JSON result and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--trials", type=positive_int, default=40, help="trials per configuration and loop (40)"
    )
    parser.add_argument(
        "--storages",
        type=_storage_list,
        default=list(STORAGES),
        help="comma-separated: sqlite,postgresql,grpc (all)",
    )
    parser.add_argument(
        "--processes", type=_int_list, default=[1, 2, 4, 8], help="comma-separated (1,2,4,8)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV_VAR, DEFAULT_POSTGRES_URL),
        help=f"PostgreSQL for the postgresql and grpc storages (${POSTGRES_ENV_VAR}, else "
        f"{DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--sampler", choices=("random", "tpe"), default="random")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="run_trials' poll_interval (default: run_trials' own default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    args = parser.parse_args(argv)
    if args.poll_interval is None:
        args.poll_interval = _default_poll_interval()
    from storage import redact_url

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()[0]
    run_id = uuid.uuid4().hex[:8]
    env: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": _versions(),
    }
    results: dict[str, dict[str, Any]] = {}
    created_pg: list[str] = []
    t0 = time.perf_counter()
    pool = _Pool(max(args.processes))
    try:
        with tempfile.TemporaryDirectory(prefix="nas-bench-storage-") as tmp:
            for name in args.storages:
                results[name] = _run_storage(
                    name, pool, args, run_id, Path(tmp), created_pg, env, log
                )
    finally:
        pool.close()
        undeleted = _delete_studies(args.postgres_url, created_pg)
    env["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    report: dict[str, Any] = {
        "benchmark": "storage_overhead",
        "trials_per_configuration": args.trials,
        "processes": args.processes,
        "storages": args.storages,
        "postgres_url": redact_url(args.postgres_url),
        "sampler": args.sampler,
        "pruner": "NopPruner",
        "objective": f"{N_PARAMS} suggested parameters (float, log float, int, log int, "
        f"categorical), {N_STEPS} intermediate values, single objective; no training",
        "poll_interval_s": args.poll_interval,
        "loops": {
            "plain": "optuna.create_study(storage=URL string | GrpcStorageProxy, "
            "load_if_exists=True) then study.optimize(n_trials=K), K summing to the trials",
            "nas_study": "storage.open_storage(url) (default heartbeats; none via the "
            "proxy), then studies.run_trials(budget=trials) in every process",
            "nas_study_no_heartbeat": "as nas_study with open_storage(url, heartbeat=None); "
            "not run on grpc",
        },
        "timed": "from the start signal, sent once every process had opened the storage and "
        "the study, to the last process's end; seconds_per_trial = that / COMPLETE trials",
        "counted": "statements: SQLAlchemy before_cursor_execute on each process's RDB engine "
        "(all threads, from the start signal), summed, per COMPLETE trial; BEGIN/COMMIT and "
        "pool_pre_ping pings are not statements (pings_per_trial counts checkouts of a "
        "pinging pool). grpc: statements run in the proxy and are not counted; "
        "rpcs_per_trial counts the clients' gRPC calls instead",
        "environment": env,
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "summary": _summary(results),
        "goals": _goals(results, args.processes),
        "results": results,
        "studies_not_deleted": undeleted,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
