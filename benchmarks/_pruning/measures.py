"""What ``pruning.py`` measures of a run: the fixed hypervolume reference, epochs, steps,
pruned Pareto-optimal trials, and the cost of one pruning decision."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import studies
from benchmarks._pruning.configs import STUDY
from nas_objectives import Choice, IntRange, Layout, build_model, count_params, load_dataset
from nas_objectives._feed import batch_count
from studies import ParetoRankPruner, build_mo_pruner
from studies.pareto import hypervolume

#: The objectives of the study's front, (accuracy, params).
DIRECTIONS = ("maximize", "minimize")


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
            decide_at(e) for t in trials for e in range(1, min(epochs_run(t), epochs) + 1)
        ),
        "decision_ms_median": rounded(statistics.median(times), 2) if times else None,
        "decision_ms_max": rounded(max(times), 2) if times else None,
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
        box = 1.0 * (f(self.ref_params) - f(self.min_params))
        kept = [(a, f(p)) for a, p in points if a > 0 and p < self.ref_params]
        return hypervolume(kept, [0.0, f(self.ref_params)], DIRECTIONS) / box

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


def bounds(values: IntRange | Choice) -> tuple[int, int]:
    """The smallest and largest whole number of a range, or of a choice (``{ choices }``)."""
    if isinstance(values, Choice):
        options = [int(v) for v in values.options]
        return min(options), max(options)
    return values.low, values.high


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
    (min_depth, max_depth), (min_width, max_width) = bounds(space.depth), bounds(space.width)
    small = min(params(min_depth, min_width, n) for n in norms)
    large = max(params(max_depth, max_width, n) for n in norms)
    return Reference(min_params=small, max_params=large, n_train=len(data.x_train))


# --------------------------------------------------------------------------- measures


def point(t: FrozenTrial) -> tuple[float, float]:
    return float(t.values[0]), float(t.values[1])


def epochs_run(t: FrozenTrial) -> int:
    return int(t.user_attrs.get("epochs_run") or 0)


def steps_taken(t: FrozenTrial, n_train: int) -> int:
    """Optimizer steps the trial took (``train``: ``ceil(n_train / batch)`` an epoch)."""
    batch = min(int(t.params.get("batch_size", n_train)), n_train)
    return epochs_run(t) * batch_count(n_train, batch)


def hv_within_epochs(trials: Sequence[FrozenTrial], budget: int, ref: Reference) -> float:
    """Hypervolume of the COMPLETE trials among the first trials fitting in ``budget`` epochs."""
    used, points = 0, []
    for t in trials:
        used += epochs_run(t)
        if used > budget:
            break
        if t.state == TrialState.COMPLETE:
            points.append(point(t))
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
    points = [point(t) for t in complete]
    curve, used, seen = [], 0, []
    for t in trials:
        used += epochs_run(t)
        if t.state == TrialState.COMPLETE:
            seen.append(point(t))
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
    epochs = sum(epochs_run(t) for t in trials)
    return {
        "epochs": epochs,
        "steps": sum(steps_taken(t, ref.n_train) for t in trials),
        "wall_s": round(wall, 2),
        "complete": len(complete),
        "pruned": len(pruned),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "pruned_at_epoch": {str(e): n for e, n in sorted(at.items())},
        "pruned_on_front": pruned_on_front(trials),
        "median_params_pruned": median_or_none([t.user_attrs.get("params") for t in pruned]),
        "median_params_complete": median_or_none([p for _, p in points]),
        "hv": round(hv, 6),
        "hv_linear": round(ref.hv(points, log=False), 6),
        "hv_per_100_epochs": round(100 * hv / epochs, 6) if epochs else None,
        "front": front,
        "curve": curve,
        "trials": [
            [
                t.number,
                t.state.name,
                epochs_run(t),
                (t.user_attrs.get("val_accuracy") or [None])[-1],
                t.user_attrs.get("params"),
            ]
            for t in trials
        ],
    }


def median_or_none(values: Sequence[Any]) -> float | None:
    clean = [float(v) for v in values if v is not None]
    return statistics.median(clean) if clean else None


def paired(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    f: Callable[[dict[str, Any], dict[str, Any]], float],
) -> float:
    """The median over seeds of ``f(run, the same seed's run without pruning)``."""
    return statistics.median(f(r, x) for r, x in pairs)


def rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)
