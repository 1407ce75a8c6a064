"""HistoryWindowSampler and the ``history`` sampler option: the window, a sampler that sees
the whole of a short study unchanged, only the window of a long one, its writes, stored
studies with several workers, and study files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from storage import open_storage
from studies import StudySpecError, build_sampler, parse_spec
from studies.samplers import HistoryWindowSampler
from studies.samplers._history import window
from tests.studies.samplers.test_evolution import mixed_objective

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _trials(states: str) -> list[FrozenTrial]:
    """One trial per letter: C complete, P pruned, F fail, R running, W waiting."""
    kinds = {
        "C": TrialState.COMPLETE,
        "P": TrialState.PRUNED,
        "F": TrialState.FAIL,
        "R": TrialState.RUNNING,
        "W": TrialState.WAITING,
    }
    out = []
    for number, letter in enumerate(states):
        state = kinds[letter]
        trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.0)
        trial.number, trial.state = number, state
        trial.values = [0.0] if state == TrialState.COMPLETE else None
        out.append(trial)
    return out


@pytest.mark.parametrize(
    ("states", "history", "shown"),
    [
        ("CCC", 5, [0, 1, 2]),  # no more finished trials than the window: all of them
        ("CFCC", 3, [0, 1, 2, 3]),
        ("CCCCC", 2, [3, 4]),
        ("CPFCC", 3, [1, 2, 3, 4]),  # a FAIL inside the window stays, PRUNED counts
        ("RCWCCFCR", 2, [0, 2, 4, 5, 6, 7]),  # unfinished trials stay, however old
        ("CCCFF", 1, [2, 3, 4]),
    ],
)
def test_window_keeps_the_most_recent_finished_trials_and_all_unfinished(
    states: str, history: int, shown: list[int]
) -> None:
    assert [t.number for t in window(_trials(states), history)] == shown


class _Spy(optuna.samplers.RandomSampler):
    """A random sampler that records the trials it is shown, per trial."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: dict[int, list[int]] = {}
        self.finished: dict[int, list[int]] = {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self.seen[trial.number] = [t.number for t in study.get_trials(deepcopy=False)]
        self.finished[trial.number] = [
            t.number for t in study.get_trials(deepcopy=False, states=FINISHED)
        ]
        return super().sample_independent(study, trial, param_name, param_distribution)


def _fails_every_fourth(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    if trial.number % 4 == 3:
        raise RuntimeError("a failed trial")
    return x


def test_the_sampler_sees_the_window_and_its_own_trial() -> None:
    spy = _Spy()
    study = optuna.create_study(sampler=HistoryWindowSampler(spy, history=3))
    study.optimize(_fails_every_fourth, n_trials=12, catch=(RuntimeError,))
    # Trial 9 sees the three finished trials before it (8, 6, 5; 7 failed) and itself.
    assert spy.finished[9] == [5, 6, 8]
    assert spy.seen[9] == [5, 6, 7, 8, 9]
    # A short study is seen whole.
    assert spy.seen[2] == [0, 1, 2]
    assert spy.finished[3] == [0, 1, 2]
    # The study itself keeps everything.
    assert len(study.trials) == 12


def _params(sampler: optuna.samplers.BaseSampler, n_trials: int) -> list[dict[str, Any]]:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(lambda t: mixed_objective(t, 2), n_trials=n_trials)
    return [t.params for t in study.trials]


def _tpe(seed: int = 0) -> optuna.samplers.TPESampler:
    """The catalog's TPE settings (multivariate, group), with a shorter startup."""
    return optuna.samplers.TPESampler(n_startup_trials=5, multivariate=True, group=True, seed=seed)


def test_a_study_within_the_window_samples_as_the_bare_sampler() -> None:
    assert _params(HistoryWindowSampler(_tpe(), history=30), 25) == _params(_tpe(), 25)


def test_windowed_tpe_runs_long_past_its_window() -> None:
    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", -1, 1) ** 2

    windowed = HistoryWindowSampler(optuna.samplers.TPESampler(n_startup_trials=5, seed=1), 8)
    study = optuna.create_study(sampler=windowed)
    study.optimize(objective, n_trials=40)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 40
    assert study.best_value < 0.01


def test_tpe_writes_through_the_view_to_the_real_trial() -> None:
    # Multivariate TPE stores its relative params on the running trial (constant liar).
    study = optuna.create_study(sampler=HistoryWindowSampler(_tpe(), history=6))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), 12)
    written = [k for k in study.trials[-1].system_attrs if "relative_params" in k]
    assert written


def test_gp_takes_a_window_too() -> None:
    gp = optuna.samplers.GPSampler(n_startup_trials=4, seed=0)
    study = optuna.create_study(sampler=HistoryWindowSampler(gp, history=6))
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=10)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 10


def test_workers_sharing_a_stored_study_see_one_window(tmp_path: Path) -> None:
    # Two workers, each its own study object and sampler, take turns on one stored study:
    # each sees the window of the stored trials, whoever ran them.
    url = f"sqlite:///{tmp_path}/h.db"
    storage = open_storage(url, heartbeat=None)
    optuna.create_study(study_name="shared", storage=storage)
    spies = [_Spy(), _Spy()]
    workers = [
        optuna.load_study(study_name="shared", storage=storage, sampler=HistoryWindowSampler(s, 3))
        for s in spies
    ]
    for i in range(10):
        workers[i % 2].optimize(_fails_every_fourth, n_trials=1, catch=(RuntimeError,))
    assert spies[1].finished[9] == [5, 6, 8]
    assert spies[0].finished[8] == [4, 5, 6]


def test_the_view_reads_the_study_once_per_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    def reads_in_one_trial(sampler: optuna.samplers.BaseSampler) -> int:
        storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=storage, sampler=sampler)
        objective = lambda t: mixed_objective(t)  # noqa: E731
        study.optimize(objective, n_trials=20)
        calls = []
        original = storage.get_all_trials

        def counted(*args: Any, **kwargs: Any) -> list[FrozenTrial]:
            calls.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(storage, "get_all_trials", counted)
        study.optimize(objective, n_trials=1)
        return len(calls)

    # Grouped TPE rereads the study for each parameter group; through the view, once.
    assert reads_in_one_trial(HistoryWindowSampler(_tpe(), 10)) < reads_in_one_trial(_tpe())


def test_a_sampler_loaded_mid_trial_rebuilds_its_view(tmp_path: Path) -> None:
    # A study loaded again mid-trial has a sampler whose before_trial never ran.
    url = f"sqlite:///{tmp_path}/mid.db"
    storage = open_storage(url, heartbeat=None)
    study = optuna.create_study(study_name="mid", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    study.ask()
    other = HistoryWindowSampler(optuna.samplers.TPESampler(n_startup_trials=2, seed=0), 3)
    frozen = study.get_trials(states=(TrialState.RUNNING,))[0]
    value = other.sample_independent(
        study, frozen, "x", optuna.distributions.FloatDistribution(0, 1)
    )
    assert 0 <= value <= 1


@pytest.mark.parametrize("history", [0, -3, 2.5, True, "10"])
def test_bad_history_is_rejected(history: Any) -> None:
    with pytest.raises(ValueError, match="history"):
        HistoryWindowSampler(optuna.samplers.RandomSampler(), history=history)


STUDY = """
name = "window"
dataset = "digits"
objectives = ["accuracy", "params"]
[model]
depth = [1, 2]
width = [8, 32]
[sampler]
"""


def test_study_file_history_wraps_tpe_and_gp() -> None:
    spec = parse_spec(STUDY + 'name = "tpe"\nn_startup_trials = 12\nhistory = 500\n')
    sampler = build_sampler(spec, seed=4)
    assert isinstance(sampler, HistoryWindowSampler)
    assert sampler.history == 500
    assert isinstance(sampler.sampler, optuna.samplers.TPESampler)
    gp = build_sampler(parse_spec(STUDY + 'name = "gp"\nhistory = 300\n'))
    assert isinstance(gp, HistoryWindowSampler)
    assert isinstance(gp.sampler, optuna.samplers.GPSampler)
    bare = build_sampler(parse_spec(STUDY + 'name = "tpe"\n'))
    assert isinstance(bare, optuna.samplers.TPESampler)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "random"\nhistory = 100\n', "only tpe and gp take a history window"),
        ('name = "evolution"\nhistory = 100\n', "only tpe and gp take a history window"),
        ('name = "tpe"\nhistory = 0\n', "expected a whole number of trials, at least 1"),
        ('name = "tpe"\nhistory = true\n', "expected a whole number of trials"),
        ('name = "tpe"\nhistory = 1e3\n', "expected a whole number of trials"),
        (
            'name = "tpe"\nn_startup_trials = 20\nhistory = 12\n',
            r"at least n_startup_trials \(20\)",
        ),
        ('name = "tpe"\nhistory = 5\n', r"at least n_startup_trials \(10\)"),  # TPE's default
        ('name = "tpe"\nhistory = 100\nhistroy = 3\n', r"sampler\.histroy: unknown option"),
    ],
)
def test_study_file_history_is_checked(table: str, message: str) -> None:
    with pytest.raises(StudySpecError, match=message):
        parse_spec(STUDY + table)


def test_window_of_a_sequence_is_a_new_list() -> None:
    trials: Sequence[FrozenTrial] = tuple(_trials("CCC"))
    shown = window(trials, 5)
    assert shown == list(trials) and shown is not trials
