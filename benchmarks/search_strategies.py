"""Search strategies on real training: the catalog's default study, one run per sampler
and seed, scored by hypervolume against random search in the same run.

The tabular benchmark (``benchmarks/tabular/``) compares strategies on a grid; the
catalog's studies search continuous ranges, where a grid's lessons may not carry over.
This runs ``digits-mlp`` (60 trials of real training, in memory) with its own sampler
(TPE) and with each other strategy swapped in, and reports the hypervolume of each run's
front after 20, 40 and 60 trials in (accuracy, log10 params), relative to the front of
all runs together, at two reference points: accuracy 0, and the median accuracy of all
trials ("strict"). The baseline is random search, measured in the same run.

Run::

    python -m benchmarks.search_strategies                      # 5 seeds, about 8 min
    python -m benchmarks.search_strategies --seeds 2 --strategies tpe random
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._common import positive_int, write_report
from studies import ComponentSpec, resolve_spec, run_study
from studies.pareto import hypervolume as hypervolume_of

HERE = Path(__file__).resolve().parent

STUDY = "digits-mlp"
BUDGETS = (20, 40, 60)
Points = list[tuple[float, float]]
DIRECTIONS = ("maximize", "minimize")


def run_once(strategy: str, seed: int, n_trials: int) -> tuple[Points, float]:
    """One study of ``strategy`` (``tpe`` = the catalog's own sampler options)."""
    spec = resolve_spec(STUDY)
    if strategy != spec.sampler.name:
        spec = dataclasses.replace(spec, sampler=ComponentSpec(strategy, {}))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_study(
            spec, optuna.storages.InMemoryStorage(), seed=seed, n_trials=n_trials, progress=False
        )
    complete = optuna.trial.TrialState.COMPLETE
    points = [(t.values[0], t.values[1]) for t in report.study.trials if t.state == complete]
    return points, time.perf_counter() - start


def hypervolume(points: Points, ref_accuracy: float, ref_log_params: float) -> float:
    """Hypervolume of ``points`` in (accuracy, log10 params), Optuna's own algorithm
    (through :func:`studies.pareto.hypervolume`, which drops points not better than the
    reference in both)."""
    natural = [(a, math.log10(p)) for a, p in points]
    return hypervolume_of(natural, [ref_accuracy, ref_log_params], DIRECTIONS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", nargs="+", default=["tpe", "evolution", "reinforce", "random"])
    ap.add_argument("--seeds", type=positive_int, default=5)
    ap.add_argument("--trials", type=positive_int, default=max(BUDGETS))
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "search_strategies.json")
    args = ap.parse_args(argv)
    strategies = list(dict.fromkeys([*args.strategies, "random"]))  # the baseline
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    runs: dict[str, list[tuple[Points, float]]] = {}
    for strategy in strategies:
        runs[strategy] = []
        for seed in range(args.seeds):
            points, seconds = run_once(strategy, seed, args.trials)
            runs[strategy].append((points, seconds))
            print(f"{strategy:10s} seed {seed}: {len(points)} complete, {seconds:.1f} s")

    everything = [p for rs in runs.values() for pts, _ in rs for p in pts]
    ref_log_params = math.log10(1.1 * max(p for _, p in everything))
    accuracies = sorted(a for a, _ in everything)
    references = {"accuracy_0": 0.0, "strict": accuracies[len(accuracies) // 2]}
    union = {name: hypervolume(everything, ref, ref_log_params) for name, ref in references.items()}

    budgets = [b for b in BUDGETS if b <= args.trials]
    results: dict[str, Any] = {}
    for strategy, rs in runs.items():
        entry: dict[str, Any] = {"wall_seconds_median": statistics.median(s for _, s in rs)}
        for name, ref in references.items():
            per_budget = {}
            for b in budgets:
                rel = [hypervolume(pts[:b], ref, ref_log_params) / union[name] for pts, _ in rs]
                per_budget[str(b)] = {"median": statistics.median(rel), "min": min(rel)}
            entry[name] = per_budget
        results[strategy] = entry
    for entry in results.values():
        for name in references:
            for key in map(str, budgets):
                base = results["random"][name][key]["median"]
                cell = entry[name][key]
                cell["ratio_vs_random"] = cell["median"] / base if base > 0 else None

    report = {
        "benchmark": "search_strategies",
        "study": STUDY,
        "trials": args.trials,
        "seeds": args.seeds,
        "torch_threads": args.threads,
        "reference": {**references, "log10_params": ref_log_params},
        "baseline": "random",
        "relative_hv": results,
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
