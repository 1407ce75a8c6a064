"""How long one multi-objective pruning decision takes in a study of many trials.

A study is filled with ``--trials`` finished trials (default 2,000), each with a validation
curve of ``--epochs`` values in the ``val_accuracy`` user attribute and a ``params`` cost,
as nas-study workers store them, plus one RUNNING trial that asks for decisions. Each
pruner (``pareto_rank`` and ``dominance``) then decides ``--repeats`` times at a rung epoch,
on a real SQLite file, on PostgreSQL and in memory; the JSON reports the median and p90 in
milliseconds, and, as the baseline measured in the same run, the time of the one storage
read a decision makes (``study.get_trials``), so the pruner's own share is visible.

Run:
    python -m benchmarks.pruning_decisions                 # 2,000 trials, all storages
    python -m benchmarks.pruning_decisions --storages sqlite --trials 500
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from benchmarks._common import positive_int, write_report
from storage import open_storage
from studies import build_mo_pruner

REPO_ROOT = Path(__file__).resolve().parents[1]

POSTGRES_URL = os.environ.get(
    "NAS_STUDY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
OBJECTIVES = ["accuracy", "params"]
DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]


def fill(study: optuna.Study, n: int, epochs: int, seed: int) -> None:
    rng = random.Random(seed)
    dist: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}
    trials = []
    for _ in range(n):
        final = rng.uniform(0.5, 0.99)
        curve = [final * (1 - 0.5 ** (e + 1)) for e in range(epochs)]
        params = rng.randint(300, 200_000)
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                values=[curve[-1], params],
                params={"x": rng.random()},
                distributions=dist,
                user_attrs={"val_accuracy": curve, "params": params},
            )
        )
    study.add_trials(trials)


def time_decisions(study: optuna.Study, repeats: int, epoch: int) -> dict[str, Any]:
    own = study.ask()  # the RUNNING trial that decides
    own.set_user_attr("params", 5_000)
    own.set_user_attr("val_accuracy", [0.5] * epoch)
    result: dict[str, Any] = {}
    read = []
    for _ in range(repeats):
        start = time.perf_counter()
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        read.append((time.perf_counter() - start) * 1000)
    result["storage_read_ms"] = _stats(read)
    for name in ("pareto_rank", "dominance"):
        pruner = build_mo_pruner(name, {"min_epochs": 1}).bind(OBJECTIVES, DIRECTIONS)
        times = []
        decision = None
        for _ in range(repeats):
            start = time.perf_counter()
            decision = pruner.decide(study, own.number, epoch, (0.5, 5_000.0))
            times.append((time.perf_counter() - start) * 1000)
        result[name] = {**_stats(times), "decision": decision}
    return result


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=positive_int, default=2000)
    parser.add_argument("--epochs", type=positive_int, default=9)
    parser.add_argument("--repeats", type=positive_int, default=30)
    parser.add_argument("--storages", default="memory,sqlite,postgresql")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks/results/pruning_decisions.json"
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.storages.split(","):
            name = f"bench-decisions-{uuid.uuid4().hex[:8]}"
            url = {"sqlite": f"sqlite:///{tmp}/d.db", "postgresql": POSTGRES_URL}.get(kind)
            storage = open_storage(url, heartbeat=None) if url else None
            study = optuna.create_study(study_name=name, storage=storage, directions=DIRECTIONS)
            fill(study, args.trials, args.epochs, seed=0)
            try:
                results[kind] = time_decisions(study, args.repeats, epoch=3)
            finally:
                if storage is not None:
                    optuna.delete_study(study_name=name, storage=storage)
    report = {
        "benchmark": "pruning_decisions",
        "trials": args.trials,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "objectives": OBJECTIVES,
        "goal_ms": 10.0,
        "results": results,
        "goal_met": {
            kind: all(r[p]["median_ms"] < 10.0 for p in ("pareto_rank", "dominance"))
            for kind, r in results.items()
        },
        "load_average_1m": os.getloadavg()[0],
        "optuna": optuna.__version__,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
