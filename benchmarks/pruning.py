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

Hypervolume: Optuna's own ``optuna._hypervolume.compute_hypervolume`` (minimisation), on
``(-accuracy, log10(params))``, with one fixed reference point for every configuration:
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
    python benchmarks/pruning.py                             # 40 trials x 3 seeds, ~3 min
    python benchmarks/pruning.py --trials 20 --seeds 1       # a quick look
    python benchmarks/pruning.py --configs none pareto_rank --out /tmp/p.json

The JSON result is printed and written to ``--out`` (default
``benchmarks/results/pruning.json``); progress and a summary table go to stderr.

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
import dataclasses
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from _common import positive_int, write_report  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

import studies  # noqa: E402
from nas_objectives import Layout, Objective, build_model, count_params, load_dataset  # noqa: E402
from storage import open_storage  # noqa: E402
from studies import ParetoRankPruner, build_mo_pruner  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "pruning.json"
STUDY = "digits-mlp"
CONFIGS = ("none", "pareto_rank", "dominance", "naive_asha", "naive_median")
OUR_PRUNERS = ("pareto_rank", "dominance")
NAIVE = ("naive_asha", "naive_median")
STORAGE_URL = "sqlite:///:memory:"

#: What the objective passes an epoch pruner (see ``nas_objectives.objective.EpochPruner``).
EpochPruner = Callable[[optuna.trial.BaseTrial, int, tuple[float, ...]], "str | None"]


# --------------------------------------------------------------------------- configurations


@dataclasses.dataclass(frozen=True)
class Setting:
    """The pruner settings shared by all configurations."""

    min_epochs: int
    reduction_factor: int
    k: int
    min_trials: int


def study_pruner(config: str, s: Setting) -> studies.ComponentSpec:
    """The study file's ``[pruner]`` table for ``config`` (``none`` for the naive ones)."""
    if config == "pareto_rank":
        options = {
            "min_epochs": s.min_epochs,
            "reduction_factor": s.reduction_factor,
            "min_trials": s.min_trials,
        }
        return studies.ComponentSpec("pareto_rank", options)
    if config == "dominance":
        options = {"k": s.k, "min_epochs": s.min_epochs, "min_trials": s.min_trials}
        return studies.ComponentSpec("dominance", options)
    return studies.ComponentSpec("none", {})


def with_pruner(spec: studies.StudySpec, pruner: studies.ComponentSpec) -> studies.StudySpec:
    """``spec`` with its ``[pruner]`` table replaced (in the stored source too)."""
    source = {**spec.source, "pruner": {"name": pruner.name, **pruner.options}}
    return dataclasses.replace(spec, pruner=pruner, source=source)


def naive_asha(spec: studies.StudySpec, s: Setting) -> EpochPruner:
    """ASHA on accuracy alone: our ``ParetoRankPruner`` bound to the accuracy objective."""
    pruner = ParetoRankPruner(
        min_epochs=s.min_epochs,
        reduction_factor=s.reduction_factor,
        min_trials=s.min_trials,
        objectives=["accuracy"],
        directions=["maximize"],
    )
    i = spec.objectives.index("accuracy")

    def decide(trial: optuna.trial.BaseTrial, epoch: int, values: tuple[float, ...]) -> str | None:
        reason = pruner.decide(trial.study, trial.number, epoch, (values[i],))  # type: ignore[attr-defined]
        return None if reason is None else f"accuracy-only {reason}"

    return decide


def naive_median(spec: studies.StudySpec, n_startup_trials: int) -> EpochPruner:
    """Optuna's ``MedianPruner`` rule (percentile 50, no warm-up steps, every epoch) on the
    ``val_accuracy`` curves, since Optuna refuses ``trial.report`` in this study."""
    i = spec.objectives.index("accuracy")

    def decide(trial: optuna.trial.BaseTrial, epoch: int, values: tuple[float, ...]) -> str | None:
        study: optuna.Study = trial.study  # type: ignore[attr-defined]
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < n_startup_trials:
            return None
        at_epoch = [
            curve[epoch - 1]
            for t in complete
            if len(curve := t.user_attrs.get("val_accuracy") or []) >= epoch
        ]
        if not at_epoch:
            return None
        own = trial.user_attrs.get("val_accuracy") or [values[i]]
        best = max(max(own), values[i])
        median = float(np.median(at_epoch))
        if best >= median:
            return None
        return (
            f"accuracy-only median: best {best:.4f} below the median {median:.4f} of "
            f"{len(at_epoch)} complete trials at epoch {epoch}"
        )

    return decide


# --------------------------------------------------------------------------- one run


def run_config(
    spec: studies.StudySpec,
    config: str,
    setting: Setting,
    *,
    seed: int,
    n_trials: int,
    epochs: int,
) -> tuple[optuna.Study, list[FrozenTrial], float]:
    """Run one configuration on a fresh storage; its study, its trials and the wall time."""
    storage = open_storage(STORAGE_URL)
    study_spec = with_pruner(spec, study_pruner(config, setting))
    start = time.perf_counter()
    if config in NAIVE:
        # What run_study does, with an epoch pruner a study file cannot name.
        epoch_pruner = (
            naive_asha(spec, setting)
            if config == "naive_asha"
            else naive_median(spec, setting.min_trials)
        )
        cfg = dataclasses.replace(study_spec.objective, seed=seed, epochs=epochs)
        data = load_dataset(
            spec.dataset.name,
            device=torch.device("cpu"),
            data_dir=spec.dataset.data_dir,
            val_fraction=spec.dataset.val_fraction,
        )
        study = studies.open_study(study_spec, storage, seed=seed)
        objective = Objective(cfg, data, epoch_pruner=epoch_pruner)
        studies.run_trials(study, objective, budget=n_trials, progress=False)
    else:
        report = studies.run_study(
            study_spec,
            storage,
            n_trials=n_trials,
            seed=seed,
            epochs=epochs,
            device="cpu",
            progress=False,
        )
        study = report.study
    wall = time.perf_counter() - start
    return study, sorted(study.get_trials(deepcopy=True), key=lambda t: t.number), wall


def decision_cost(
    study: optuna.Study, trials: Sequence[FrozenTrial], pruner: studies.ComponentSpec, epochs: int
) -> dict[str, Any]:
    """How often a run's pruner read the storage, and what one such decision costs.

    Decisions are replayed, once per trial at epoch 1 (a decision epoch of both rules with
    ``min_epochs=1``), against the run's final storage, where every other trial has a value
    at that epoch: the most a decision of this run compared with.
    """
    mo = build_mo_pruner(pruner.name, pruner.options)
    objectives = list(study.metric_names or [])
    mo.bind(objectives, [d.name.lower() for d in study.directions])
    decide_at = mo.is_rung if isinstance(mo, ParetoRankPruner) else (lambda e: e >= mo.min_epochs)
    times = []
    for t in trials:
        curve = t.user_attrs.get("val_accuracy") or []
        if not curve:
            continue
        values = [curve[0] if o in ("accuracy", "f1") else t.user_attrs[o] for o in objectives]
        start = time.perf_counter()
        mo.decide(study, t.number, 1, values)
        times.append(1000 * (time.perf_counter() - start))
    return {
        # Epochs at which the pruner compared the trial with the stored trials.
        "decisions": sum(
            decide_at(e) for t in trials for e in range(1, min(_epochs(t), epochs) + 1)
        ),
        "decision_ms_median": _r(statistics.median(times), 2) if times else None,
        "decision_ms_max": _r(max(times), 2) if times else None,
    }


# --------------------------------------------------------------------------- hypervolume


@dataclasses.dataclass(frozen=True)
class Reference:
    """The fixed hypervolume reference and ideal points, per params axis (and the size of
    the training split, to count optimizer steps)."""

    min_params: int
    max_params: int
    n_train: int

    @property
    def ref_params(self) -> float:
        return 1.1 * self.max_params

    def hv(self, points: Sequence[tuple[float, float]], *, log: bool = True) -> float:
        """Normalised hypervolume of ``(accuracy, params)`` points (any, dominated or not)."""
        f: Callable[[float], float] = math.log10 if log else float
        ref = np.array([0.0, f(self.ref_params)])
        box = 1.0 * (f(self.ref_params) - f(self.min_params))
        loss = np.array([[-a, f(p)] for a, p in points if a > 0 and p < self.ref_params])
        if len(loss) == 0:
            return 0.0
        return float(compute_hypervolume(loss, ref)) / box

    def describe(self) -> dict[str, Any]:
        return {
            "computed_with": "optuna._hypervolume.compute_hypervolume (minimisation) on "
            "(-accuracy, log10(params)) of the COMPLETE trials",
            "reference_point": {"accuracy": 0.0, "params": self.ref_params},
            "ideal_point": {"accuracy": 1.0, "params": self.min_params},
            "normalised_by": "area of the box between the reference and the ideal point "
            "(in log10(params) for hv, in params for hv_linear)",
            "space_min_params": self.min_params,
            "space_max_params": self.max_params,
        }


def space_extremes(spec: studies.StudySpec) -> Reference:
    """The smallest and largest parameter counts the study's MLP space allows."""
    space = spec.objective.space.model
    if space.family != "mlp":
        raise SystemExit(f"{STUDY}: expected an MLP study, got {space.family!r}")
    data = load_dataset(spec.dataset.name, val_fraction=spec.dataset.val_fraction)

    def params(depth: int, width: int, norm: str) -> int:
        layout = Layout("mlp", data.input_shape, data.num_classes, (width,) * depth, norm=norm)
        return int(count_params(build_model(layout)))

    norms = space.norm.options
    small = min(params(space.depth.low, space.width.low, n) for n in norms)
    large = max(params(space.depth.high, space.width.high, n) for n in norms)
    return Reference(min_params=small, max_params=large, n_train=len(data.x_train))


# --------------------------------------------------------------------------- measures


def _point(t: FrozenTrial) -> tuple[float, float]:
    return float(t.values[0]), float(t.values[1])


def _epochs(t: FrozenTrial) -> int:
    return int(t.user_attrs.get("epochs_run") or 0)


def _steps(t: FrozenTrial, n_train: int) -> int:
    """Optimizer steps the trial took (``train`` drops the ragged last batch)."""
    batch = min(int(t.params.get("batch_size", n_train)), n_train)
    return _epochs(t) * max(1, n_train // batch)


def hv_within_epochs(trials: Sequence[FrozenTrial], budget: int, ref: Reference) -> float:
    """Hypervolume of the COMPLETE trials among the first trials fitting in ``budget`` epochs."""
    used, points = 0, []
    for t in trials:
        used += _epochs(t)
        if used > budget:
            break
        if t.state == TrialState.COMPLETE:
            points.append(_point(t))
    return ref.hv(points)


def pruned_on_front(trials: Sequence[FrozenTrial]) -> int:
    """Pruned trials that no other trial dominated at the epoch they were pruned at."""
    curves = {
        t.number: (list(t.user_attrs.get("val_accuracy") or []), t.user_attrs.get("params"))
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    count = 0
    for t in trials:
        if t.state != TrialState.PRUNED or "pruned_at_epoch" not in t.user_attrs:
            continue
        e = int(t.user_attrs["pruned_at_epoch"])
        acc, params = curves[t.number][0][e - 1], curves[t.number][1]
        dominated = any(
            len(c) >= e
            and p is not None
            and c[e - 1] >= acc
            and p <= params
            and (c[e - 1] > acc or p < params)
            for n, (c, p) in curves.items()
            if n != t.number
        )
        count += not dominated
    return count


def measure(trials: list[FrozenTrial], wall: float, ref: Reference) -> dict[str, Any]:
    """Everything reported for one run."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    points = [_point(t) for t in complete]
    curve, used, seen = [], 0, []
    for t in trials:
        used += _epochs(t)
        if t.state == TrialState.COMPLETE:
            seen.append(_point(t))
        curve.append([used, round(ref.hv(seen), 6)])
    at: dict[int, int] = {}
    for t in pruned:
        e = int(t.user_attrs.get("pruned_at_epoch", 0))
        at[e] = at.get(e, 0) + 1
    front = [
        [a, int(p)]
        for a, p in sorted(set(points), key=lambda x: x[1])
        if not any(b >= a and q <= p and (b > a or q < p) for b, q in points)
    ]
    hv = ref.hv(points)
    epochs = sum(_epochs(t) for t in trials)
    return {
        "epochs": epochs,
        "steps": sum(_steps(t, ref.n_train) for t in trials),
        "wall_s": round(wall, 2),
        "complete": len(complete),
        "pruned": len(pruned),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "pruned_at_epoch": {str(e): n for e, n in sorted(at.items())},
        "pruned_on_front": pruned_on_front(trials),
        "median_params_pruned": _median([t.user_attrs.get("params") for t in pruned]),
        "median_params_complete": _median([p for _, p in points]),
        "hv": round(hv, 6),
        "hv_linear": round(ref.hv(points, log=False), 6),
        "hv_per_100_epochs": round(100 * hv / epochs, 6) if epochs else None,
        "front": front,
        "curve": curve,
        "trials": [
            [
                t.number,
                t.state.name,
                _epochs(t),
                (t.user_attrs.get("val_accuracy") or [None])[-1],
                t.user_attrs.get("params"),
            ]
            for t in trials
        ],
    }


def _median(values: Sequence[Any]) -> float | None:
    clean = [float(v) for v in values if v is not None]
    return statistics.median(clean) if clean else None


def _paired(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    f: Callable[[dict[str, Any], dict[str, Any]], float],
) -> float:
    """The median over seeds of ``f(run, the same seed's run without pruning)``."""
    return statistics.median(f(r, x) for r, x in pairs)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


# --------------------------------------------------------------------------- summary


def summarise(
    runs: dict[str, dict[int, dict[str, Any]]],
    none_trials: dict[int, list[FrozenTrial]],
    seeds: Sequence[int],
    ref: Reference,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-config medians over seeds, and the goals per pruner."""
    base = runs.get("none")
    summary: dict[str, Any] = {}
    for config, by_seed in runs.items():
        rows = [by_seed[s] for s in seeds]
        row: dict[str, Any] = {
            "epochs_median": statistics.median(r["epochs"] for r in rows),
            "steps_median": statistics.median(r["steps"] for r in rows),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in rows), 2),
            "pruned_median": statistics.median(r["pruned"] for r in rows),
            "complete_median": statistics.median(r["complete"] for r in rows),
            "failed_total": sum(r["failed"] for r in rows),
            "pruned_on_front_median": statistics.median(r["pruned_on_front"] for r in rows),
            "hv_median": _r(statistics.median(r["hv"] for r in rows)),
            "hv_linear_median": _r(statistics.median(r["hv_linear"] for r in rows)),
            "hv_per_100_epochs_median": _r(
                statistics.median(r["hv_per_100_epochs"] or 0.0 for r in rows)
            ),
        }
        if "decisions" in rows[0]:
            row["decisions_median"] = statistics.median(r["decisions"] for r in rows)
            ms = [r["decision_ms_median"] for r in rows if r["decision_ms_median"] is not None]
            row["decision_ms_median"] = statistics.median(ms) if ms else None
        if base is not None:
            pairs = [(by_seed[s], base[s]) for s in seeds]
            equal = [hv_within_epochs(none_trials[s], by_seed[s]["epochs"], ref) for s in seeds]
            for s, e in zip(seeds, equal, strict=True):
                by_seed[s]["hv_none_at_equal_compute"] = round(e, 6)
            row |= {
                "epochs_saved_pct": _r(
                    100 * _paired(pairs, lambda r, x: 1 - r["epochs"] / x["epochs"]), 1
                ),
                "steps_saved_pct": _r(
                    100 * _paired(pairs, lambda r, x: 1 - r["steps"] / x["steps"]), 1
                ),
                "wall_saved_pct": _r(
                    100 * _paired(pairs, lambda r, x: 1 - r["wall_s"] / x["wall_s"]), 1
                ),
                "hv_ratio_vs_none": _r(_paired(pairs, lambda r, x: r["hv"] / x["hv"])),
                "hv_ratio_vs_none_per_seed": [_r(r["hv"] / x["hv"]) for r, x in pairs],
                "epochs_saved_pct_per_seed": [
                    _r(100 * (1 - r["epochs"] / x["epochs"]), 1) for r, x in pairs
                ],
                "hv_linear_ratio_vs_none": _r(
                    _paired(pairs, lambda r, x: r["hv_linear"] / x["hv_linear"])
                ),
                "hv_none_at_equal_compute_median": _r(statistics.median(equal)),
                "hv_ratio_vs_none_at_equal_compute_per_seed": [
                    _r(r["hv"] / e) if e > 0 else None
                    for (r, _), e in zip(pairs, equal, strict=True)
                ],
                "hv_ratio_vs_none_at_equal_compute": _r(
                    statistics.median(
                        r["hv"] / e if e > 0 else math.inf
                        for (r, _), e in zip(pairs, equal, strict=True)
                    )
                ),
            }
        summary[config] = row

    goals: dict[str, Any] = {}
    if base is None:
        return summary, goals
    for config in OUR_PRUNERS:
        if config not in runs:
            continue
        row = summary[config]
        g: dict[str, Any] = {
            "fewer_epochs_40pct": row["epochs_saved_pct"] >= 40.0,
            "hv_98pct_at_equal_trials": row["hv_ratio_vs_none"] >= 0.98,
            "hv_above_none_at_equal_compute": row["hv_ratio_vs_none_at_equal_compute"] > 1.0,
        }
        beats = {}
        for naive in NAIVE:
            if naive not in runs:
                continue
            diffs = [runs[config][s]["hv"] - runs[naive][s]["hv"] for s in seeds]
            beats[naive] = {
                "better": statistics.median(diffs) > 0,
                "hv_minus_naive_median": _r(statistics.median(diffs), 5),
                "seeds_better": sum(d > 0 for d in diffs),
            }
            g[f"better_than_{naive}"] = beats[naive]["better"]
        if beats:
            g["better_than_naive"] = all(b["better"] for b in beats.values())
        g["all_goals"] = all(v for k, v in g.items() if isinstance(v, bool))
        g["vs_naive"] = beats
        goals[config] = g
    return summary, goals


def table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width text table."""
    cols = [
        ("config", "", 13),
        ("epochs", "epochs_median", 7),
        ("saved%", "epochs_saved_pct", 7),
        ("steps%", "steps_saved_pct", 7),
        ("HV", "hv_median", 7),
        ("HV/none", "hv_ratio_vs_none", 8),
        ("HVnone@eq", "hv_none_at_equal_compute_median", 10),
        ("HV/eq", "hv_ratio_vs_none_at_equal_compute", 7),
        ("pruned", "pruned_median", 7),
        ("onfront", "pruned_on_front_median", 8),
        ("wall_s", "wall_s_median", 7),
    ]
    lines = [" ".join(f"{h:>{w}}" for h, _, w in cols)]
    for config, row in summary.items():
        cells = [f"{config:>13}"]
        for _, key, w in cols[1:]:
            v = row.get(key)
            cells.append(f"{'-' if v is None else v:>{w}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


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
