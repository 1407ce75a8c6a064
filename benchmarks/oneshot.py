"""One-shot (DARTS) proposals on ``digits-cell``: the collapse guard, and one-shot against
sampled search at equal CPU time. Offline, CPU, in memory.

1. **Collapse guard.** For each lambda and seed, one search with the beta-DARTS regulariser
   and one without (the baseline, same seed, same run); reported: the op counts of the
   derived cells and the share of parameter-free ops (``skip_connect``, pools), with its
   ratio guard / no guard.
2. **One-shot vs sampled.** ``K`` one-shot candidates (lambda from 0 to 1) are enqueued
   and fully trained by an ordinary worker; their CPU seconds (searches + training) are
   the budget TPE then gets on the same study file (baseline, same run). Reported: the
   hypervolume in (accuracy, log10 params) of each front, and the ratio one-shot / TPE.
3. **CPU to reach** (``--reach N``): the CPU seconds one-shot candidates (searched, then
   trained, one after another) take to reach the hypervolume TPE and evolution reach at
   ``N`` trials (the lower of the two), against the CPU seconds TPE takes to reach it.

CPU seconds (``time.process_time``) rather than wall time: the machine may be shared.

Run::

    python -m benchmarks.oneshot                         # about 10 min on 2 cores
    python -m benchmarks.oneshot --epochs 4 --seeds 1 --candidates 2   # a quick look
    python -m benchmarks.oneshot --epochs 6 --skip-comparison --reach 60 --reach-candidates 8
    python -m benchmarks.oneshot --epoch-time cuda --epochs 3      # GPU: supernet epoch vs trial
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._common import positive_int, write_report
from nas_objectives import Objective, load_dataset
from nas_objectives._supernet import SearchSettings, search
from storage.optuna_compat import study_storage
from studies import ComponentSpec
from studies.oneshot import macro_layout, run_oneshot
from studies.pareto import hypervolume as hypervolume_of
from studies.run import RunOptions, open_study, run_study
from studies.spec import resolve_spec

HERE = Path(__file__).resolve().parent

STUDY = "digits-cell"
PARAMETER_FREE = ("skip_connect", "avg_pool_3x3", "max_pool_3x3", "none")


def guard_comparison(epochs: int, seeds: int, lambdas: list[float]) -> dict[str, Any]:
    """Derived-cell op counts with and without the guard, same seeds and lambdas."""
    spec = resolve_spec(STUDY)
    data = load_dataset(spec.dataset.name, seed=spec.seed)
    ops = spec.objective.space.model.ops
    counts: dict[str, collections.Counter[str]] = {
        "guard": collections.Counter(),
        "no_guard": collections.Counter(),
    }
    cells: dict[str, list[str]] = {"guard": [], "no_guard": []}
    for seed in range(seeds):
        layout, _ = macro_layout(spec, data, seed)
        for lam in lambdas:
            for name, guard in (("guard", True), ("no_guard", False)):
                s = SearchSettings(epochs=epochs, cost_weight=lam, guard=guard, seed=seed)
                result = search(layout, ops, data, s)
                counts[name].update(result.cell)
                cells[name].append("|".join(result.cell))
                print(f"seed {seed} lambda {lam:.2f} {name:8s}: {result.cell}")
    out: dict[str, Any] = {}
    for name, c in counts.items():
        total = sum(c.values())
        free = sum(c[op] for op in PARAMETER_FREE)
        out[name] = {
            "op_counts": dict(c),
            "parameter_free_share": free / total,
            "cells": cells[name],
        }
    base = out["no_guard"]["parameter_free_share"]
    out["parameter_free_share_ratio_guard_vs_no_guard"] = (
        out["guard"]["parameter_free_share"] / base if base > 0 else None
    )
    return out


def _points(study: optuna.Study) -> list[tuple[float, float]]:
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [(t.values[0], t.values[1]) for t in done]


def oneshot_vs_sampled(candidates: int, search_epochs: int, max_tpe_trials: int) -> dict[str, Any]:
    """K one-shot cells trained in full against TPE given the same CPU seconds."""
    spec = resolve_spec(STUDY)
    data = load_dataset(spec.dataset.name, seed=spec.seed)
    start = time.process_time()
    study = open_study(spec, optuna.storages.InMemoryStorage())
    settings = SearchSettings(epochs=search_epochs)
    run_oneshot(spec, study, data, candidates=candidates, settings=settings)
    search_cpu = time.process_time() - start
    run_study(
        spec, study_storage(study), RunOptions(n_trials=candidates), progress=False, data=data
    )
    oneshot_cpu = time.process_time() - start
    oneshot = _points(study)

    # One study object, so its one sampler learns from trial to trial, until TPE has used
    # the CPU seconds the one-shot candidates took.
    start = time.process_time()
    tpe = open_study(spec, optuna.storages.InMemoryStorage())
    objective = Objective(spec.objective, data)
    while time.process_time() - start < oneshot_cpu and len(tpe.trials) < max_tpe_trials:
        tpe.optimize(objective, n_trials=1)
    tpe_cpu = time.process_time() - start
    sampled = _points(tpe)

    everything = oneshot + sampled
    ref = [0.0, math.log10(1.1 * max(p for _, p in everything))]

    def hv(points: list[tuple[float, float]]) -> float:
        natural = [(a, math.log10(p)) for a, p in points]
        return hypervolume_of(natural, ref, ("maximize", "minimize"))

    return {
        "candidates": candidates,
        "search_epochs": search_epochs,
        "oneshot": {
            "cpu_seconds": oneshot_cpu,
            "search_cpu_seconds": search_cpu,
            "trials": len(oneshot),
            "hypervolume": hv(oneshot),
            "points": oneshot,
        },
        "tpe": {
            "cpu_seconds": tpe_cpu,
            "trials": len(sampled),
            "hypervolume": hv(sampled),
            "points": sampled,
        },
        "reference": {"accuracy": ref[0], "log10_params": ref[1]},
        "hypervolume_ratio_oneshot_vs_tpe": hv(oneshot) / hv(sampled) if hv(sampled) else None,
    }


def _cumulative(study: optuna.Study, objective: Objective, n: int) -> tuple[list, list[float]]:
    """Run ``n`` trials one by one; the points so far and the CPU seconds after each."""
    cpu, points = [], []
    start = time.process_time()
    for _ in range(n):
        study.optimize(objective, n_trials=1)
        cpu.append(time.process_time() - start)
        points.append(_points(study))
    return points, cpu


def cpu_to_reach(trials: int, candidates: int, search_epochs: int) -> dict[str, Any]:
    """CPU seconds one-shot needs to reach the hypervolume TPE and evolution reach at
    ``trials`` fully trained trials (the lower of the two), against theirs."""
    spec = resolve_spec(STUDY)
    data = load_dataset(spec.dataset.name, seed=spec.seed)
    objective = Objective(spec.objective, data)
    runs: dict[str, tuple[list, list[float]]] = {}
    for name in ("tpe", "evolution"):
        s = spec if name == "tpe" else dataclasses.replace(spec, sampler=ComponentSpec(name, {}))
        runs[name] = _cumulative(
            open_study(s, optuna.storages.InMemoryStorage()), objective, trials
        )
        print(f"{name}: {trials} trials, {runs[name][1][-1]:.0f} CPU s")

    study = open_study(spec, optuna.storages.InMemoryStorage())
    start = time.process_time()
    proposals = run_oneshot(
        spec, study, data, candidates=candidates, settings=SearchSettings(epochs=search_epochs)
    )
    search_cpu = time.process_time() - start
    # Each search's share of the CPU, by its share of the wall time (the searches run one
    # after the other, alike but for lambda and width).
    walls = [p.seconds for p in proposals]
    search_each = [search_cpu * w / sum(walls) for w in walls]
    points, train_cpu = _cumulative(study, objective, candidates)
    train_each = [b - a for a, b in zip([0.0, *train_cpu[:-1]], train_cpu, strict=True)]
    oneshot_cpu, total = [], 0.0
    for searched, trained in zip(search_each, train_each, strict=True):
        total += searched + trained
        oneshot_cpu.append(total)
    runs["oneshot"] = (points, oneshot_cpu)

    everything = [p for pts, _ in runs.values() for p in pts[-1]]
    ref = [0.0, math.log10(1.1 * max(p for _, p in everything))]

    def hv(pts: list[tuple[float, float]]) -> float:
        return hypervolume_of([(a, math.log10(p)) for a, p in pts], ref, ("maximize", "minimize"))

    target = min(hv(runs["tpe"][0][-1]), hv(runs["evolution"][0][-1]))
    out: dict[str, Any] = {"trials": trials, "candidates": candidates, "target_hv": target}
    for name, (pts, cpu) in runs.items():
        curve = [hv(p) for p in pts]
        hit = next((i for i, h in enumerate(curve) if h >= target), None)
        out[name] = {
            "hv_curve": curve,
            "cpu_seconds": cpu,
            "trials_to_target": None if hit is None else hit + 1,
            "cpu_seconds_to_target": None if hit is None else cpu[hit],
        }
    base = out["tpe"]["cpu_seconds_to_target"]
    mine = out["oneshot"]["cpu_seconds_to_target"]
    out["cpu_to_target_ratio_oneshot_vs_tpe"] = mine / base if mine and base else None
    out["reference"] = {"accuracy": ref[0], "log10_params": ref[1]}
    return out


def epoch_seconds(device: str, n: int, epochs: int) -> dict[str, Any]:
    """Seconds per supernet epoch of ``cifar10-cell`` (C16 N5, five ops) on ``n`` random
    CIFAR-shaped uint8 images, against one epoch of a sampled trial (baseline) on the same
    data and device. The supernet's epoch makes one weight and one alpha step per batch
    pair, over half the training split each."""
    import numpy as np

    from nas_objectives import tensor_data_from_arrays, train
    from nas_objectives._cell_graph import cell_edges, edge_param
    from nas_objectives.space import suggest

    spec = resolve_spec("cifar10-cell")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    data = tensor_data_from_arrays(x, np.arange(n) % 10, device=device, val_fraction=0.1)
    layout, macro = macro_layout(spec, data, 0)
    ops = spec.objective.space.model.ops
    s = SearchSettings(epochs=epochs, batch_size=256)
    result = search(layout, ops, data, s)
    supernet = result.seconds / epochs
    # The derived cell, trained as a sampled trial would be.
    edges = {edge_param(i, j): op for (i, j), op in zip(cell_edges(4), result.cell, strict=True)}
    trial = optuna.trial.FixedTrial({**macro, **edges})
    layout_t, settings = suggest(trial, spec.objective.space, data.input_shape, 10)
    from nas_objectives import build_model

    trained = train(build_model(layout_t), settings, data, epochs=epochs)
    sampled = trained.train_seconds / epochs
    return {
        "device": device,
        "images": n,
        "epochs": epochs,
        "supernet_seconds_per_epoch": supernet,
        "sampled_trial_seconds_per_epoch": sampled,
        "ratio_supernet_vs_trial": supernet / sampled,
        "note": "the first epoch (compilation, cuDNN autotuning) is included in both",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=positive_int, default=10, help="supernet epochs")
    ap.add_argument("--seeds", type=positive_int, default=2)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--candidates", type=positive_int, default=3)
    ap.add_argument("--max-tpe-trials", type=positive_int, default=60)
    ap.add_argument("--skip-comparison", action="store_true", help="only the guard part")
    ap.add_argument(
        "--reach",
        type=positive_int,
        metavar="N",
        help="also: CPU seconds for one-shot to reach the HV of TPE/evolution at N trials",
    )
    ap.add_argument("--reach-candidates", type=positive_int, default=8)
    ap.add_argument(
        "--epoch-time",
        metavar="DEVICE",
        help="only: seconds per supernet epoch of cifar10-cell vs a sampled trial (e.g. cuda)",
    )
    ap.add_argument("--epoch-time-images", type=positive_int, default=10_000)
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "oneshot.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    if args.epoch_time:
        timing = epoch_seconds(args.epoch_time, args.epoch_time_images, args.epochs)
        write_report({"benchmark": "oneshot-epoch-time", **timing}, args.out)
        return 0
    report: dict[str, Any] = {
        "benchmark": "oneshot",
        "study": STUDY,
        "torch_threads": args.threads,
        "settings": dataclasses.asdict(SearchSettings(epochs=args.epochs)),
        "collapse_guard": guard_comparison(args.epochs, args.seeds, args.lambdas),
    }
    if not args.skip_comparison:
        report["oneshot_vs_tpe"] = oneshot_vs_sampled(
            args.candidates, args.epochs, args.max_tpe_trials
        )
    if args.reach:
        report["cpu_to_reach"] = cpu_to_reach(args.reach, args.reach_candidates, args.epochs)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
