"""Opening a study: where trials train, creating or joining the study, and its budget."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping

import optuna
import torch
from optuna.trial import TrialState

from nas_objectives.record import STUDY_SPEC
from storage import worker_cached_storage
from studies.errors import SearchSpaceChangedError, StudyRunError
from studies.pruners import build_pruner
from studies.samplers import build_sampler
from studies.spec import StudySpec, space_change

#: Trials counted against a study's budget, whoever ran them.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
#: User attribute on the study holding the study file it was created from.
SPEC_ATTR = STUDY_SPEC


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


def open_study(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    *,
    study_name: str | None = None,
    seed: int | None = None,
) -> optuna.Study:
    """Create the study, or join it if it exists with the same objectives and searches the
    same space (:func:`studies.spec.space_change`). Nothing is written to a study that is
    refused.

    Raises:
        StudyRunError: a study of that name exists with other objectives.
        SearchSpaceChangedError: a study of that name exists, and the study file it stored
            searches another space than ``spec``.
    """
    name = study_name or spec.name
    study = optuna.create_study(
        # A worker stores each trial in three transactions rather than one per write.
        storage=worker_cached_storage(storage),
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
    _check_space(spec, study)
    if existing is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(wanted)
        study.set_user_attr(SPEC_ATTR, json.loads(json.dumps(dict(spec.source), default=str)))
    return study


def _check_space(spec: StudySpec, study: optuna.Study) -> None:
    # A study created by plain Optuna, or before study files were stored, has none: its
    # trials' distributions are then checked one by one as they are written.
    stored = study.user_attrs.get(SPEC_ATTR)
    if not isinstance(stored, Mapping):
        return
    change = space_change(stored, spec.objective.space)
    if change is None:
        return
    raise SearchSpaceChangedError(
        f"{spec.path}: {change.field}: study {study.study_name!r} was created with "
        f"{change.stored}, this file has {change.new}; the search space of an existing "
        f"study cannot change: restore the field, or pick another --study-name",
        change.field,
        change.stored,
        change.new,
    )


def count_budget(study: optuna.Study) -> int:
    """Trials that count against the budget: COMPLETE + PRUNED, across all workers."""
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))
