"""The tabular benchmark's library: load the table, look trials up, score search strategies.

The table (``digits-mlp-table.csv.gz``, built by ``build_table.py``) holds every
configuration of the grid study file ``digits-mlp-table.toml``, each trained with several
seeds. A *strategy* is one of the project's samplers (``studies.build_sampler`` on the
study file with its ``[sampler]`` table swapped); a *run* is one real in-memory Optuna
study of that sampler whose objective looks trials up in the table instead of training.

Objective of a looked-up trial: the configuration's validation accuracy after the last
epoch and its parameter count, the accuracy being the **mean over the table's seeds**
(``noise="mean"``, the default: a deterministic objective whose true front is exact) or
that of one seed drawn per trial (``noise="seed"``: what a real study sees). Either way,
the found front is scored with mean accuracies (the "oracle" view: the quality of the
configurations found, not the luck of their draws).

Hypervolume: Optuna's own routine, through ``studies.pareto.hypervolume``, on
``(accuracy, log10(params))`` with the reference point ``(0, log10(1.1 * P_max))``,
``P_max`` being the table's largest parameter count. Relative hypervolume is the found
front's over the table's true front's (1.0: the true front's hypervolume reached). With
accuracy 0 as reference, most of the area lies below any decent model, so a few lucky
trials already score 0.99; the *strict* variant moves the reference accuracy up to the
table's median configuration's (``Table.median_accuracy``), so only the better half of
the table counts and strategies are told apart.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

import studies
from nas_objectives import ObjectiveConfig, suggest
from studies import ComponentSpec, StudySpec, build_sampler, load_spec
from studies.pareto import hypervolume as pareto_hypervolume
from studies.pareto import pareto_ranks
from studies.pruners import build_epoch_pruner
from studies.samplers import check_sampler_options

HERE = Path(__file__).resolve().parent
TABLE_PATH = HERE / "digits-mlp-table.csv.gz"
SPEC_PATH = HERE / "digits-mlp-table.toml"
#: The study whose sampler options are the "catalog default" strategy.
CATALOG_SPEC = "digits-mlp"
#: Strategies in report order; ``evolution`` and ``reinforce`` join when the project has them.
BASE_STRATEGIES = ("random", "tpe", "nsga2", "nsga3", "gp", "qmc")
OPTIONAL_STRATEGIES = ("evolution", "reinforce")
#: Strategies that are a sampler with options: evolution with uniform crossover (issue 12)
#: at half the children, against its default of none.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "evolution_crossover": ("evolution", {"crossover_prob": 0.5}),
}
#: The table's objectives, (accuracy, params).
DIRECTIONS = ("maximize", "minimize")


def strategies() -> tuple[str, ...]:
    """The strategies this project can run: its samplers, in report order."""
    extra = tuple(s for s in OPTIONAL_STRATEGIES if s in studies.SAMPLERS)
    variants = tuple(n for n, (base, _) in VARIANTS.items() if base in studies.SAMPLERS)
    return BASE_STRATEGIES + extra + variants


@dataclass(frozen=True)
class Entry:
    """One configuration of the table.

    ``curves`` is (seeds, epochs) validation accuracy; a run whose loss diverged holds NaN
    from that epoch on. ``failed`` is True when any seed diverged.
    """

    key: str
    params: dict[str, Any]
    arch: str
    n_params: int
    flops: int
    curves: np.ndarray
    test_acc: np.ndarray
    train_seconds: np.ndarray

    @property
    def failed(self) -> bool:
        return bool(np.isnan(self.curves).any())

    @property
    def accuracy(self) -> float:
        """Mean over seeds of the last epoch's validation accuracy (NaN if any diverged)."""
        return float(self.curves[:, -1].mean())

    @property
    def mean_curve(self) -> np.ndarray:
        return self.curves.mean(axis=0)


@dataclass
class Table:
    """The loaded table and the study file whose grid it covers."""

    spec: StudySpec
    entries: dict[str, Entry]
    seeds: tuple[int, ...]
    epochs: int
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TABLE_PATH, spec_path: Path = SPEC_PATH) -> Table:
        """Read the gzipped CSV at ``path`` (and its settings JSON, if present)."""
        rows: dict[str, list[dict[str, str]]] = {}
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["config"], []).append(r)
        spec = load_spec(spec_path)
        epochs = spec.objective.epochs
        entries = {}
        seeds: set[tuple[int, ...]] = set()
        for key, rs in rows.items():
            rs.sort(key=lambda r: int(r["seed"]))
            seeds.add(tuple(int(r["seed"]) for r in rs))
            curves = np.full((len(rs), epochs), np.nan)
            for i, r in enumerate(rs):
                values = [float(v) for v in r["val_acc"].split(";") if v]
                curves[i, : len(values)] = values
            entries[key] = Entry(
                key=key,
                params=json.loads(key),
                arch=rs[0]["arch"],
                n_params=int(rs[0]["params"]),
                flops=int(rs[0]["flops"]),
                curves=curves,
                test_acc=np.array([float(r["test_acc"] or "nan") for r in rs]),
                train_seconds=np.array([float(r["train_seconds"]) for r in rs]),
            )
        if len(seeds) != 1:
            raise ValueError(f"{path}: configurations were trained with different seeds")
        settings_path = path.with_name(path.name.split(".")[0] + ".json")
        settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
        return cls(spec, entries, seeds.pop(), epochs, settings)

    # -- the true front ---------------------------------------------------------------

    def reference_point(self, ref_accuracy: float = 0.0) -> np.ndarray:
        """``(-ref_accuracy, log10(1.1 * P_max))`` in the minimised ``(-accuracy, log10
        params)``; ``ref_accuracy`` 0 by default (every model counts)."""
        p_max = max(e.n_params for e in self.entries.values())
        return np.array([-ref_accuracy, math.log10(1.1 * p_max)])

    def median_accuracy(self) -> float:
        """The median configuration's accuracy: the strict reference point's accuracy."""
        return float(np.median([e.accuracy for e in self.usable()]))

    def usable(self) -> list[Entry]:
        """Entries whose every seed trained to the end (a diverged one fails its trial)."""
        return [e for e in self.entries.values() if not e.failed]

    def true_front(self) -> list[Entry]:
        """The Pareto-optimal entries of (mean accuracy, params)."""
        entries = self.usable()
        ranks = pareto_ranks(_natural([(e.accuracy, e.n_params) for e in entries]), DIRECTIONS)
        return [e for e, rank in zip(entries, ranks, strict=True) if rank == 0]

    def true_hypervolume(self, ref_accuracy: float = 0.0) -> float:
        points = [(e.accuracy, e.n_params) for e in self.true_front()]
        return hypervolume(points, self, ref_accuracy)

    def best_accuracy(self) -> float:
        return max(e.accuracy for e in self.usable())


def _natural(points: Sequence[tuple[float, float]]) -> np.ndarray:
    """``(accuracy, params)`` points as ``(accuracy, log10(params))`` rows."""
    arr = np.asarray(points, dtype=float).reshape(len(points), 2)
    return np.column_stack([arr[:, 0], np.log10(arr[:, 1])])


def hypervolume(
    points: Sequence[tuple[float, float]], table: Table, ref_accuracy: float = 0.0
) -> float:
    """Hypervolume of (accuracy, params) points against the table's reference point.

    Points not better than the reference point in both objectives add nothing.
    """
    if not points:
        return 0.0
    ref_log_params = float(table.reference_point(ref_accuracy)[1])
    return pareto_hypervolume(_natural(points), [ref_accuracy, ref_log_params], DIRECTIONS)


# -- strategies and runs --------------------------------------------------------------


def _strategy_sampler(strategy: str) -> ComponentSpec:
    if strategy == "tpe":
        return load_spec(studies.catalog_dir() / f"{CATALOG_SPEC}.toml").sampler
    if strategy in VARIANTS:
        return ComponentSpec(*VARIANTS[strategy])
    return ComponentSpec(strategy, {})


def strategy_spec(
    table: Table,
    strategy: str,
    objectives: Sequence[str] | None = None,
    sampler: ComponentSpec | None = None,
) -> StudySpec:
    """The table's study file with its sampler swapped for ``strategy``.

    ``tpe`` takes the catalog study's exact sampler options (the catalog default); the
    others Optuna's defaults. ``objectives`` (e.g. ``["accuracy"]``) replaces the study's.
    ``sampler`` given, it is the sampler, and ``strategy`` only names it.
    """
    spec = table.spec
    if sampler is None:
        sampler = _strategy_sampler(strategy)
    problem = check_sampler_options(sampler.name, sampler.options)
    if problem is not None:
        raise ValueError(f"sampler {strategy!r}: {problem}")
    spec = dataclasses.replace(spec, sampler=sampler)
    if objectives is not None:
        cfg = dataclasses.replace(spec.objective, objectives=tuple(objectives))
        spec = dataclasses.replace(spec, objective=cfg)
    return spec


class _Diverged(Exception):
    """The configuration's training loss diverged: the trial fails, as it would for real."""


@dataclass
class RunTrace:
    """What one run saw, trial by trial. ``values`` hold mean accuracy and params of
    COMPLETE trials (None for failed or pruned ones); ``epochs`` the epochs each trained."""

    strategy: str
    seed: int
    mode: str
    keys: list[str] = field(default_factory=list)
    values: list[tuple[float, int] | None] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_strategy(
    table: Table,
    strategy: str,
    seed: int,
    n_trials: int,
    *,
    mode: str = "mo",
    noise: str = "mean",
    pruner: ComponentSpec | None = None,
    max_epochs: int | None = None,
    sampler: ComponentSpec | None = None,
) -> RunTrace:
    """One run: a real in-memory Optuna study of ``strategy`` over the table.

    Args:
        mode: ``"mo"`` (accuracy and params) or ``"so"`` (accuracy only).
        noise: ``"mean"`` (mean accuracy over seeds) or ``"seed"`` (one seed per trial).
        pruner: A ``pareto_rank`` or ``dominance`` pruner (``mo`` only): trials are
            replayed epoch by epoch through the same per-epoch hook the real objective
            uses (``build_epoch_pruner``), the table's curve written as the
            ``val_accuracy`` user attribute.
        max_epochs: Stop once the trials have trained this many epochs in all.
        sampler: A sampler table of its own (``strategy`` then only labels the run).
    """
    spec = strategy_spec(table, strategy, ["accuracy"] if mode == "so" else None, sampler)
    if pruner is not None:
        spec = dataclasses.replace(spec, pruner=pruner)
    epoch_pruner = build_epoch_pruner(spec)
    rng = random.Random(seed)
    trace = RunTrace(strategy, seed, mode)
    cfg: ObjectiveConfig = spec.objective
    shape, n_classes = (1, 8, 8), 10

    def objective(trial: optuna.trial.Trial) -> float | tuple[float, float]:
        suggest(trial, cfg.space, shape, n_classes)
        key = json.dumps(trial.params, sort_keys=True)
        entry = table.entries[key]
        trace.keys.append(key)
        trace.values.append(None)
        trace.epochs.append(table.epochs)
        if entry.failed:
            raise _Diverged(entry.arch)
        curve = (
            entry.mean_curve if noise == "mean" else entry.curves[rng.randrange(len(entry.curves))]
        )
        trial.set_user_attr("params", entry.n_params)
        trial.set_user_attr("flops", entry.flops)
        if epoch_pruner is not None:
            for epoch in range(1, table.epochs + 1):
                trial.set_user_attr("val_accuracy", [float(a) for a in curve[:epoch]])
                reason = epoch_pruner(trial, epoch, (float(curve[epoch - 1]), entry.n_params))
                if reason is not None:
                    trace.epochs[-1] = epoch
                    raise optuna.TrialPruned(reason)
        trace.values[-1] = (entry.accuracy, entry.n_params)
        acc = float(curve[-1])
        return acc if mode == "so" else (acc, float(entry.n_params))

    def stop_at_budget(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if max_epochs is not None and sum(trace.epochs) >= max_epochs:
            study.stop()

    # The samplers' "sampled independently" warnings (a conditional space) would drown the
    # output: one per parameter and trial.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(
                directions=spec.directions, sampler=build_sampler(spec, seed)
            )
            start = time.perf_counter()
            study.optimize(
                objective, n_trials=n_trials, catch=(_Diverged,), callbacks=[stop_at_budget]
            )
            trace.wall_seconds = time.perf_counter() - start
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert len(trace.keys) == len([t for t in study.trials if t.state != TrialState.RUNNING])
    return trace


# -- scores ---------------------------------------------------------------------------


def hv_curve(trace: RunTrace, table: Table, ref_accuracy: float = 0.0) -> list[float]:
    """Relative hypervolume of the COMPLETE trials after each trial of ``trace``."""
    true_hv = table.true_hypervolume(ref_accuracy)
    out, points = [], []
    front: list[tuple[float, int]] = []
    for v in trace.values:
        if v is not None:
            points.append(v)
            ranks = pareto_ranks(_natural(points), DIRECTIONS)
            points = [p for p, rank in zip(points, ranks, strict=True) if rank == 0]
            front = points
        out.append(hypervolume(front, table, ref_accuracy) / true_hv)
    return out


def best_curve(trace: RunTrace) -> list[float]:
    """Best mean accuracy among COMPLETE trials after each trial (NaN before the first)."""
    out, best = [], math.nan
    for v in trace.values:
        if v is not None and not (v[0] <= best):
            best = v[0]
        out.append(best)
    return out


def first_reaching(curve: Sequence[float], level: float) -> int | None:
    """The number of trials after which ``curve`` first reaches ``level``, or None."""
    for i, v in enumerate(curve, 1):
        if v >= level - 1e-12:
            return i
    return None


def summarize(values: Sequence[float]) -> dict[str, float | None]:
    """Median and interquartile range (25th, 75th percentiles) of ``values``."""
    if not values:
        return {"median": None, "q25": None, "q75": None}
    q25, med, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


def summarize_reaching(hits: Sequence[int | None]) -> dict[str, Any]:
    """Median trials to reach a level, counting runs that never did as infinitely many."""
    n_missed = sum(h is None for h in hits)
    ordered = sorted(math.inf if h is None else h for h in hits)
    med = float(np.median(ordered)) if ordered else math.nan
    return {
        "median": med if math.isfinite(med) else None,
        "reached": len(hits) - n_missed,
        "not_reached": n_missed,
        "runs": len(hits),
    }


def epochs_curve(trace: RunTrace, table: Table) -> tuple[list[int], list[float]]:
    """(cumulative epochs trained, relative hypervolume) after each trial of ``trace``."""
    return list(np.cumsum(trace.epochs).tolist()), hv_curve(trace, table)


def at_budget(xs: Sequence[float], ys: Sequence[float], budget: float) -> float:
    """The last ``ys`` value whose ``xs`` is within ``budget`` (0 if none)."""
    best = 0.0
    for x, y in zip(xs, ys, strict=True):
        if x > budget:
            break
        best = y
    return best


Progress = Callable[[str], None]
