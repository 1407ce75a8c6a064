"""End to end: ``nas-study run digits-mlp`` against the same study written by hand.

The baseline is what a user writes with plain Optuna after optuna-examples'
``pytorch_simple.py`` (``benchmarks/_end_to_end/handwritten.py``): ``define_model(trial)``,
a ``DataLoader`` over a ``TensorDataset`` per trial, ``torch.optim`` by name, Optuna's
default ``TPESampler(seed=S)`` and ``study.optimize(objective, n_trials=60)``, on the same
search space as ``digits-mlp.toml``, the same digits train/validation split (read through
:func:`nas_objectives.load_dataset`), the same 15 epochs per trial and the same
objectives (maximize validation accuracy, minimize parameters). nas-study runs the way a
user runs it: ``python -m studies run digits-mlp --storage sqlite:///... --seed S`` with
``CI=true`` (no progress bar). Each side is one fresh Python process on a fresh SQLite
file, with the same torch CPU thread count (``--threads``); both sides run once per seed,
one after the other, in alternating order, in this one run.

Each side's wall time is its process's, start to exit (imports, data, every trial and the
final printout). Both studies are then read back from their SQLite files with Optuna; a
trial's time is its ``datetime_complete`` relative to its process's start. Hypervolume is
in (accuracy, log10 params) with one reference for both sides: accuracy 0 and
:data:`REF_PARAMS` parameters (above the space's largest model), and, as a second view,
the "strict" reference at the median accuracy of both sides' trials of that seed. The
yardstick is the script's *final* hypervolume: when each side first reaches it, and
``nas_time_to_reach / script_wall_time`` (issue 14's target: at most 0.2, and a higher
final hypervolume for nas-study).

Run::

    python -m benchmarks.end_to_end                       # 60 trials x 15 epochs, 2 seeds
    python -m benchmarks.end_to_end --trials 3 --epochs 1 --seeds 1 --out /tmp/e2e.json
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._common import positive_int, reproduce, write_report
from nas_objectives import record
from studies.pareto import hypervolume as hypervolume_of
from studies.pareto import pareto_ranks

REPO_ROOT = Path(__file__).resolve().parents[1]

STUDY = "digits-mlp"
SIDES = ("script", "nas")
STUDY_NAMES = {"script": "handwritten", "nas": STUDY}
DIRECTIONS = ("maximize", "minimize")
#: The reference's parameter count: above the space's largest model (64-256-256-256-10
#: with layer norm: 152,330), so every trial of either side counts, in every run alike.
REF_PARAMS = 200_000
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "end_to_end.json"


@dataclass(frozen=True)
class Finished:
    """One COMPLETE trial: its values and when it started and ended, in seconds after
    its process started."""

    accuracy: float
    params: float
    start_s: float
    end_s: float
    train_s: float | None  # nas-study's own ``train_seconds`` attribute; the script has none


@dataclass(frozen=True)
class SideRun:
    """One side's process for one seed."""

    side: str
    seed: int
    wall_s: float
    trials: list[Finished]  # COMPLETE only, in order of completion
    n_trials: int  # every trial the study holds, whatever its state
    load_average_1m: tuple[float, float]  # before, after


def command(side: str, url: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The command line of one side; both run from the repository root."""
    common = ["--seed", str(seed), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    if side == "nas":
        head = [sys.executable, "-m", "studies", "run", STUDY, "--storage", url]
        return [*head, "--n-trials", str(args.trials), *common]
    module = "benchmarks._end_to_end.handwritten"
    return [sys.executable, "-m", module, "--storage", url, "--trials", str(args.trials), *common]


def run_side(side: str, seed: int, args: argparse.Namespace, tmp: Path) -> SideRun:
    """Run one side in a fresh process on a fresh SQLite file, and read its study back."""
    db = tmp / f"{side}-{seed}.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "CI": "true"}
    env.pop("NAS_STUDY_STORAGE", None)  # --storage decides; keep a developer's setting out
    log = tmp / f"{side}-{seed}.log"
    load_before = os.getloadavg()[0]
    with log.open("wb") as out:
        # Wall-clock time, since Optuna stamps trials with datetime.now().
        start = time.time()
        proc = subprocess.run(
            command(side, url, seed, args), cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
        wall = time.time() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{side} (seed {seed}) exited with {proc.returncode}:\n{tail}")
    storage = optuna.storages.RDBStorage(url)
    try:
        study = optuna.load_study(study_name=STUDY_NAMES[side], storage=storage)
        every = study.get_trials(deepcopy=False)
    finally:
        storage.remove_session()
        storage.engine.dispose()
    done = [
        Finished(
            accuracy=float(t.values[0]),
            params=float(t.values[1]),
            start_s=t.datetime_start.timestamp() - start,
            end_s=t.datetime_complete.timestamp() - start,
            train_s=t.user_attrs.get(record.TRAIN_SECONDS),
        )
        for t in every
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.datetime_start is not None
        and t.datetime_complete is not None
    ]
    done.sort(key=lambda f: f.end_s)
    return SideRun(side, seed, wall, done, len(every), (load_before, os.getloadavg()[0]))


def hypervolume(trials: list[Finished], ref_accuracy: float) -> float:
    """Hypervolume of ``trials`` in (accuracy, log10 params) up to the reference."""
    points = [(f.accuracy, math.log10(f.params)) for f in trials]
    return hypervolume_of(points, [ref_accuracy, math.log10(REF_PARAMS)], DIRECTIONS)


def time_to_reach(trials: list[Finished], target: float, ref_accuracy: float) -> Any:
    """When (seconds after process start, and after how many trials) ``trials`` first
    reach hypervolume ``target``; ``None`` for both if never."""
    for n in range(1, len(trials) + 1):
        # A relative tolerance: the same front summed in another order differs in the
        # last bits.
        if hypervolume(trials[:n], ref_accuracy) >= target * (1 - 1e-9):
            return trials[n - 1].end_s, n
    return None, None


def side_summary(run: SideRun) -> dict[str, Any]:
    """What one side's process did, apart from hypervolume."""
    seconds = [f.end_s - f.start_s for f in run.trials]
    # Between one trial's end and the next one's start: the side's own loop and storage
    # reads (Optuna samples inside the trial, so sampling counts in its seconds).
    gaps = [b.start_s - a.end_s for a, b in itertools.pairwise(run.trials)]
    # Inside a trial but outside training: sampling, model building, storage writes.
    outside = [(f.end_s - f.start_s) - f.train_s for f in run.trials if f.train_s is not None]
    points = [(f.accuracy, f.params) for f in run.trials]
    ranks = pareto_ranks(points, DIRECTIONS) if points else []
    front = sorted({p for p, r in zip(points, ranks, strict=True) if r == 0}, key=lambda p: p[1])
    return {
        "wall_s": run.wall_s,
        "trials": run.n_trials,
        "complete": len(run.trials),
        "first_trial_start_s": run.trials[0].start_s if run.trials else None,
        "last_trial_end_s": run.trials[-1].end_s if run.trials else None,
        "first_trial_s": seconds[0] if seconds else None,
        "median_trial_s": statistics.median(seconds) if seconds else None,
        "sum_trial_s": sum(seconds),
        "median_gap_s": statistics.median(gaps) if gaps else None,
        "median_trial_outside_training_s": statistics.median(outside) if outside else None,
        "best_accuracy": max((f.accuracy for f in run.trials), default=None),
        "load_average_1m": [round(x, 2) for x in run.load_average_1m],
        "front": [[round(a, 4), int(n)] for a, n in front],
    }


def compare(script: SideRun, nas: SideRun) -> dict[str, Any]:
    """One seed: both sides' summaries and their hypervolumes at both references."""
    accuracies = sorted(f.accuracy for f in script.trials + nas.trials) or [0.0]
    references = {"accuracy_0": 0.0, "strict": accuracies[len(accuracies) // 2]}
    result: dict[str, Any] = {
        "order": None,  # filled in by the caller
        "script": side_summary(script),
        "nas": side_summary(nas),
        "wall_ratio_nas_over_script": nas.wall_s / script.wall_s,
    }
    for name, ref in references.items():
        target = hypervolume(script.trials, ref)
        script_at, script_n = time_to_reach(script.trials, target, ref)
        nas_at, nas_n = time_to_reach(nas.trials, target, ref)
        result[name] = {
            "ref_accuracy": ref,
            "final_hv": {"script": target, "nas": hypervolume(nas.trials, ref)},
            "target_hv": target,
            "script_reaches_s": script_at,
            "script_reaches_after_trials": script_n,
            "nas_reaches_s": nas_at,
            "nas_reaches_after_trials": nas_n,
            "ratio_nas_reach_over_script_wall": None if nas_at is None else nas_at / script.wall_s,
        }
    return result


def _median(values: list[Any]) -> Any:
    """The median of the values that exist; ``None`` if some run has none (never reached)."""
    return None if not values or None in values else statistics.median(values)


def medians(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over seeds of the figures the issue asks for."""
    out: dict[str, Any] = {}
    for side in SIDES:
        out[f"{side}_wall_s"] = _median([r[side]["wall_s"] for r in per_seed])
        out[f"{side}_median_trial_s"] = _median([r[side]["median_trial_s"] for r in per_seed])
        out[f"{side}_first_trial_start_s"] = _median(
            [r[side]["first_trial_start_s"] for r in per_seed]
        )
    out["wall_ratio_nas_over_script"] = _median([r["wall_ratio_nas_over_script"] for r in per_seed])
    for name in ("accuracy_0", "strict"):
        rows = [r[name] for r in per_seed]
        out[name] = {
            "final_hv_script": _median([r["final_hv"]["script"] for r in rows]),
            "final_hv_nas": _median([r["final_hv"]["nas"] for r in rows]),
            "nas_reaches_s": _median([r["nas_reaches_s"] for r in rows]),
            "ratio_nas_reach_over_script_wall": _median(
                [r["ratio_nas_reach_over_script_wall"] for r in rows]
            ),
            "seeds_nas_hv_higher": sum(
                r["final_hv"]["nas"] > r["final_hv"]["script"] for r in rows
            ),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both sides for every seed, print the JSON result and write it to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trials", type=positive_int, default=60, help="per study (60)")
    ap.add_argument("--epochs", type=positive_int, default=15, help="per trial (15)")
    ap.add_argument("--seeds", type=positive_int, default=2, help="seeds 0..N-1 (2)")
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1)")
    ap.add_argument("--target-ratio", type=float, default=0.2, help="issue 14's target (0.2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    given = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(given)

    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nas-e2e-") as tmp:
        for seed in range(args.seeds):
            # Alternate which side goes first, so neither always meets a cold page cache
            # or the other's leftover load.
            order = SIDES if seed % 2 == 0 else SIDES[::-1]
            runs = {}
            for side in order:
                runs[side] = run_side(side, seed, args, Path(tmp))
                r = runs[side]
                print(
                    f"seed {seed} {side:6s}: {len(r.trials)}/{r.n_trials} complete, "
                    f"{r.wall_s:.1f} s",
                    file=sys.stderr,
                )
            result = compare(runs["script"], runs["nas"])
            result["order"] = list(order)
            per_seed.append({"seed": seed, **result})

    summary = medians(per_seed)
    ratio = summary["accuracy_0"]["ratio_nas_reach_over_script_wall"]
    report: dict[str, Any] = {
        "benchmark": "end_to_end",
        "command": reproduce("benchmarks.end_to_end", given),
        "study": STUDY,
        "baseline": "benchmarks/_end_to_end/handwritten.py (optuna-examples style)",
        "trials": args.trials,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": sys.version.split()[0],
        "hv_space": "(accuracy, log10 params), accuracy maximized, params minimized",
        "ref_params": REF_PARAMS,
        "timed": "wall_s: process start to exit; *_s of trials: datetime_complete (or "
        "datetime_start) read back from the SQLite file, relative to process start",
        "targets": {
            "ratio_nas_reach_over_script_wall_at_most": args.target_ratio,
            "ratio_met": ratio is not None and ratio <= args.target_ratio,
            "nas_final_hv_higher": (
                summary["accuracy_0"]["final_hv_nas"] > summary["accuracy_0"]["final_hv_script"]
            ),
        },
        "median": summary,
        "per_seed": per_seed,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
