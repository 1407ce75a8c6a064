"""Creating or joining a study in a storage, and running its trials in this process."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import Objective, load_dataset
from studies._components import build_pruner, build_sampler
from studies._spec import StudySpec

_logger = logging.getLogger(__name__)

#: Trials counted against a study's budget, whoever ran them.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
#: User attribute on the study holding the study file it was created from.
SPEC_ATTR = "nas_study_spec"


class StudyRunError(RuntimeError):
    """A study cannot be created, joined or run as asked."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        StudyRunError: an unknown name, or CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StudyRunError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise StudyRunError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StudyRunError(f"--device {name!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StudyRunError(
                f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    return device


def show_progress() -> bool:
    """Progress bars only on a terminal, and never under ``CI=true``."""
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not ci


def open_study(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    *,
    study_name: str | None = None,
    seed: int | None = None,
) -> optuna.Study:
    """Create the study, or join it if it exists with the same objectives.

    Raises:
        StudyRunError: a study of that name exists with other objectives.
    """
    name = study_name or spec.name
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=spec.directions,
        sampler=build_sampler(spec, seed),
        pruner=build_pruner(spec),
        load_if_exists=True,
    )
    existing = study.metric_names
    wanted = list(spec.objectives)
    if existing is not None and existing != wanted:
        raise StudyRunError(
            f"study {name!r} already exists with objectives {existing}, but {spec.path} asks "
            f"for {wanted}; pick another --study-name"
        )
    if [d.name.lower() for d in study.directions] != spec.directions:
        raise StudyRunError(
            f"study {name!r} already exists with directions "
            f"{[d.name.lower() for d in study.directions]}, but {spec.path} asks for "
            f"{spec.directions}; pick another --study-name"
        )
    if existing is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(wanted)
        study.set_user_attr(SPEC_ATTR, json.loads(json.dumps(dict(spec.source), default=str)))
    return study


def count_budget(study: optuna.Study) -> int:
    """Trials that count against the budget: COMPLETE + PRUNED, across all workers."""
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


class _FailureGuard:
    """Counts this process's trials, and stops it after ``limit`` failed trials in a row.

    A broken setup should end the run with its reason, not fill the study with failures.
    An isolated failure (a NaN loss, say) is recorded and the run goes on.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.in_a_row = 0
        self.total = 0
        self.last_reason = ""
        self.tripped = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.seen += 1
        if trial.state != TrialState.FAIL:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        self.last_reason = str(trial.user_attrs.get("fail_reason", "unknown reason"))
        if self.in_a_row >= self.limit:
            self.tripped = True
            study.stop()


@dataclass
class RunReport:
    """What one ``run_study`` call did."""

    study: optuna.Study
    budget: int
    ran: int
    failed: int
    stopped_for_failures: bool
    last_failure: str


def run_study(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    study_name: str | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    progress: bool | None = None,
    max_failures_in_a_row: int = 5,
    on_start: Callable[[optuna.Study], None] | None = None,
) -> RunReport:
    """Create or join the study and run trials until its budget is met.

    ``n_trials`` is the study's global budget: trials COMPLETE or PRUNED, whoever ran
    them. A study already at its budget runs nothing. ``on_start`` is called once the data
    is loaded and the study opened, before the first trial.

    Raises:
        StudyRunError, nas_objectives.DatasetError: setup problems, before any trial runs.
    """
    dev = resolve_device(device)
    objective_cfg = spec.objective
    if seed is not None:
        objective_cfg = dataclasses.replace(objective_cfg, seed=seed)
    if epochs is not None:
        objective_cfg = dataclasses.replace(objective_cfg, epochs=epochs)
    # Load data before touching the study, so a missing dataset costs no trial.
    data = load_dataset(
        spec.dataset.name,
        device=dev,
        data_dir=data_dir or spec.dataset.data_dir,
        val_fraction=spec.dataset.val_fraction,
    )
    study = open_study(spec, storage, study_name=study_name, seed=seed)
    if on_start is not None:
        on_start(study)
    budget = n_trials if n_trials is not None else spec.n_trials
    remaining = budget - count_budget(study)
    guard = _FailureGuard(max_failures_in_a_row)
    if remaining > 0:
        study.optimize(
            Objective(objective_cfg, data),
            n_trials=remaining,
            timeout=timeout if timeout is not None else spec.timeout,
            catch=(Exception,),
            callbacks=[MaxTrialsCallback(budget, states=BUDGET_STATES), guard],
            show_progress_bar=show_progress() if progress is None else progress,
        )
    return RunReport(
        study=study,
        budget=budget,
        ran=guard.seen,
        failed=guard.total,
        stopped_for_failures=guard.tripped,
        last_failure=guard.last_reason,
    )
