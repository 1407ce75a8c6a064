"""Fleet scale: many workers on one PostgreSQL through the gRPC proxy, and big studies.

Two measurements, in one run, through one ``nas-study serve-storage`` in front of one
PostgreSQL database (``--postgres-url``):

(a) **fleet**: for each of ``--workers`` (8, 16, 32, 64) a fresh study, and that many
    simulated workers on it: threads in this process, each with its own gRPC client,
    running the real worker loop :func:`studies.run_trials` with a global budget of
    ``workers x --trials-per-worker`` and an objective that writes what a real trial writes
    (10 parameters, 11 user attributes, 3 reported epochs) and sleeps ``uniform(--sleep)``
    seconds instead of training (``benchmarks/_fleet/objective.py``). Reported: trials/s
    against the ideal, ``workers / mean sleep``, in steady state (``steady_ratio``: the
    share of the workers' cycles spent asleep, see ``benchmarks/_fleet/fleet.py``) and end
    to end (start-up burst and ragged end included). Goal: ``steady_ratio`` >= 0.9 at the
    largest fleet.
(b) **sizes**: one study grown to each of ``--sizes`` (1,000 and 20,000) finished trials
    (bulk-inserted and read back through Optuna, ``benchmarks/_fleet/populate.py``). The
    study is read once through the proxy (``proxy_first_read_s``: the proxy fills its
    cache), then ``--size-workers`` workers (1) join it (``join_s``) and run ``--batch``
    new trials with ``--size-sleep`` (0) seconds of sleep. Reported per new trial: the
    loop's seconds (cycle minus sleep), SQL statements, RPCs, CPU seconds, and the proxy's
    time by RPC method; then ``--profile-trials`` more trials run with the proxy's handlers
    and the workers' loops profiled (by CPU clock). Goal: seconds per trial at the largest
    size within 1.5x of the smallest.

Statements are counted inside the proxy process, which runs every statement of the fleet:
``benchmarks/_fleet/proxy.py`` starts ``nas-study serve-storage --port P`` (its
``studies.cli.main``, configured by ``$NAS_STUDY_STORAGE`` as a user runs it) after
installing a SQLAlchemy ``before_cursor_execute``/``after_cursor_execute`` listener on
every engine and a gRPC server interceptor, so each statement and its database seconds are
credited to the RPC method that ran it. Statements outside any RPC (the proxy's stale-trial
sweep of every study in the database, every heartbeat interval) are reported apart and not
charged to trials. ``pool_pre_ping`` pings are not statements; ``checkouts_per_trial``
counts them. CPU seconds per trial are split into the clients (this process), the proxy
(its process) and the database (the proxy's backends, found by their
``application_name``, ``benchmarks/_fleet/cpu.py``); ``machine_cores_busy`` is the whole
machine's, other work included.

Caveats: written on 2 cores shared with other work (a load average of 7-11 while it was
measured); the proxy, the database and 64 client threads compete for them with it, so the
load average is recorded before and after, and wall-clock figures vary between runs
(statement and RPC counts do not; CPU seconds vary less). The clients are threads of one
process, so their Python work shares one GIL, which a real fleet of machines does not:
``cpu_s_per_trial.client`` shows how much that is. A database restarted by someone else
during a run fails it. Studies get unique names and are deleted at the end.

Run:
    python -m benchmarks.fleet_scale                     # about 7 min on 2 busy cores
    python -m benchmarks.fleet_scale --quick             # about 1 min
    python -m benchmarks.fleet_scale --workers 64 --trials-per-worker 6 --sizes

The JSON result is printed and written to ``--out``
(default ``benchmarks/results/fleet_scale.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import platform
import sys
import tempfile
import time
import uuid
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from benchmarks._common import positive_int, reproduce, write_report
from benchmarks._fleet.cpu import DatabaseCpu
from benchmarks._fleet.fleet import FleetConfig, run_fleet
from benchmarks._fleet.objective import EPOCHS, SPACE
from benchmarks._fleet.populate import count_states, delete_study, populate
from benchmarks._fleet.proxy import Proxy, profile_tables
from benchmarks._fleet.report import budget_done, goals, summarize, where_time_goes

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "fleet_scale.json"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_ENV_VAR = "NAS_STUDY_BENCH_POSTGRES"
QUICK = {"workers": [4, 8], "trials_per_worker": 4, "sizes": [200, 1000], "batch": 20}


def _seconds_pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH seconds, not {text!r}") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, not {text!r}")
    return pair


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("optuna", "sqlalchemy", "psycopg", "grpcio", "protobuf"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["python"] = platform.python_version()
    return found


def _default_poll_interval() -> float:
    from studies import run_trials

    return float(inspect.signature(run_trials).parameters["poll_interval"].default)


def _fleet_case(
    proxy: Proxy,
    database: DatabaseCpu,
    admin: Any,
    args: argparse.Namespace,
    name: str,
    workers: int,
    log: Any,
) -> dict[str, Any]:
    optuna.create_study(storage=admin, study_name=name, direction="maximize")
    cfg = FleetConfig(
        name,
        workers,
        workers * args.trials_per_worker,
        args.sleep,
        args.seed,
        args.sampler,
        args.poll_interval,
        args.timeout,
    )
    run = run_fleet(cfg, proxy, database, log)
    cell = summarize(run, {}, count_states(admin, name))
    log(
        f"fleet {workers:3d} workers: steady {cell.get('steady_trials_per_s', 0):6.1f} "
        f"trials/s of ideal {cell.get('steady_ideal_trials_per_s', 0):6.1f} "
        f"(ratio {cell.get('steady_ratio', 0):.3f}); end to end "
        f"{cell.get('end_to_end_ratio', 0):.3f}; "
        f"{cell['proxy']['statements_per_trial']:.1f} statements/trial"
    )
    return cell


def _size_case(
    proxy: Proxy,
    database: DatabaseCpu,
    admin: Any,
    args: argparse.Namespace,
    name: str,
    size: int,
    log: Any,
) -> dict[str, Any]:
    started = time.monotonic()
    added = populate(admin, name, size, args.seed)
    filled = time.monotonic() - started
    before = count_states(admin, name)
    cold = _first_read_s(proxy, name)
    cfg = FleetConfig(
        name,
        args.size_workers,
        budget_done(before) + args.batch,
        args.size_sleep,
        args.seed,
        args.sampler,
        args.poll_interval,
        args.timeout,
    )
    run = run_fleet(cfg, proxy, database, log)
    after = count_states(admin, name)
    cell = {
        "trials_before": sum(before.values()),
        "trials_added_to_populate": added,
        "populate_s": filled,
        "proxy_first_read_s": cold,
        **summarize(run, before, after),
    }
    cell["seconds_per_trial"] = cell.get("overhead_s_per_trial")
    if args.profile_trials:
        # Profiling slows everything down: a separate batch, whose times are not reported.
        proxy.control("profile on")
        profiled = dataclasses.replace(
            cfg, budget=budget_done(after) + args.profile_trials, profile=True
        )
        clients = run_fleet(profiled, proxy, database, log)
        cell["profile"] = {
            "trials": args.profile_trials,
            "note": "cProfile by each thread's CPU clock (waits do not count) over a separate "
            "batch; seconds are inflated by profiling, compare them with each other",
            "proxy_handlers": proxy.control("profile off"),
            "worker_loops": profile_tables([w.profile for w in clients.workers if w.profile]),
        }
    log(
        f"size {size:6d}: {1e3 * (cell['seconds_per_trial'] or 0):7.1f} ms/trial, "
        f"{cell['proxy']['statements_per_trial']:.1f} statements/trial, "
        f"join {cell['join_s']['max']:.1f} s (populated in {filled:.1f} s)"
    )
    return cell


def _first_read_s(proxy: Proxy, study_name: str) -> float:
    """Seconds of the first read of the whole study through the proxy since it grew: the
    proxy reads the new trials from the database into its cache, once; the workers' joins
    (``join_s``) then find them there."""
    from storage import open_storage

    client = open_storage(proxy.url)
    try:
        study = optuna.load_study(study_name=study_name, storage=client)
        started = time.monotonic()
        study.get_trials(deepcopy=False)
        return time.monotonic() - started
    finally:
        client.close()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the JSON result and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--workers", type=positive_int, nargs="*", default=[8, 16, 32, 64],
        help="fleet sizes (8 16 32 64); none skips the fleet part",
    )  # fmt: skip
    parser.add_argument("--trials-per-worker", type=positive_int, default=8)
    parser.add_argument(
        "--sleep", type=_seconds_pair, default=(1.0, 2.0), help="LOW,HIGH seconds (1,2)"
    )
    parser.add_argument(
        "--sizes", type=positive_int, nargs="*", default=[1000, 20000],
        help="study sizes (1000 20000); none skips the sizes part",
    )  # fmt: skip
    parser.add_argument("--batch", type=positive_int, default=60, help="new trials per size")
    parser.add_argument("--size-workers", type=positive_int, default=1)
    parser.add_argument("--size-sleep", type=_seconds_pair, default=(0.0, 0.0))
    parser.add_argument(
        "--profile-trials",
        type=int,
        default=10,
        help="after each size, this many more trials, profiled (10; 0: none)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, about 1 min")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV_VAR, DEFAULT_POSTGRES_URL),
        help=f"the database (${POSTGRES_ENV_VAR}, else {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--sampler", choices=("random", "tpe"), default="random")
    parser.add_argument("--poll-interval", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.poll_interval is None:
        args.poll_interval = _default_poll_interval()
    from storage import open_storage, redact_url

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    # Optuna logs each "budget reached" trial with its traceback at WARNING.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    load_before = os.getloadavg()
    run_id = uuid.uuid4().hex[:8]
    admin = open_storage(args.postgres_url, heartbeat=None, wait=True)
    assert isinstance(admin, optuna.storages.RDBStorage)
    # The proxy's own connections are named, so their backends' CPU can be read.
    app_name = f"bench-fleet-{run_id}"
    proxy_db_url = (
        sqlalchemy.engine.make_url(args.postgres_url)
        .update_query_dict({"application_name": app_name})
        .render_as_string(hide_password=False)
    )
    database = DatabaseCpu(admin.engine, app_name)
    created: list[str] = []
    fleet: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="nas-bench-fleet-") as tmp,
            Proxy(proxy_db_url, Path(tmp) / "proxy.log") as proxy,
        ):
            for workers in args.workers:
                created.append(f"bench-fleet-{run_id}-{workers}w")
                fleet[str(workers)] = _fleet_case(
                    proxy, database, admin, args, created[-1], workers, log
                )
            if args.sizes:
                created.append(f"bench-fleet-{run_id}-sizes")
                optuna.create_study(storage=admin, study_name=created[-1], direction="maximize")
                for size in sorted(args.sizes):
                    sizes[str(size)] = _size_case(
                        proxy, database, admin, args, created[-1], size, log
                    )
    finally:
        undeleted = []
        for name in created:
            try:
                delete_study(admin, name)
            except Exception:
                undeleted.append(name)
        admin.engine.dispose()
    met = goals(fleet, sizes)
    report: dict[str, Any] = {
        "benchmark": "fleet_scale",
        "command": reproduce("benchmarks.fleet_scale", argv),
        "postgres_url": redact_url(args.postgres_url),
        "proxy": "nas-study serve-storage --port P (studies.cli.main, run by "
        "benchmarks/_fleet/proxy.py with counters), NAS_STUDY_STORAGE=the database",
        "workers_are": "threads of this process, one gRPC client (open_storage) and one "
        "studies.run_trials loop each",
        "objective": f"{len(SPACE)} parameters, 11 user attributes (the loop's worker "
        f"included), {EPOCHS} reported epochs, sleep uniform(LOW, HIGH) s in their place; "
        "no training",
        "sampler": args.sampler,
        "pruner": "NopPruner",
        "poll_interval_s": args.poll_interval,
        "fleet_settings": {
            "workers": args.workers,
            "trials_per_worker": args.trials_per_worker,
            "sleep_s": list(args.sleep),
        },
        "size_settings": {
            "sizes": sorted(args.sizes),
            "batch": args.batch,
            "workers": args.size_workers,
            "sleep_s": list(args.size_sleep),
        },
        "counted": "in the proxy process: SQL statements (before_cursor_execute) and their "
        "seconds, RPCs by method with their handlers' seconds, process CPU; per new "
        "trial counted (COMPLETE + PRUNED). Statements outside RPCs (the proxy's "
        "stale-trial sweep of all studies) are not charged to trials.",
        "environment": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": _versions(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "goals": met,
        "where_time_goes": where_time_goes(fleet, sizes),
        "fleet": fleet,
        "sizes": sizes,
        "studies_created": created,
        "studies_not_deleted": undeleted,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
