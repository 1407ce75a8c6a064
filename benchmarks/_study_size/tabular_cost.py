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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna

from benchmarks.tabular._table import (
    RunTrace,
    Table,
    best_curve,
    hv_curve,
    run_strategy,
    summarize,
)
from studies import ComponentSpec


def run_setting(
    table: Table, label: str, sampler: ComponentSpec, seed: int, n: int, mode: str = "mo"
) -> RunTrace:
    """One search of the table with ``sampler`` (seeded with ``seed``), ``n`` trials, of
    accuracy and params (``mode="mo"``) or of accuracy alone (``"so"``): the tabular
    benchmark's own run, with this sampler table."""
    return run_strategy(table, label, seed, n, mode=mode, sampler=sampler)


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
