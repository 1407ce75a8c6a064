"""Bookkeeping per trial: how much of a study's run is not training, phase by phase (JSON).

A study runs in a fresh process (``nas-study run`` as a user starts it, through
:func:`studies.run_study`) with timers wrapped around every phase of a trial and of the
loop between trials. Each moment of the main thread is charged to exactly one phase, the
innermost one running (so the sampler's time inside ``space.suggest`` is the sampler's):

* ``epochs``: the training epochs themselves (``train`` minus its epoch callbacks);
* ``sampler``: the study's sampler (relative and independent sampling, ``before_trial``,
  ``after_trial``, search-space inference);
* ``storage``: every call into the study's storage from the main thread (heartbeat
  threads are not on the trial's path and are not counted);
* ``build`` and ``count``: building the model, counting its parameters and FLOPs;
* ``pruner``: multi-objective pruning decisions (their storage reads are ``storage``);
* ``other``: the rest: Optuna's ``optimize`` machinery, the worker loop, attribute
  summaries, the first batch's allocations.

The run's window is from the start of the first trial to the end of the last; its
non-training share is ``1 - epochs / window``: the ratio the issue targets (<= 10% on
``digits-mlp``, <= 3% on ``fashion-mlp``-sized data), measured against the training done
in the same run. Cold start is the first trial's time over the median time of the trials
that ran every epoch (COMPLETE; in a pruned study most trials stop early, and the first
never does), both without data loading (loaded before the first trial).

Cases (``--cases``):

* ``digits-mlp``: the default study as shipped (60 trials x 15 epochs, SQLite file);
* ``digits-mlp-pruned``: the same with the multi-objective pruner, whose curve is shared
  through the storage;
* ``fashion-sized``: ``fashion-mlp``'s space on arrays of Fashion-MNIST's size (60,000
  random 28x28 uint8 images, 10 classes; timing only, the accuracy means nothing), run
  through :func:`studies.run_arrays`, ``--fashion-trials`` trials of ``--fashion-epochs``.

Reproduce: ``python -m benchmarks.trial_overhead`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import positive_int, reproduce, write_report
from benchmarks._study_size.timing import Timers

CASES = ("digits-mlp", "digits-mlp-pruned", "fashion-sized")
PHASES = ("epochs", "sampler", "storage", "build", "count", "pruner", "other")


def _wrap(owner: Any, names: list[str], clock: Timers, phase: str) -> None:
    """Replace ``owner``'s callables ``names`` (an instance's or a module's) by timed ones."""
    for name in names:
        original = getattr(owner, name, None)
        if original is not None and callable(original):
            setattr(owner, name, clock.wrap(phase, original))


def _phases(
    end: dict[str, dict[str, float]], start: dict[str, dict[str, float]], clock: str, span: float
) -> dict[str, float]:
    """Each phase's exclusive ``clock`` seconds between two snapshots of the timers, the
    storage calls of every phase as one, and the rest of the ``span`` as ``other``."""
    totals: dict[str, float] = defaultdict(float)
    for category, seconds in end[clock].items():
        phase = "storage" if category.startswith("storage") else category
        totals[phase] += seconds - start[clock].get(category, 0.0)
    totals["other"] = span - sum(v for k, v in totals.items() if k != "other")
    return totals


def _public_methods(obj: Any) -> list[str]:
    return [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]


def _child(case: str, epochs: int | None, trials: int | None, out: Path) -> None:
    """Run one case in this (fresh) process and write its timings to ``out``."""
    started = time.perf_counter()
    import optuna
    import torch

    import nas_objectives.objective as objective_module
    import studies.run._worker as worker_module
    from storage import open_storage
    from storage.optuna_compat import study_storage
    from studies import RunOptions, resolve_spec, run_study

    imported = time.perf_counter() - started
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    clock = Timers()
    snapshots: list[dict[str, dict[str, float]]] = []
    cpu_window: list[float] = []
    trial_seconds: list[float] = []
    window: list[float] = []

    _wrap(objective_module, ["build_model"], clock, "build")
    _wrap(objective_module, ["count_params", "count_flops"], clock, "count")
    train = objective_module.train

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        on_epoch = kwargs.get("on_epoch")
        if on_epoch is not None:

            def timed_on_epoch(ep: Any) -> None:
                with clock.section("other"):
                    on_epoch(ep)

            kwargs["on_epoch"] = timed_on_epoch
        with clock.section("epochs"):
            return train(*args, **kwargs)

    objective_module.train = timed_train
    optimize_one = worker_module._optimize_one

    def timed_optimize_one(study: Any, budgeted: Any) -> None:
        begin = time.perf_counter()
        if not window:
            window.append(begin)
            snapshots.append(clock.snapshot())
            cpu_window.append(time.thread_time())
        optimize_one(study, budgeted)
        end = time.perf_counter()
        trial_seconds.append(end - begin)
        window[1:] = [end]
        cpu_window[1:] = [time.thread_time()]
        snapshots[1:] = [clock.snapshot()]

    worker_module._optimize_one = timed_optimize_one

    def instrument(study: optuna.Study) -> None:
        _wrap(
            study.sampler,
            [
                "infer_relative_search_space",
                "sample_relative",
                "sample_independent",
                "before_trial",
                "after_trial",
            ],
            clock,
            "sampler",
        )
        cached = study_storage(study)
        _wrap(cached, _public_methods(cached), clock, "storage")
        pruner = getattr(study, "pruner", None)
        if pruner is not None:
            _wrap(pruner, ["prune"], clock, "pruner")

    _time_epoch_pruner(clock)
    with tempfile.TemporaryDirectory(prefix="nas-overhead-") as tmp:
        options = RunOptions(epochs=epochs, n_trials=trials, seed=0, threads=1)
        data = None
        if case == "fashion-sized":
            import numpy as np

            from nas_objectives import tensor_data_from_arrays

            spec = resolve_spec("fashion-mlp")
            rng = np.random.default_rng(0)
            data = tensor_data_from_arrays(
                rng.integers(0, 256, size=(60_000, 1, 28, 28), dtype=np.uint8),
                rng.integers(0, 10, size=60_000),
                val_fraction=spec.dataset.val_fraction,
                seed=spec.seed,
                device=torch.device("cpu"),
                family=spec.objective.space.model.family,
            )
        else:
            spec = resolve_spec(case)
        storage = open_storage(f"sqlite:///{tmp}/study.db", heartbeat=options.heartbeat(spec))
        report = run_study(spec, storage, options, on_start=instrument, progress=False, data=data)
        states = [t.state.name for t in report.study.trials]
    span = window[1] - window[0]
    first, last = snapshots
    seconds = _phases(last, first, "wall", span)
    cpu_seconds = _phases(last, first, "cpu", cpu_window[1] - cpu_window[0])
    result = {
        "case": case,
        "import_seconds": round(imported, 3),
        "trials": len(trial_seconds),
        "states": {s: states.count(s) for s in sorted(set(states))},
        "window_seconds": round(span, 3),
        "phase_seconds": {p: round(seconds.get(p, 0.0), 4) for p in PHASES},
        "phase_cpu_seconds": {p: round(cpu_seconds.get(p, 0.0), 4) for p in PHASES},
        "first_trial_seconds": round(trial_seconds[0], 4),
        "median_trial_seconds": round(statistics.median(trial_seconds), 4),
        # Cold start compares like with like: the first trial (never pruned: there is
        # nothing to compare it with yet) against the trials that also ran every epoch.
        "median_complete_trial_seconds": round(
            statistics.median(
                s for s, state in zip(trial_seconds, states, strict=False) if state == "COMPLETE"
            ),
            4,
        ),
    }
    out.write_text(json.dumps(result))


def _time_epoch_pruner(clock: Timers) -> None:
    """Time the multi-objective pruner's decisions (built by the worker from the spec)."""
    import studies.run._worker as worker_module

    build = worker_module.build_epoch_pruner

    def timed_build(spec: Any) -> Any:
        decision = build(spec)
        if decision is not None:
            # The bound pruner; the decision object keeps its decides_at.
            _wrap(getattr(decision, "pruner"), ["decide"], clock, "pruner")  # noqa: B009
        return decision

    worker_module.build_epoch_pruner = timed_build


def _summary(raw: dict[str, Any]) -> dict[str, Any]:
    phases = raw["phase_seconds"]
    span = raw["window_seconds"]
    trials = raw["trials"]
    non_training = span - phases["epochs"]
    per_trial_ms = {p: round(1000 * phases[p] / trials, 2) for p in PHASES}
    cpu = raw["phase_cpu_seconds"]
    cpu_total = sum(cpu.values())
    return {
        **raw,
        "non_training_share": round(non_training / span, 4),
        # The same share in the main thread's CPU time: what the machine's other load
        # hardly moves (a database server's own time is not in it).
        "non_training_share_cpu": round(1 - cpu["epochs"] / cpu_total, 4) if cpu_total else None,
        "phase_cpu_ms_per_trial": {p: round(1000 * cpu[p] / trials, 2) for p in PHASES},
        "non_training_ms_per_trial": round(1000 * non_training / trials, 2),
        "phase_ms_per_trial": per_trial_ms,
        "cold_start_ratio": round(
            raw["first_trial_seconds"] / raw["median_complete_trial_seconds"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--epochs", type=positive_int, help="default: the study file's")
    parser.add_argument("--trials", type=positive_int, help="default: the study file's")
    parser.add_argument("--fashion-trials", type=positive_int, default=6)
    parser.add_argument("--fashion-epochs", type=positive_int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trial_overhead.json"))
    parser.add_argument("--child", nargs=2, metavar=("CASE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, out = args.child
        fashion = case == "fashion-sized"
        epochs = args.fashion_epochs if fashion else args.epochs
        trials = args.fashion_trials if fashion else args.trials
        _child(case, epochs, trials, Path(out))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="nas-overhead-") as tmp:
        for case in args.cases:
            out = Path(tmp) / f"{case}.json"
            cmd = [sys.executable, "-m", "benchmarks.trial_overhead", "--child", case, str(out)]
            for flag in ("epochs", "trials", "fashion_trials", "fashion_epochs"):
                value = getattr(args, flag)
                if value is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(value)]
            env = {**os.environ, "CI": "true"}
            subprocess.run(cmd, check=True, env=env)
            results[case] = _summary(json.loads(out.read_text()))
    report = {
        "command": reproduce("benchmarks.trial_overhead"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cases": results,
        "goals": {
            "digits_mlp_non_training_share_le_0.10": results.get("digits-mlp", {}).get(
                "non_training_share", 1.0
            )
            <= 0.10,
            "fashion_sized_non_training_share_le_0.03": results.get("fashion-sized", {}).get(
                "non_training_share", 1.0
            )
            <= 0.03,
            "cold_start_ratio_le_1.5": all(r["cold_start_ratio"] <= 1.5 for r in results.values()),
        },
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
