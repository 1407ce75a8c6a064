"""The parent side of ``storage_overhead.py``: the worker pool, the gRPC proxy, and one
measured configuration per storage, loop and process count."""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from benchmarks._storage_overhead.worker import Job, close_storage, rdb_engine, worker_main

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPS = ("plain", "plain_heartbeat", "nas_study", "nas_study_no_heartbeat")
#: Loops that a gRPC proxy cannot serve (its plain client records no heartbeats).
RDB_ONLY_LOOPS = ("plain_heartbeat", "nas_study_no_heartbeat")
#: Seconds to wait for a worker to get ready, or for a configuration to finish.
JOB_TIMEOUT_S = 600.0
#: Seconds to wait for the gRPC proxy to answer after its start.
PROXY_START_TIMEOUT_S = 60.0


class Pool:
    """Worker processes started once; each configuration uses the first ``n`` of them."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for index in range(size):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker_main, args=(index, receive, self.results), daemon=True)
            proc.start()
            self.pipes.append(send)
            self.procs.append(proc)

    def _get(self, deadline: float) -> tuple[str, int, Any]:
        try:
            return self.results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("a worker did not answer in time") from None

    def run(self, jobs: list[Job]) -> tuple[float, float, list[dict[str, Any]]]:
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Run with ``-c`` from the repository root, so ``storage`` is imported from there.
SERVE = """
import sys, warnings, optuna
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
from storage import serve_storage
serve_storage(sys.argv[1], host=sys.argv[2], port=int(sys.argv[3]))
"""


@contextmanager
def grpc_proxy(database_url: str) -> Iterator[tuple[str, int]]:
    """``serve_storage(database_url)`` in a subprocess on a free port, until the end."""
    host, port = "127.0.0.1", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, database_url, host, str(port)],
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


def share(total: int, processes: int) -> list[int]:
    """``total`` trials split over ``processes``, the first ones taking the remainder."""
    return [total // processes + (1 if i < total % processes else 0) for i in range(processes)]


def measure(
    pool: Pool,
    admin: optuna.storages.BaseStorage,
    loop: str,
    url: str,
    processes: int,
    args: argparse.Namespace,
    study_name: str,
) -> dict[str, Any]:
    """Run one loop on ``processes`` workers on a fresh study; summarize it."""
    study_id = admin.create_new_study([optuna.study.StudyDirection.MINIMIZE], study_name)
    plain = loop.startswith("plain")
    shares = share(args.trials, processes) if plain else [args.trials] * processes
    jobs = [
        Job(loop, url, study_name, n, args.seed + i, args.sampler, args.poll_interval)
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


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(plain: dict[str, Any], nas: dict[str, Any] | None) -> dict[str, float | None]:
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
        "time": ratio(nas["seconds_per_trial"], plain["seconds_per_trial"]),
        "time_to_last_trial": ratio(
            nas["seconds_per_trial_to_last_trial"], plain["seconds_per_trial_to_last_trial"]
        ),
        "statements": ratio(nas["statements_per_trial"], plain["statements_per_trial"]),
        "statements_and_pings": ratio(with_pings(nas), with_pings(plain)),
        "rpcs": ratio(nas["rpcs_per_trial"], plain["rpcs_per_trial"]),
    }


def postgres_version(admin: optuna.storages.BaseStorage) -> str | None:
    engine = rdb_engine(admin)
    if engine is None:
        return None
    with engine.connect() as conn:
        return str(conn.execute(sqlalchemy.text("SHOW server_version")).scalar())


def run_storage(
    name: str,
    pool: Pool,
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
        env["postgresql_server"] = postgres_version(admin)
    by_p: dict[str, Any] = {}
    try:
        with grpc_proxy(url) if name == "grpc" else nullcontext() as address:
            loops = [lp for lp in LOOPS if not (name == "grpc" and lp in RDB_ONLY_LOOPS)]
            for processes in args.processes:
                cell: dict[str, Any] = {}
                for loop in loops:
                    if address is not None:
                        loop_url = f"grpc://{address[0]}:{address[1]}"
                    else:
                        loop_url = rdb_url if loop.startswith("plain") else url
                    study_name = f"bench-overhead-{run_id}-{name}-{processes}p-{loop}"
                    if name != "sqlite":
                        created_pg.append(study_name)
                    cell[loop] = measure(pool, admin, loop, loop_url, processes, args, study_name)
                    log(
                        f"{name:10s} {processes}p {loop:22s} "
                        f"{cell[loop]['seconds_per_trial'] * 1e3:8.2f} ms/trial  "
                        f"{cell[loop]['trials_per_s']:7.1f} trials/s"
                    )
                cell["ratio_nas_study_over_plain"] = ratios(cell["plain"], cell["nas_study"])
                # The like-for-like ratio: heartbeats on both sides (not through the proxy,
                # whose plain client has none; nas_study has none there either).
                cell["ratio_nas_study_over_plain_heartbeat"] = ratios(
                    cell.get("plain_heartbeat", cell["plain"]), cell["nas_study"]
                )
                cell["ratio_no_heartbeat"] = ratios(
                    cell["plain"], cell.get("nas_study_no_heartbeat")
                )
                by_p[str(processes)] = cell
    finally:
        close_storage(admin)
    return by_p


def delete_studies(url: str, names: list[str]) -> list[str]:
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
        close_storage(admin)
    return failed
