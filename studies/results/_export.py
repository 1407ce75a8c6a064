"""``nas-study export`` and ``nas-study evaluate``: a trial's model, retrained and written
to a directory, and its test accuracy.

The study side only: finding the study and the trial, and replaying the study's search
space on the trial's stored parameters. Training, the file format, verification and
evaluation live in :mod:`nas_objectives.export`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import ExportError, Layout, OptimizerSettings, record, suggest
from nas_objectives.record import STUDY_SPEC
from studies.results._tables import best_trials, metric_names
from studies.spec import StudySpec, spec_from_data

if TYPE_CHECKING:  # the data is the caller's; reading a study needs no torch
    from nas_objectives import TensorData

_logger = logging.getLogger(__name__)

#: ``--trial best``: the most accurate Pareto-optimal trial.
BEST = "best"


def stored_spec(study: optuna.Study) -> StudySpec:
    """The study file ``study`` was created from, as stored with it.

    Raises:
        ExportError: the study carries no study file (nas-study did not create it).
        StudySpecError: the stored file is no longer valid.
    """
    source = study.user_attrs.get(STUDY_SPEC)
    if not isinstance(source, dict):
        raise ExportError(
            f"study {study.study_name!r} has no stored study file (user attribute "
            f"{STUDY_SPEC}): nas-study did not create it, so its trials cannot be rebuilt"
        )
    return spec_from_data(source, f"study {study.study_name!r} (stored study file)")


def select_trial(
    study: optuna.Study, which: int | str, *, max_params: int | None = None
) -> FrozenTrial:
    """Trial number ``which``, or for ``"best"`` the most accurate Pareto-optimal trial.

    ``"best"``: among the Pareto set (feasible trials only) the one with the highest
    ``accuracy`` (else ``f1``), then the fewest parameters, then the lowest number; in a
    single-objective study, the best feasible trial. ``max_params`` keeps only trials whose
    stored ``params`` are at most that. Only COMPLETE trials are exported: a PRUNED trial
    never finished training and has no values to report.

    Raises:
        ExportError: no such trial, a trial that is not COMPLETE, or none that qualifies.
    """
    name = study.study_name
    if which != BEST:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == which]
        if not found:
            n = len(study.get_trials(deepcopy=False))
            known = f"trials 0-{n - 1}" if n else "no trials"
            raise ExportError(f"study {name!r} has no trial {which} ({known})")
        trial = found[0]
        if trial.state != TrialState.COMPLETE:
            raise ExportError(
                f"trial {which} of study {name!r} is {trial.state.name}; only COMPLETE trials "
                f"can be exported"
            )
        return trial

    names = metric_names(study)
    if len(study.directions) == 1:
        pool = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values is not None and all(c <= 0 for c in t.constraints.values())
        ]
        index, maximize = 0, study.directions[0] == StudyDirection.MAXIMIZE
    else:
        pool = best_trials(study)
        quality = next((q for q in ("accuracy", "f1") if q in names), None)
        if quality is None:
            raise ExportError(
                f"study {name!r} has no accuracy objective (objectives: {', '.join(names)}); "
                f"pick a trial with --trial N"
            )
        index, maximize = names.index(quality), True
    if not pool:
        raise ExportError(f"study {name!r} has no COMPLETE feasible trial to export")
    if max_params is not None:
        under = [t for t in pool if _params(t) <= max_params]
        if not under:
            smallest = min(_params(t) for t in pool)
            raise ExportError(
                f"no {'best' if len(study.directions) == 1 else 'Pareto-optimal'} trial of "
                f"study {name!r} has at most {max_params} params (the smallest has "
                f"{smallest:g})"
            )
        pool = under
    sign = -1.0 if maximize else 1.0
    return min(pool, key=lambda t: (sign * t.values[index], _params(t), t.number))


def _params(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get(record.PARAMS)
    return float(value) if isinstance(value, (int, float)) else math.inf


def replay_trial(
    spec: StudySpec, trial: FrozenTrial, data: TensorData
) -> tuple[Layout, OptimizerSettings]:
    """Rebuild ``trial``'s layout and optimizer settings from its stored parameters, through
    the study's own search space, and check them against what the trial stored.

    Raises:
        ExportError: the parameters do not fit the space, or the replay differs from the
            trial's stored ``layout``/``optimizer_settings``.
    """
    where = f"trial {trial.number}"
    fixed = optuna.trial.FixedTrial(dict(trial.params), number=trial.number)
    try:
        layout, settings = suggest(fixed, spec.objective.space, data.input_shape, data.num_classes)
    except ValueError as exc:
        raise ExportError(
            f"{where}: its stored parameters do not fit the study's search space: {exc}"
        ) from None
    unused = sorted(set(trial.params) - set(fixed.params))
    if unused:
        raise ExportError(
            f"{where}: the study's search space does not use its parameter(s) "
            f"{', '.join(unused)}; the stored study file does not match the trial"
        )
    changed = sorted(n for n, d in fixed.distributions.items() if trial.distributions.get(n) != d)
    if changed:
        raise ExportError(
            f"{where}: the study's search space gives other ranges for {', '.join(changed)} "
            f"than the trial was sampled from"
        )
    _cross_check(where, "layout", trial.user_attrs.get(record.LAYOUT), layout, Layout.from_dict)
    _cross_check(
        where,
        "optimizer_settings",
        trial.user_attrs.get(record.OPTIMIZER_SETTINGS),
        settings,
        OptimizerSettings.from_dict,
    )
    return layout, settings


def _cross_check(where: str, attr: str, stored: Any, replayed: Any, parse: Any) -> None:
    if stored is None:  # a trial from before these attributes were stored
        return
    try:
        ok = parse(stored) == replayed
    except (TypeError, ValueError, KeyError):
        ok = False
    if not ok:
        raise ExportError(
            f"{where}: replaying its parameters gives {attr} {replayed.to_dict()}, but the "
            f"trial stored {stored}"
        )
