"""The stand-in objective and the studies that already hold N finished trials.

The stand-in samples the study's real search space through
:func:`nas_objectives.suggest` (so every trial has the parameters, and the conditional
parameters, that a real trial of the study has), records the user attributes the real
:class:`nas_objectives.Objective` records, and returns ``(accuracy, params)`` from a smooth
synthetic function of the parameters instead of training. Parameter counts are exact for
the MLP family; accuracy rises with width and depth, falls away from each optimizer's best
learning rate, and carries a small per-trial noise, so the Pareto front is a plausible one
for the samplers to work on.

A populated study is made once per size, by ``Study.add_trials`` on the same finished
trials of a random search (run in memory with the stand-in), and kept as a snapshot file
that every sampler then starts from.
"""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial

from nas_objectives import ObjectiveConfig, record, suggest
from nas_objectives.space import Layout, OptimizerSettings
from storage import open_storage
from studies import StudySpec, open_study

#: The digits dataset: 8x8 grey images, ten classes.
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10
#: Each optimizer's best learning rate in the synthetic accuracy (log10).
_BEST_LOG_LR = {"adam": -2.5, "adamw": -2.5, "rmsprop": -2.8, "sgd": -1.0}
#: What the stand-in records as the worker of the pre-populated trials.
POPULATION_WORKER = "populate:0"

Section = Callable[[str], AbstractContextManager[Any]]


def mlp_params(layout: Layout) -> int:
    """Exactly ``sum(p.numel())`` of :class:`nas_objectives.MLP` for ``layout``."""
    n_in = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
    total = 0
    for width in layout.widths:
        total += n_in * width + (width if layout.norm != "batch" else 0)
        total += 2 * width if layout.norm in ("batch", "layer") else 0
        n_in = width
    return total + (n_in + 1) * layout.num_classes


def synthetic_accuracy(layout: Layout, settings: OptimizerSettings, number: int) -> float:
    """A smooth, plausible validation accuracy of one configuration (no training)."""
    capacity = sum(math.log2(w) for w in layout.widths) + 0.5 * len(layout.widths)
    acc = 0.985 - 0.6 * math.exp(-capacity / 3.0)
    acc -= 0.03 * (math.log10(settings.lr) - _BEST_LOG_LR[settings.name]) ** 2
    acc -= 0.08 * layout.dropout**2 + 0.02 * abs(settings.label_smoothing - 0.05)
    acc -= {"tanh": 0.01, "relu": 0.0, "gelu": 0.0, "silu": 0.002}.get(layout.activation, 0.0)
    acc += {"batch": 0.004, "layer": 0.002}.get(layout.norm, 0.0)
    acc += random.Random(number).gauss(0.0, 0.004)  # the seed-to-seed spread of training
    return min(max(acc, 0.1), 0.995)


class StandIn:
    """An objective for ``cfg``'s MLP space that records a trial as the real one does, but
    computes its accuracy instead of training.

    ``section("stand_in")`` wraps the synthetic computation alone, so a timer can leave it
    out: sampling and recording are the trial's real overhead, the computation stands in
    for training.
    """

    def __init__(self, cfg: ObjectiveConfig, section: Section | None = None) -> None:
        if cfg.space.model.family != "mlp":
            raise ValueError(f"the stand-in covers MLP spaces, not {cfg.space.model.family!r}")
        self.cfg = cfg
        self.section: Section = section or (lambda _: nullcontext())

    def __call__(self, trial: optuna.trial.Trial) -> tuple[float, ...]:
        layout, settings = suggest(trial, self.cfg.space, INPUT_SHAPE, NUM_CLASSES)
        with self.section("stand_in"):
            params = mlp_params(layout)
            flops = 2 * (params - layout.num_classes)  # one multiply-add a weight, roughly
            accuracy = synthetic_accuracy(layout, settings, trial.number)
            epochs = self.cfg.epochs
            curve = [round(accuracy * (1 - 0.5 * math.exp(-e / 2.5)), 4) for e in range(epochs)]
            curve[-1] = accuracy
            seconds = 0.2 + params / 2e5 + epochs * 64 / settings.batch_size * 0.01
        trial.set_user_attr(record.ARCH, f"{layout.summary()} | {settings.summary()}")
        trial.set_user_attr(record.LAYOUT, layout.to_dict())
        trial.set_user_attr(record.OPTIMIZER_SETTINGS, settings.to_dict())
        trial.set_user_attr(record.PARAMS, params)
        trial.set_user_attr(record.FLOPS, flops)
        trial.set_user_attr(record.DEVICE, "cpu")
        trial.set_user_attr(record.SEED, self.cfg.seed + trial.number)
        trial.set_user_attr(record.VAL_ACCURACY, curve)
        trial.set_user_attr(record.EPOCHS_RUN, epochs)
        trial.set_user_attr(record.TRAIN_SECONDS, round(seconds, 4))
        metrics = {"accuracy": accuracy, "f1": accuracy, "params": params, "flops": flops}
        return tuple(float(metrics[name]) for name in self.cfg.objectives)


def source_trials(spec: StudySpec, n: int, seed: int) -> list[FrozenTrial]:
    """``n`` finished trials of a random search of ``spec``'s space with the stand-in, as
    a worker would have stored them (its ``worker`` attribute included)."""
    study = optuna.create_study(
        directions=spec.directions, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.optimize(StandIn(spec.objective), n_trials=n)
    trials = study.get_trials(deepcopy=True)
    for trial in trials:
        trial.user_attrs[record.WORKER] = POPULATION_WORKER
    return trials


def _unsynced(storage: optuna.storages.BaseStorage) -> None:
    # Populating commits once per trial; without fsync it takes half the time. Only the
    # populating connection skips it: the timed runs open the copies afresh.
    assert isinstance(storage, optuna.storages.RDBStorage)
    engine = storage.engine

    def pragma(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=OFF")

    sqlalchemy.event.listen(engine, "connect", pragma)
    engine.dispose()


def populate_sqlite(
    spec: StudySpec, trials: Sequence[FrozenTrial], sizes: Sequence[int], folder: Path, tag: str
) -> tuple[dict[int, Path], dict[int, float] | None]:
    """Snapshot files of the study holding the first N of ``trials``, for each N in
    ``sizes``, and the seconds each took to add (``Study.add_trials``, cumulatively).

    Snapshots named by ``tag`` that are already in ``folder`` are reused (seconds None).
    """
    snapshots = {size: folder / f"study-{tag}-{size}.db" for size in sizes}
    if all(path.exists() for path in snapshots.values()):
        return snapshots, None
    work = folder / f"populate-{tag}.db"
    work.unlink(missing_ok=True)
    storage = open_storage(f"sqlite:///{work}", heartbeat=None)
    _unsynced(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = open_study(spec, storage)
    seconds: dict[int, float] = {}
    done = 0
    for size in sorted(sizes):
        start = time.perf_counter()
        study.add_trials(list(trials[done:size]))
        seconds[size] = time.perf_counter() - start
        done = size
        # The backup API copies a consistent database, whatever sits in the WAL file.
        with (
            closing(sqlite3.connect(work)) as src,
            closing(sqlite3.connect(snapshots[size])) as dst,
        ):
            src.backup(dst)
    assert isinstance(storage, optuna.storages.RDBStorage)
    storage.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    return snapshots, seconds


def fresh_copy(snapshot: Path, dest: Path) -> str:
    """A copy of ``snapshot`` at ``dest`` (a run changes its study), as a storage URL."""
    shutil.copyfile(snapshot, dest)
    return f"sqlite:///{dest}"


def populate_memory(spec: StudySpec, trials: Sequence[FrozenTrial]) -> optuna.storages.BaseStorage:
    """An in-memory storage holding the study with ``trials``."""
    storage = optuna.storages.InMemoryStorage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        open_study(spec, storage).add_trials(list(trials))
    return storage
