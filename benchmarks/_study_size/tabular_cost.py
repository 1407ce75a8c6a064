"""What a faster sampler setting costs in search quality, on the tabular benchmark.

Each setting (a ``[sampler]`` table) searches the table of ``benchmarks/tabular/`` (every
configuration of ``digits-mlp-table.toml`` trained beforehand; a trial looks its result up)
for ``trials`` trials, over several seeds, as ``run_strategies.py`` does for its strategies:
an in-memory study with ``studies.build_sampler``, sampling through
``nas_objectives.suggest``. Two searches per seed:

* accuracy and params, scored by relative hypervolume (the found front's over the table's
  true front's), with the reference accuracy at 0 and, ``strict``, at the table's median
  configuration's (``_table.py`` explains both);
* accuracy alone, scored by regret: the table's best mean accuracy minus the best found.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna

from benchmarks.tabular._table import RunTrace, Table, best_curve, hv_curve, summarize
from nas_objectives import suggest
from studies import ComponentSpec, build_sampler


class _Diverged(Exception):
    """The configuration's training diverged in the table: the trial fails, as it would."""


def run_setting(
    table: Table, label: str, sampler: ComponentSpec, seed: int, n: int, mode: str = "mo"
) -> RunTrace:
    """One search of the table with ``sampler`` (seeded with ``seed``), ``n`` trials, of
    accuracy and params (``mode="mo"``) or of accuracy alone (``"so"``)."""
    spec = dataclasses.replace(table.spec, sampler=sampler)
    if mode == "so":
        cfg = dataclasses.replace(spec.objective, objectives=("accuracy",))
        spec = dataclasses.replace(spec, objective=cfg)
    space = spec.objective.space
    trace = RunTrace(label, seed, mode)

    def objective(trial: optuna.trial.Trial) -> float | tuple[float, float]:
        suggest(trial, space, (1, 8, 8), 10)
        key = json.dumps(trial.params, sort_keys=True)
        entry = table.entries[key]
        trace.keys.append(key)
        trace.values.append(None)
        trace.epochs.append(table.epochs)
        if entry.failed:
            raise _Diverged(entry.arch)
        trace.values[-1] = (entry.accuracy, entry.n_params)
        accuracy = float(entry.mean_curve[-1])
        return accuracy if mode == "so" else (accuracy, float(entry.n_params))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=spec.directions, sampler=build_sampler(spec, seed))
        start = time.perf_counter()
        study.optimize(objective, n_trials=n, catch=(_Diverged,))
        trace.wall_seconds = time.perf_counter() - start
    return trace


def hypervolume_cost(
    settings: dict[str, ComponentSpec],
    seeds: int,
    trials: int,
    budgets: Sequence[int],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Relative hypervolume and single-objective regret of each setting at ``budgets``
    (median and IQR over seeds), and each setting's difference of medians from the first
    one's (positive: better hypervolume, or more regret)."""
    table = Table.load()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves: dict[str, dict[str, list[list[float]]]] = {}
    walls: dict[str, list[float]] = {}
    try:
        for label, sampler in settings.items():
            traces = [run_setting(table, label, sampler, s, trials) for s in range(seeds)]
            so = [run_setting(table, label, sampler, s, trials, "so") for s in range(seeds)]
            best = table.best_accuracy()
            curves[label] = {
                "relative_hv": [hv_curve(t, table) for t in traces],
                "strict_relative_hv": [hv_curve(t, table, table.median_accuracy()) for t in traces],
                "so_regret": [[best - v for v in best_curve(t)] for t in so],
            }
            walls[label] = [t.wall_seconds for t in traces + so]
            log(f"tabular {label}: {seeds} runs in {sum(walls[label]):.0f} s")
    finally:
        optuna.logging.set_verbosity(verbosity)
    budgets = [b for b in budgets if b <= trials]
    out: dict[str, Any] = {
        "table": "benchmarks/tabular/digits-mlp-table.csv.gz",
        "trials": trials,
        "seeds": seeds,
        "budgets": budgets,
        "settings": {},
    }
    base = next(iter(settings))
    for label, sampler in settings.items():
        entry: dict[str, Any] = {
            "sampler": {"name": sampler.name, **dict(sampler.options)},
            "wall_s_per_run": round(float(np.median(walls[label])), 1),
        }
        for score, runs in curves[label].items():
            entry[score] = {str(b): summarize([c[b - 1] for c in runs]) for b in budgets}
            if label != base:
                entry[f"{score}_minus_{base}"] = {
                    str(b): _round(
                        entry[score][str(b)]["median"]
                        - float(np.median([c[b - 1] for c in curves[base][score]]))
                    )
                    for b in budgets
                }
        out["settings"][label] = entry
    return out


def _round(value: float) -> float:
    return round(value, 4)
