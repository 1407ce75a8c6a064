"""Pruning in a multi-objective study: epochs saved, and how much of the Pareto front is kept.

What is measured, in one run, by real training of the ``digits-mlp`` catalog study
(maximize validation accuracy, minimize parameter count; its search space, sampler
and epochs unchanged), each configuration on its own fresh in-memory SQLite storage
opened by :func:`storage.open_storage`, with the same number of trials (COMPLETE + PRUNED,
the study's budget) and the same seeds:

``none``
    No pruning: every trial trains to the last epoch.
``pareto_rank``
    Our multi-objective ASHA (:class:`studies.ParetoRankPruner`): at rung
    epochs ``min_epochs * reduction_factor**k``, keep a trial only if it is in the best
    ``1/reduction_factor`` by Pareto rank of (accuracy at that epoch, params), ties broken
    by crowding distance.
``dominance``
    Our simpler rule: prune a trial that at least ``k`` trials dominate at the same epoch.
``naive_asha``
    The naive baseline with the same schedule: the same ``ParetoRankPruner`` and settings,
    but bound to ``objectives=["accuracy"]``, ``directions=["maximize"]`` while the study
    still has both objectives. That is plain single-objective ASHA on accuracy: it keeps
    the most accurate third at each rung and never looks at the parameter count.
``naive_median``
    The naive baseline the issue names: Optuna's ``MedianPruner`` rule, on accuracy alone,
    with its defaults (``n_startup_trials=5``, no warm-up steps, every epoch). Optuna
    refuses ``trial.report`` in multi-objective studies, so the rule is re-implemented
    here on the per-epoch ``val_accuracy`` user attribute: once 5 trials are COMPLETE,
    prune a trial whose best accuracy so far is below the median of the COMPLETE trials'
    accuracies at the same epoch (exactly ``PercentilePruner.prune`` at percentile 50).

The first three run through :func:`studies.run_study` with the study file's ``[pruner]``
table set (via ``dataclasses.replace`` on the spec). The two naive baselines cannot be
named in a study file, so they run through the same pieces ``run_study`` is made of
(:func:`studies.open_study`, :class:`nas_objectives.Objective` with an ``epoch_pruner``,
:func:`studies.run_trials`), with the seeds set the same way.

Pruner settings, chosen up front and not tuned on these results (flags change them):
``min_epochs=1``, ``reduction_factor=3`` (rungs at epochs 1, 3, 9 of 15), ``k=3``,
``min_trials=5`` (warm-up: no decision until 5 other trials have a value at the epoch;
for ``naive_median``: until 5 trials are COMPLETE, Optuna's default).

Per configuration and seed: epochs trained (sum of the trials' ``epochs_run``), optimizer
steps, wall time of the whole ``run_study`` call (data loading, sampling, training,
pruning decisions, storage), COMPLETE/PRUNED/FAIL counts, the epochs at which trials were
pruned, and the hypervolume of the COMPLETE trials' (accuracy, params) front.

Hypervolume: Optuna's own routine, through :func:`studies.pareto.hypervolume`, on
``(accuracy, log10(params))``, with one fixed reference point for every configuration:
accuracy 0 and ``log10(1.1 * P_max)``, ``P_max`` being the largest parameter count the
space allows (depth and width at their maxima, the norm with the most parameters; built
and counted, not estimated). It is reported normalised by the area of the box between
the reference point and the ideal point (accuracy 1, the smallest parameter count the
space allows), so 1.0 would be a 100%-accurate model of minimal size. Parameter counts
span three orders of magnitude (310 to ~150k here), hence the log axis; the same
hypervolume on a linear params axis is reported as ``hv_linear`` for comparison, not used
for the goals.

Hypervolume at equal compute: for the no-pruning run of the same seed, the hypervolume
of the COMPLETE trials among its first trials (in trial order) whose cumulative epochs fit
in the epochs the pruning run used; compared with the pruning run's final hypervolume.
``curve`` holds, per run, (cumulative epochs, hypervolume) after each trial, for figures.

Goals (from issue 4), per pruner (``pareto_rank``, ``dominance``), on medians over seeds of
per-seed paired comparisons:

* ``fewer_epochs_40pct``: epochs saved vs ``none`` >= 40%;
* ``hv_98pct_at_equal_trials``: final hypervolume / ``none``'s >= 0.98;
* ``hv_above_none_at_equal_compute``: final hypervolume / ``none``'s at the same epochs > 1;
* ``better_than_naive``: final hypervolume above the naive baseline's (both naive rules
  reported separately; the boolean asks for both).

Also reported: ``pruned_on_front``, the pruned trials that no other trial of the same run
dominated at the epoch they were pruned at (judged afterwards, against all trials of the
run: the "Pareto-optimal small models thrown away"), and the median parameter count of
pruned and of completed trials. For ``pareto_rank`` and ``dominance``, ``decisions`` counts
the epochs at which the pruner compared a trial with the stored trials (rung epochs, or
every epoch), and ``decision_ms_*`` times one such decision, replayed once per trial at
epoch 1 on the run's final storage (so against all its other trials).

Run:
    python -m benchmarks.pruning                             # 40 trials x 3 seeds, ~3 min
    python -m benchmarks.pruning --trials 20 --seeds 1       # a quick look
    python -m benchmarks.pruning --configs none pareto_rank --out /tmp/p.json

The JSON result is printed and written to ``--out`` (default
``benchmarks/results/pruning.json``); progress and a summary table go to stderr. This script
holds the command line and the report; the configurations, measures and summary are in
``benchmarks/_pruning/``.

Caveats:

* Three seeds of 40 trials are few: the front of a 40-trial study moves with single
  trials, and medians over 3 seeds are noisy. Per-seed values are in the JSON.
* Validation accuracy is both what the pruners decide on and the objective of the front
  (the study has no separate test evaluation), as in the study itself.
* After the first pruned trial the configurations' samplers see different histories, so
  they sample different trials: this compares whole searches, not the same trials.
* Wall time is that of one process on a shared CPU: other load on the machine shows up in
  it (the load average is recorded). Epochs trained is the compute measure of the goals.
  Torch runs on one thread (``--threads``): these models are tiny, and with torch's
  default of one thread per core, a second busy process on a 2-core CPU made single
  digits trials take 10-20 s instead of 0.2-0.7 s (threads waiting on each other).
* ``epochs`` counts the epochs of COMPLETE and PRUNED trials (FAILed trials record none).
  An epoch is not a fixed amount of work: its optimizer steps depend on the batch size
  (32 to 128 here, so 11 to 44 steps) and a step's cost on the model. ``steps`` (epochs
  times batches per epoch) and wall time are reported beside it; the goals use epochs,
  as the issue states them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

import studies
from benchmarks._common import positive_int, write_report
from benchmarks._pruning.configs import (
    CONFIGS,
    OUR_PRUNERS,
    STORAGE_URL,
    STUDY,
    Setting,
    run_config,
    study_pruner,
)
from benchmarks._pruning.measures import decision_cost, measure, space_extremes
from benchmarks._pruning.summary import summarise, table

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "pruning.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every configuration for every seed, print the JSON result, write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=positive_int, default=40, help="trials per run (40)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 (3)")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs per trial (the study's: 15)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--min-epochs", type=positive_int, default=1, help="first rung (1)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA eta (3)")
    parser.add_argument("--k", type=positive_int, default=3, help="dominance: dominators (3)")
    parser.add_argument("--min-trials", type=int, default=5, help="warm-up trials (5)")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads (1; see Caveats)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    spec = studies.resolve_spec(STUDY)
    epochs = args.epochs or spec.objective.epochs
    setting = Setting(args.min_epochs, args.reduction_factor, args.k, args.min_trials)
    configs = [c for c in CONFIGS if c in args.configs]
    seeds = list(range(args.seeds))
    ref = space_extremes(spec)
    load_before = os.getloadavg()[0]

    # Pay one-time costs (torch kernels, dataset reader) before any timed run.
    run_config(spec, "none", setting, seed=10_000, n_trials=2, epochs=1)

    started = time.perf_counter()
    runs: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in configs}
    none_trials: dict[int, list[FrozenTrial]] = {}
    for seed in seeds:  # interleaved, so drifting machine load hits every config alike
        for config in configs:
            study, trials, wall = run_config(
                spec, config, setting, seed=seed, n_trials=args.trials, epochs=epochs
            )
            if config == "none":
                none_trials[seed] = trials
            r = runs[config][seed] = measure(trials, wall, ref)
            if config in OUR_PRUNERS:
                r |= decision_cost(study, trials, study_pruner(config, setting), epochs)
            print(
                f"seed {seed} {config:>12}: {r['epochs']:4d} epochs, {r['complete']:2d} complete, "
                f"{r['pruned']:2d} pruned, {r['failed']} failed, hv {r['hv']:.4f}, "
                f"{r['wall_s']:6.1f} s",
                file=sys.stderr,
            )
    total = time.perf_counter() - started
    summary, goals = summarise(runs, none_trials, seeds, ref)

    report: dict[str, Any] = {
        "benchmark": "pruning",
        "study": STUDY,
        "objectives": list(spec.objectives),
        "sampler": {"name": spec.sampler.name, **spec.sampler.options},
        "trials_per_run": args.trials,
        "epochs_per_trial": epochs,
        "seeds": seeds,
        "storage": STORAGE_URL + " (a fresh one per run)",
        "pruner_settings": {
            "pareto_rank": study_pruner("pareto_rank", setting).options,
            "dominance": study_pruner("dominance", setting).options,
            "naive_asha": {
                "rule": "ParetoRankPruner bound to objectives=['accuracy'], "
                "directions=['maximize'] (single-objective ASHA on accuracy)",
                **study_pruner("pareto_rank", setting).options,
            },
            "naive_median": {
                "rule": "Optuna MedianPruner rule on the val_accuracy curves: best accuracy "
                "so far below the median of COMPLETE trials at the same epoch",
                "n_startup_trials": setting.min_trials,
                "n_warmup_steps": 0,
            },
        },
        "hypervolume": ref.describe(),
        "goals_definition": {
            "aggregation": "median over seeds of per-seed paired comparisons with 'none'",
            "fewer_epochs_40pct": "epochs_saved_pct >= 40",
            "hv_98pct_at_equal_trials": "hv_ratio_vs_none >= 0.98",
            "hv_above_none_at_equal_compute": "hv_ratio_vs_none_at_equal_compute > 1",
            "better_than_naive": "median over seeds of (hv - naive hv) > 0, for both naive rules",
        },
        "summary": summary,
        "goals": goals,
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "total_seconds": round(total, 1),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "runs": {c: {str(s): r for s, r in by_seed.items()} for c, by_seed in runs.items()},
    }
    print(table(summary), file=sys.stderr)
    print(json.dumps(goals, indent=2), file=sys.stderr)
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
