"""Study size: each sampler's per-trial overhead when the study already holds N trials.

What is measured: the per-trial time a worker spends **outside training** once the study
holds 100, 1,000 or 5,000 finished trials, for each sampler, split into the sampler, the
storage and the loop (see ``benchmarks/_study_size/timing.py`` for the exact split).

How, for each size N:

1. One random search of the ``digits-mlp`` catalog study's space, run in memory with a
   stand-in objective (``_study_size/stand_in.py``): the real ``nas_objectives.suggest``
   and the user attributes the real objective records, but ``(accuracy, params)`` from a
   smooth synthetic function instead of training. Its first N trials are added to the
   study with ``Study.add_trials`` in a SQLite file opened by ``storage.open_storage``,
   snapshotted once per size.
2. For each sampler, a fresh copy of the snapshot is opened with ``open_storage`` (default
   heartbeats, as a worker runs), the study joined with ``studies.open_study`` (the sampler
   built by ``studies.build_sampler`` from the catalog study with its ``[sampler]`` swapped),
   ``--warmup`` trials run untimed (one-off costs: a sampler's first replay of the history,
   GP's imports), then ``--trials`` trials run through ``studies.run_trials``, timed.

Samplers (``--samplers``): ``NAME`` or ``NAME+KEY=VALUE+...``. ``tpe`` starts from the
catalog's options (``digits-mlp.toml``: ``n_startup_trials = 12``, ``multivariate``,
``group``), every other name from its defaults; ``+KEY=VALUE`` (a TOML value) sets one
more, e.g. ``tpe+n_ei_candidates=8``, ``tpe+multivariate=false+group=false`` or
``tpe+history=1000`` (``studies.samplers.HistoryWindowSampler``: the sampler sees the 1,000
most recent finished trials). ``--max-size-for gp=100`` skips a slow sampler above a size,
``--max-trials-for gp=3`` times fewer of its trials.

Per cell (milliseconds per timed trial, means): ``sampler_ms``, ``storage_ms`` (with
``storage_detail_ms`` by who called), ``loop_ms`` (``loop_detail_ms``: ``worker_loop``,
``run_trials`` outside ``study.optimize``, and ``optuna_trial``, Optuna's trial machinery
with nas-study's budget check), their sums ``sampler_plus_loop_ms`` and
``non_training_ms``, the stand-in's own time (left out), the whole trial's time
(``total_ms``, mean, median and max), the same split in the thread's CPU time (``cpu``),
SQL statements per trial, and ``first_read_ms``, a joining worker's first read of the
whole study. ``worker_loop_by_size`` gathers the loop's own share by size: the
question whether the loop's read before every trial grows with the study.

Goal (issue 14): sampler plus loop at most 100 ms a trial at 5,000 trials with the
catalog's settings, or a setting that gets there; ``goal`` reports it from the numbers.

Search quality (``search_quality``): what a faster setting gives up, measured on the
tabular benchmark (``_study_size/tabular_cost.py``): ``--hv-settings`` each search the
table ``--hv-seeds`` times for ``--hv-trials`` trials, scored by relative hypervolume
(plain and strict) and, in a single-objective search of accuracy, by regret. A window is
measured at the same share of the run as at 5,000 trials (``history=60`` of 300 trials
stands for 1,000 of 5,000), since nobody can afford 5,000-trial runs of the slow baseline.

Caveats: times on a shared machine are noisy (``load_average_1m`` is recorded before and
after, and per cell); medians are given beside means. The stand-in's trials are all
COMPLETE and feasible. ``--storages memory`` adds Optuna's in-memory storage, where the
storage share is small and the sampler's stands alone.

Run::

    python -m benchmarks.study_size                       # about 7 minutes on 2 cores
    python -m benchmarks.study_size --sizes 100 1000 --samplers tpe random --trials 10 \
        --hv-settings --population-dir /tmp/study-size
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import tomllib

from benchmarks._common import positive_int, reproduce, write_report
from benchmarks._study_size.cells import measure
from benchmarks._study_size.stand_in import (
    fresh_copy,
    populate_memory,
    populate_sqlite,
    source_trials,
)
from benchmarks._study_size.tabular_cost import hypervolume_cost
from storage import open_storage
from studies import ComponentSpec, StudySpec
from studies.samplers import check_sampler_options
from studies.spec import resolve_spec

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "study_size.json"
CATALOG_STUDY = "digits-mlp"
DEFAULT_SAMPLERS = (
    "tpe",
    "tpe+history=1000",
    "tpe+history=500",
    "tpe+n_ei_candidates=8",
    "tpe+multivariate=false+group=false",
    "random",
    "evolution",
    "reinforce",
    "nsga2",
    "qmc",
    "gp",
)
STORAGES = ("sqlite", "memory")
#: The issue's goal: sampler plus loop, per trial, at the largest size.
GOAL_MS = 100.0
#: Settings whose cost in search quality is measured, the first being the baseline. The
#: windows are the same share of a 300-trial run as 1,000 and 500 are of 5,000 trials.
DEFAULT_HV_SETTINGS = ("tpe", "tpe+history=60", "tpe+history=30", "tpe+n_ei_candidates=8")
HV_BUDGETS = (50, 100, 200, 300, 500)
#: The population's random search is seeded apart from the samplers (the study's seed).
POPULATION_SEED = 12345


def parse_strategy(text: str, catalog: StudySpec) -> ComponentSpec:
    """``NAME[+KEY=VALUE...]`` as a ``[sampler]`` table (``tpe`` from the catalog's)."""
    name, *pairs = text.split("+")
    options = dict(catalog.sampler.options) if name == catalog.sampler.name else {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r}: expected NAME+KEY=VALUE, got {pair!r}")
        try:
            options[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            options[key] = raw  # a bare word is a string
    problem = check_sampler_options(name, options)
    if problem is not None:
        field, message, value = problem
        raise argparse.ArgumentTypeError(f"{text!r}: {field}: {message} (got {value!r})")
    return ComponentSpec(name, options)


def _name_numbers(flag: str, items: list[str], parser: argparse.ArgumentParser) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, number = item.partition("=")
        if not number.isdigit() or int(number) < 1:
            parser.error(f"{flag}: expected NAME=N with N >= 1, got {item!r}")
        out[name] = int(number)
    return out


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("optuna", "sqlalchemy", "numpy", "torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 2)


def _worker_loop_by_size(results: dict[str, Any]) -> dict[str, Any]:
    """The loop's own share by size (median over samplers): does its read grow?"""
    out: dict[str, Any] = {}
    for storage_name, by_size in results.items():
        out[storage_name] = {}
        for size, cells in by_size.items():
            measured = [c for c in cells.values() if "sampler_ms" in c]
            if not measured:
                continue
            out[storage_name][size] = {
                "python_ms": _median(c["loop_detail_ms"]["worker_loop"] for c in measured),
                "storage_read_ms": _median(
                    c["storage_detail_ms"].get("worker_loop", 0.0) for c in measured
                ),
                "first_read_ms": _median(c["first_read_ms"] for c in measured),
            }
    return out


def _goal(results: dict[str, Any], sizes: list[int], catalog_label: str) -> dict[str, Any]:
    largest = str(max(sizes))
    cells = {k: c for k, c in results.get("sqlite", {}).get(largest, {}).items() if "cpu" in c}

    def meeting(pick: Callable[[dict[str, Any]], float]) -> list[str]:
        return sorted(label for label, c in cells.items() if pick(c) <= GOAL_MS)

    catalog = cells.get(catalog_label)
    return {
        "limit_ms": GOAL_MS,
        "size": int(largest),
        "judged_on": "sampler_plus_loop_ms on SQLite, wall time; cpu: the thread's CPU time, "
        "which the machine's load does not inflate",
        "catalog_sampler": catalog_label,
        "catalog_sampler_plus_loop_ms": None
        if catalog is None
        else catalog["sampler_plus_loop_ms"],
        "catalog_cpu_sampler_plus_loop_ms": None
        if catalog is None
        else catalog["cpu"]["sampler_plus_loop_ms"],
        "catalog_met": None if catalog is None else catalog["sampler_plus_loop_ms"] <= GOAL_MS,
        "catalog_met_cpu": None
        if catalog is None
        else catalog["cpu"]["sampler_plus_loop_ms"] <= GOAL_MS,
        "settings_meeting_it": meeting(lambda c: c["sampler_plus_loop_ms"]),
        "settings_meeting_it_cpu": meeting(lambda c: c["cpu"]["sampler_plus_loop_ms"]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the JSON result and write it to ``--out``."""
    catalog = resolve_spec(CATALOG_STUDY)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=positive_int,
        default=[100, 1000, 5000],
        help="finished trials in the study before the timed ones (100 1000 5000)",
    )
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=list(DEFAULT_SAMPLERS),
        help="NAME or NAME+KEY=VALUE+... (tpe starts from the catalog's options)",
    )
    parser.add_argument(
        "--trials",
        nargs="+",
        type=positive_int,
        default=[20, 12, 6],
        help="timed trials per size: one number for all, or one per size (20 12 6)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed trials first (1)")
    parser.add_argument(
        "--storages",
        nargs="+",
        choices=STORAGES,
        default=["sqlite"],
        help="sqlite (a file, through storage.open_storage) and/or memory (Optuna's "
        "InMemoryStorage) (sqlite)",
    )
    parser.add_argument(
        "--max-size-for",
        nargs="*",
        default=["gp=100"],
        metavar="NAME=N",
        help="skip a sampler above size N (gp=100: some 45 s a trial at 1,000)",
    )
    parser.add_argument(
        "--max-trials-for",
        nargs="*",
        default=["gp=3"],
        metavar="NAME=K",
        help="time at most K trials of a sampler (gp=3: some 6 s a trial at 100)",
    )
    parser.add_argument(
        "--hv-settings",
        nargs="*",
        default=list(DEFAULT_HV_SETTINGS),
        help="settings whose search quality the tabular benchmark measures, the first the "
        "baseline; none to skip",
    )
    parser.add_argument("--hv-trials", type=positive_int, default=300, help="trials a run (300)")
    parser.add_argument("--hv-seeds", type=positive_int, default=10, help="runs a setting (10)")
    parser.add_argument(
        "--population-dir",
        type=Path,
        default=None,
        help="keep the populated snapshots here and reuse them on the next run (default: "
        "a temporary folder, removed); delete it when the stand-in changes",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f"--warmup: must be >= 0, not {args.warmup}")
    sizes = sorted(set(args.sizes))
    if len(args.trials) not in (1, len(sizes)):
        parser.error(f"--trials: give one number or one per size ({len(sizes)})")
    per_size = args.trials * len(sizes) if len(args.trials) == 1 else args.trials
    trials = dict(zip(sizes, per_size, strict=True))
    try:
        strategies = {label: parse_strategy(label, catalog) for label in args.samplers}
        hv_settings = {label: parse_strategy(label, catalog) for label in args.hv_settings}
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--samplers, --hv-settings: {exc}")
    max_size = _name_numbers("--max-size-for", args.max_size_for, parser)
    max_trials = _name_numbers("--max-trials-for", args.max_trials_for, parser)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    load_before = _load()
    t0 = time.perf_counter()
    population = source_trials(catalog, max(sizes), POPULATION_SEED)
    populate_s: dict[str, dict[str, float]] = {}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="nas-bench-study-size-") as tmp:
        folder = Path(tmp)
        snapshots: dict[int, Path] = {}
        if "sqlite" in args.storages:
            keep = args.population_dir or folder
            keep.mkdir(parents=True, exist_ok=True)
            tag = f"{CATALOG_STUDY}-seed{POPULATION_SEED}"
            snapshots, seconds = populate_sqlite(catalog, population, sizes, keep, tag)
            if seconds is None:
                log(f"reusing the snapshots in {keep}")
            else:
                populate_s["sqlite"] = {str(n): round(s, 1) for n, s in seconds.items()}
                log(f"populated {sizes} in {sum(seconds.values()):.0f} s")
        for storage_name in args.storages:
            results[storage_name] = {}
            for size in sizes:
                cells: dict[str, Any] = {}
                results[storage_name][str(size)] = cells
                for label, sampler in strategies.items():
                    if size > max_size.get(sampler.name, size):
                        cells[label] = {"skipped": f"--max-size-for {sampler.name}"}
                        continue
                    spec = dataclasses.replace(catalog, sampler=sampler)
                    if storage_name == "sqlite":
                        url = fresh_copy(snapshots[size], folder / "run.db")
                        storage = open_storage(url)
                    else:
                        storage = populate_memory(catalog, population[:size])
                    load = _load()
                    timed = min(trials[size], max_trials.get(sampler.name, trials[size]))
                    cell = measure(spec, storage, trials=timed, warmup=args.warmup)
                    cell["load_average_1m"] = [load, _load()]
                    cell["options"] = dict(sampler.options)
                    cells[label] = cell
                    if isinstance(storage, optuna.storages.RDBStorage):
                        storage.engine.dispose()
                    log(
                        f"{storage_name} N={size} {label}: sampler {cell['sampler_ms']} + "
                        f"loop {cell['loop_ms']} + storage {cell['storage_ms']} ms/trial"
                    )
    quality = None
    if hv_settings:
        quality = hypervolume_cost(hv_settings, args.hv_seeds, args.hv_trials, HV_BUDGETS, log)
    catalog_label = next((label for label, s in strategies.items() if s == catalog.sampler), "tpe")
    report: dict[str, Any] = {
        "benchmark": "study_size",
        "command": reproduce("benchmarks.study_size", argv),
        "study": CATALOG_STUDY,
        "catalog_sampler": {"name": catalog.sampler.name, **dict(catalog.sampler.options)},
        "sizes": sizes,
        "trials_timed": {str(n): k for n, k in trials.items()},
        "warmup_trials": args.warmup,
        "population": {
            "trials": "COMPLETE, from a random search of the study's space with the stand-in",
            "seed": POPULATION_SEED,
            "add_trials_seconds": populate_s,
        },
        "environment": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": _versions(),
            "load_average_1m": [load_before, _load()],
        },
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "goal": _goal(results, sizes, catalog_label),
        "worker_loop_by_size": _worker_loop_by_size(results),
        "results": results,
        "search_quality": quality,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
