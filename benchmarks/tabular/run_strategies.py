"""Search strategies against the tabular benchmark: hypervolume, regret and pruning.

Each run is a real in-memory Optuna study built with the project's sampler configuration
(``studies.build_sampler`` on ``digits-mlp-table.toml`` with its ``[sampler]`` table swapped;
``tpe`` takes the exact options of the catalog's ``digits-mlp`` study, the others Optuna's
defaults), sampling through ``nas_objectives.suggest`` with the project's parameter names,
and an objective that looks the configuration up in the table (see ``_table.py`` for the
objective, the true front and the hypervolume's reference point).

Three modes, every strategy over ``--seeds`` seeds (sampler seeds 0, 1, ...):

``mo``
    Validation accuracy vs params. Relative hypervolume (found front over the table's true
    front) after 25, 50, 100 and 200 trials: median and IQR; trials needed to reach 95%
    and 99% of the true hypervolume (median, runs that never did counted as "not
    reached" and as infinitely many in the median). Everything again under ``strict``, with
    the reference accuracy at the table's median configuration's (see ``_table.py``).
``so``
    Validation accuracy alone: regret (best accuracy of the table minus the best found,
    mean accuracies) at the same budgets, and trials to reach the table's best.
``prune``
    ``mo`` with the project's multi-objective pruner (``pareto_rank``, its default settings:
    rungs at epochs 1, 3, 9), trials replayed epoch by epoch through the per-epoch hook the
    real objective uses. Runs until the trials have trained ``--trials * epochs`` epochs.
    Relative hypervolume at the same epoch budgets as the ``mo`` run without pruning
    (25, 50, 100, 200 trials' worth of epochs).

Runs are cached in ``--runs-dir`` (one JSON per run), so the benchmark can be run in parts
(``--strategies gp --seeds 5``) and the report made from all of them at the end
(``--seeds-for gp=5``). ``gp`` takes 2-3 minutes a 200-trial run on a shared CPU (about
1,500 times TPE's), so it gets fewer seeds.

Output: the JSON report (``--out``, via ``benchmarks/_common.write_report``) and a PNG of
relative hypervolume against trials, a line per strategy (median, IQR band), for both
reference points (``--plot``).

Run::

    python -m benchmarks.tabular.run_strategies --strategies gp --seeds 5   # in parts ...
    python -m benchmarks.tabular.run_strategies --seeds-for gp=5            # ... then all
    python -m benchmarks.tabular.run_strategies --strategies tpe random --seeds 2 --trials 25
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from benchmarks._common import positive_int, reproduce, write_report
from benchmarks.tabular._table import (
    TABLE_PATH,
    RunTrace,
    Table,
    at_budget,
    best_curve,
    first_reaching,
    hv_curve,
    run_strategy,
    strategies,
    strategy_spec,
    summarize,
    summarize_reaching,
)
from studies import ComponentSpec

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

RESULTS = REPO_ROOT / "benchmarks" / "results"
BUDGETS = (25, 50, 100, 200)
LEVELS = (0.95, 0.99)
MODES = ("mo", "so", "prune")
PRUNER = ComponentSpec("pareto_rank", {})


def _load_or_run(
    table: Table,
    runs_dir: Path,
    mode: str,
    strategy: str,
    seed: int,
    trials: int,
    noise: str,
) -> RunTrace:
    # The key holds the sampler's options and the table's settings, so a changed catalog
    # default or a rebuilt table is never answered from a stale run.
    sampler = strategy_spec(table, strategy).sampler
    what = json.dumps([sampler.name, dict(sampler.options), table.settings], sort_keys=True)
    digest = hashlib.sha256(what.encode()).hexdigest()[:10]
    path = runs_dir / f"{mode}-{noise}-{strategy}-t{trials}-s{seed}-{digest}.json"
    if path.exists():
        data = json.loads(path.read_text())
        data["values"] = [None if v is None else tuple(v) for v in data["values"]]
        return RunTrace(**data)
    if mode == "prune":
        trace = run_strategy(
            table,
            strategy,
            seed,
            trials * 20,
            noise=noise,
            pruner=PRUNER,
            max_epochs=trials * table.epochs,
        )
    else:
        trace = run_strategy(table, strategy, seed, trials, mode=mode, noise=noise)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace.to_dict()))
    return trace


def _band(curves: list[list[float]], n: int) -> dict[str, list[float]]:
    arr = np.asarray([c[:n] for c in curves], dtype=float)
    q25, med, q75 = np.nanpercentile(arr, [25, 50, 75], axis=0)
    return {
        "median": [round(float(v), 5) for v in med],
        "q25": [round(float(v), 5) for v in q25],
        "q75": [round(float(v), 5) for v in q75],
    }


def _hv_scores(traces: list[RunTrace], table: Table, trials: int, ref: float) -> dict[str, Any]:
    curves = [hv_curve(t, table, ref) for t in traces]
    budgets = [b for b in BUDGETS if b <= trials]
    return {
        "relative_hv": {str(b): summarize([c[b - 1] for c in curves]) for b in budgets},
        "trials_to": {
            f"{level:.2f}": summarize_reaching([first_reaching(c, level) for c in curves])
            for level in LEVELS
        },
        "curve": _band(curves, trials),
    }


def _mo_summary(traces: list[RunTrace], table: Table, trials: int) -> dict[str, Any]:
    return {
        "runs": len(traces),
        **_hv_scores(traces, table, trials, 0.0),
        "strict": _hv_scores(traces, table, trials, table.median_accuracy()),
        "wall_seconds": _walls(traces),
    }


def _so_summary(traces: list[RunTrace], table: Table, trials: int) -> dict[str, Any]:
    best = table.best_accuracy()
    curves = [[best - v if not math.isnan(v) else best for v in best_curve(t)] for t in traces]
    budgets = [b for b in BUDGETS if b <= trials]
    return {
        "runs": len(traces),
        "regret": {str(b): summarize([c[b - 1] for c in curves]) for b in budgets},
        "trials_to_best": summarize_reaching(
            [first_reaching([-r for r in c], 0.0) for c in curves]
        ),
        "wall_seconds": _walls(traces),
    }


def _prune_summary(
    pruned: list[RunTrace], plain: list[RunTrace], table: Table, trials: int
) -> dict[str, Any]:
    budgets = [b for b in BUDGETS if b <= trials]

    def per_epochs(traces: list[RunTrace], ref: float) -> dict[str, Any]:
        out = {}
        curves = [(np.cumsum(t.epochs).tolist(), hv_curve(t, table, ref)) for t in traces]
        for b in budgets:
            scores = [at_budget(xs, ys, b * table.epochs) for xs, ys in curves]
            out[str(b * table.epochs)] = summarize(scores)
        return out

    strict = table.median_accuracy()

    n_trials = [len(t.epochs) for t in pruned]
    n_pruned = [sum(v is None for v in t.values) for t in pruned]
    return {
        "pruner": {"name": PRUNER.name, "options": dict(PRUNER.options)},
        "runs": len(pruned),
        "relative_hv_at_epochs": {
            "pareto_rank": per_epochs(pruned, 0.0),
            "none": per_epochs(plain, 0.0),
        },
        "strict_relative_hv_at_epochs": {
            "pareto_rank": per_epochs(pruned, strict),
            "none": per_epochs(plain, strict),
        },
        "trials_per_run": summarize(n_trials),
        "pruned_per_run": summarize(n_pruned),
        "epoch_budget": trials * table.epochs,
    }


def _walls(traces: list[RunTrace]) -> dict[str, float]:
    walls = [t.wall_seconds for t in traces]
    return {"median": float(np.median(walls)), "total": float(sum(walls))}


def _plot(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = report["table"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    panels = (
        (axes[0], lambda s: s["curve"], "reference accuracy 0"),
        (
            axes[1],
            lambda s: s["strict"]["curve"],
            f"strict: reference accuracy {table['strict_reference_point']['accuracy']:.3f}"
            " (median config)",
        ),
    )
    for ax, pick, title in panels:
        lows = []
        for name, s in report["multi_objective"].items():
            band = pick(s)
            x = np.arange(1, len(band["median"]) + 1)
            (line,) = ax.plot(x, band["median"], label=name, lw=1.5)
            ax.fill_between(x, band["q25"], band["q75"], color=line.get_color(), alpha=0.12)
            lows.append(band["median"][min(9, len(x) - 1)])
        ax.set_xlabel("trials")
        ax.set_ylabel("hypervolume / true front's")
        ax.set_ylim(max(0.0, min(lows) - 0.02), 1.002)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", ncol=2)
        ax.set_title(title)
    seeds = max(report["settings"]["seeds"].values())
    fig.suptitle(
        f"digits MLP table ({table['configurations']} configs, accuracy vs log10 params): "
        f"median and IQR over up to {seeds} seeds"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def build_report(
    table: Table,
    names: list[str],
    seeds: dict[str, list[int]],
    trials: int,
    modes: list[str],
    noise: str,
    runs_dir: Path,
    prune_strategies: list[str],
    log: logging.Logger,
) -> dict[str, Any]:
    """Run (or read from ``runs_dir``) every requested run and summarize them."""
    front = table.true_front()
    report: dict[str, Any] = {
        "benchmark": "tabular",
        "table": {
            "path": str(TABLE_PATH.relative_to(REPO_ROOT)),
            "configurations": len(table.entries),
            "diverged_configurations": len(table.entries) - len(table.usable()),
            "table_seeds": list(table.seeds),
            "epochs": table.epochs,
            "best_accuracy": table.best_accuracy(),
            "true_hv": table.true_hypervolume(),
            "reference_point": {
                "accuracy": 0.0,
                "log10_params": float(table.reference_point()[1]),
            },
            "strict_true_hv": table.true_hypervolume(table.median_accuracy()),
            "strict_reference_point": {
                "accuracy": table.median_accuracy(),
                "log10_params": float(table.reference_point()[1]),
            },
            "true_front": [
                {"arch": e.arch, "accuracy": round(e.accuracy, 5), "params": e.n_params}
                for e in sorted(front, key=lambda e: e.n_params)
            ],
            "settings": table.settings,
        },
        "settings": {
            "strategies": {
                n: {"sampler": (s := strategy_spec(table, n).sampler).name, **dict(s.options)}
                for n in names
            },
            "seeds": {n: len(s) for n, s in seeds.items()},
            "trials": trials,
            "noise": noise,
            "budgets": [b for b in BUDGETS if b <= trials],
            "optuna": optuna.__version__,
            "python": platform.python_version(),
        },
    }
    traces: dict[tuple[str, str], list[RunTrace]] = {}
    for mode in modes:
        mode_names = prune_strategies if mode == "prune" else names
        for name in mode_names:
            start = time.perf_counter()
            runs = [
                _load_or_run(table, runs_dir, mode, name, s, trials, noise) for s in seeds[name]
            ]
            traces[(mode, name)] = runs
            log.info("%s %s: %d runs in %.1f s", mode, name, len(runs), time.perf_counter() - start)
    if "mo" in modes:
        report["multi_objective"] = {
            n: _mo_summary(traces[("mo", n)], table, trials) for n in names
        }
    if "so" in modes:
        report["single_objective"] = {
            n: _so_summary(traces[("so", n)], table, trials) for n in names
        }
    if "prune" in modes:
        report["pruning"] = {
            n: _prune_summary(
                traces[("prune", n)],
                traces.get(("mo", n))
                or [_load_or_run(table, runs_dir, "mo", n, s, trials, noise) for s in seeds[n]],
                table,
                trials,
            )
            for n in prune_strategies
        }
    mo = report.get("multi_objective", {})
    if "tpe" in mo and "100" in mo["tpe"]["relative_hv"]:
        tpe100 = mo["tpe"]["relative_hv"]["100"]["median"]
        to99 = mo["tpe"]["trials_to"]["0.99"]["median"]
        strict100 = mo["tpe"]["strict"]["relative_hv"]["100"]["median"]
        strict99 = mo["tpe"]["strict"]["trials_to"]["0.99"]["median"]
        report["goals"] = {
            "tpe_99pct_within_100_trials": to99 is not None and to99 <= 100,
            "tpe_at_least_as_good_as_all_at_100": all(
                tpe100 >= s["relative_hv"]["100"]["median"] for s in mo.values()
            ),
            "strict_tpe_99pct_within_100_trials": strict99 is not None and strict99 <= 100,
            "strict_tpe_at_least_as_good_as_all_at_100": all(
                strict100 >= s["strict"]["relative_hv"]["100"]["median"] for s in mo.values()
            ),
        }
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", nargs="+", default=None, help="default: all available")
    ap.add_argument("--seeds", type=positive_int, default=20, help="runs per strategy")
    ap.add_argument(
        "--seeds-for",
        nargs="+",
        default=[],
        metavar="NAME=N",
        help="fewer (or more) runs for some strategies, e.g. gp=5 (GP takes seconds a trial)",
    )
    ap.add_argument("--trials", type=positive_int, default=200, help="trials per run")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--noise", choices=("mean", "seed"), default="mean")
    ap.add_argument(
        "--prune-strategies", nargs="+", default=["tpe", "random"], help="for --modes prune"
    )
    ap.add_argument("--runs-dir", type=Path, default=RESULTS / "tabular-runs")
    ap.add_argument("--out", type=Path, default=RESULTS / "tabular.json")
    ap.add_argument("--plot", type=Path, default=RESULTS / "tabular.png")
    args = ap.parse_args(argv)

    available = strategies()
    names = args.strategies or list(available)
    seeds_for: dict[str, int] = {}
    for item in args.seeds_for:
        name, _, count = item.partition("=")
        if not count.isdigit() or int(count) < 1:
            ap.error(f"--seeds-for: expected NAME=N with N >= 1, got {item!r}")
        seeds_for[name] = int(count)
    for n in names + args.prune_strategies + list(seeds_for):
        if n not in available:
            ap.error(f"unknown strategy {n!r} (known: {', '.join(available)})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("tabular")
    table = Table.load()
    report = build_report(
        table,
        names,
        {n: list(range(seeds_for.get(n, args.seeds))) for n in set(names + args.prune_strategies)},
        args.trials,
        args.modes,
        args.noise,
        args.runs_dir,
        args.prune_strategies,
        log,
    )
    report = {"command": reproduce("benchmarks.tabular.run_strategies", argv), **report}
    if "multi_objective" in report:
        _plot(report, args.plot)
        report["plot"] = str(args.plot)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
