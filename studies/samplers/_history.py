"""A window on a study's history, for samplers that reread all of it before every trial:
:class:`HistoryWindowSampler`, the ``history`` option of a study file's ``[sampler]``.

Optuna's TPE and GP samplers model every finished trial before each new one, so a trial's
sampling cost grows with the study: TPE's with the number of trials (per parameter group,
its Parzen estimators hold a kernel per trial, evaluated partly in a Python loop), GP's
with its cube (the kernel matrix). ``benchmarks/study_size.py`` measures it. With
``history = N`` the sampler sees the study as if it held only its N most recent finished
trials, so its cost stops growing once the study is past N trials.

The window is a view, not a copy: for each trial the sampler gets an :class:`optuna.Study`
on a storage that passes every call through to the real one, except that its trial list,
read once for the trial, leaves out the finished trials older than the window. Writes
(TPE's and GP's system attributes on the running trial) go to the real storage unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from storage.optuna_compat import study_id as id_of_study
from storage.optuna_compat import study_storage
from studies.samplers._base import FINISHED, TrialCache, require_int


def window(trials: Sequence[FrozenTrial], history: int) -> list[FrozenTrial]:
    """``trials`` (sorted by number) less the finished ones older than the ``history``
    most recent COMPLETE or PRUNED trials; every unfinished trial stays.

    With at most ``history`` COMPLETE or PRUNED trials, that is all of ``trials``.
    """
    seen = 0
    cut = 0  # index of the oldest trial in the window
    for i in range(len(trials) - 1, -1, -1):
        if trials[i].state in FINISHED:
            seen += 1
            if seen == history:
                cut = i
                break
    else:
        return list(trials)
    older = [t for t in trials[:cut] if not t.state.is_finished()]
    return older + list(trials[cut:])


class _WindowStorage(BaseStorage):
    """``storage`` as a sampler should see it during one trial: the study's trial lists
    hold only the window.

    The window is read once, at the sampler's first read in the trial, and kept for the
    trial, as Optuna's own per-trial cache of a study's trials is: a trial that starts or
    ends elsewhere while this one samples is seen by the next. (TPE rereads the study for
    each parameter group, and each reread of a 5,000-trial study takes milliseconds.) The
    study's id, name and directions are answered without a round trip to the database.
    """

    def __init__(self, storage: BaseStorage, study: optuna.Study, history: int) -> None:
        self._storage = storage
        self._study_id = id_of_study(study)
        self._study_name = study.study_name
        self._directions = list(study.directions)
        self._history = history
        self._trials: list[FrozenTrial] | None = None

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if study_id != self._study_id:
            return self._storage.get_all_trials(study_id, deepcopy, states)
        if self._trials is None:
            everything = self._storage.get_all_trials(study_id, deepcopy=False)
            self._trials = window(everything, self._history)
        trials = self._trials
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    # Everything else passes through.

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name == self._study_name:
            return self._study_id
        return self._storage.get_study_id_from_name(study_name)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        if study_id == self._study_id:
            return list(self._directions)
        return self._storage.get_study_directions(study_id)

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self._storage.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._storage.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_system_attr(study_id, key, value)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy, which it keeps private
        return self._storage.get_all_studies()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._storage.create_new_trial(study_id, template_trial)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self._storage.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._storage.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._storage.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._storage.get_trial(trial_id)


class HistoryWindowSampler(BaseSampler):
    """``sampler``, shown only the ``history`` most recent finished trials of the study.

    Before each trial the wrapped sampler gets a view of the study whose trial lists hold
    the ``history`` COMPLETE or PRUNED trials with the highest numbers, every trial not
    finished yet (RUNNING, WAITING: TPE's constant liar reads them) and the FAIL trials
    among them; older finished trials are left out, as if deleted. The view is read from
    the stored trials once per trial (at the sampler's first read), so any number of
    workers share it. A study with at most ``history`` finished trials is seen whole, and
    the wrapped sampler samples as it would alone, except that TPE's constant liar sees
    the trials running elsewhere as they were at that first read, not at each of its
    reads.

    What it costs: the sampler forgets what it learned from older trials. On the tabular
    benchmark (``benchmarks/study_size.py``: 300-trial runs, 10 seeds), windows of 60 and
    30 trials, the share of a run that 1,000 and 500 are of 5,000 trials, gave up no
    hypervolume and no single-objective regret against the whole history. A window of a
    few dozen trials in a continuous space leaves TPE's models thin and it keeps exploring
    rather than closing in: keep the window in the hundreds.

    Args:
        sampler: The sampler to wrap (TPE or GP: those whose cost grows with the study).
        history: Finished trials the sampler sees, at least 1.

    Example:
        >>> import optuna
        >>> sampler = HistoryWindowSampler(optuna.samplers.TPESampler(seed=0), history=50)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=80)
        >>> study.best_value < 0.01
        True
    """

    def __init__(self, sampler: BaseSampler, history: int) -> None:
        require_int("history", history)
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.sampler = sampler
        self.history = history
        self._views: TrialCache[optuna.Study] = TrialCache()

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        view = self._views.get(study, trial)
        if view is None:  # before_trial ran in another instance
            view = self._new_view(study)
            self._views.put(study, trial, view)
        return view

    def _new_view(self, study: optuna.Study) -> optuna.Study:
        # A new Study per trial: Optuna caches a study's trial list per thread until its
        # next ask, and nothing asks on the view.
        storage = _WindowStorage(study_storage(study), study, self.history)
        return optuna.Study(study.study_name, storage, sampler=self.sampler)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        view = self._new_view(study)
        self._views.put(study, trial, view)
        self.sampler.before_trial(view, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        view = self._view(study, trial)
        return self.sampler.sample_independent(view, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        view = self._view(study, trial)
        self._views.pop(study, trial)
        self.sampler.after_trial(view, trial, state, values)
