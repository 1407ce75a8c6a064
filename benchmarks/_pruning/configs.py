"""The configurations of ``pruning.py``: the pruner settings, the two naive baselines, and
one run of a configuration on a fresh storage."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

import studies
from nas_objectives import Objective, load_dataset
from storage import open_storage
from studies import ParetoRankPruner

STUDY = "digits-mlp"
CONFIGS = ("none", "pareto_rank", "dominance", "naive_asha", "naive_median")
OUR_PRUNERS = ("pareto_rank", "dominance")
NAIVE = ("naive_asha", "naive_median")
STORAGE_URL = "sqlite:///:memory:"

#: What the objective passes an epoch pruner (see ``nas_objectives.objective.EpochPruner``).
EpochPruner = Callable[[optuna.trial.BaseTrial, int, tuple[float, ...]], "str | None"]


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
