"""RegularizedEvolutionSampler: determinism, valid samples, learning, Pareto tournaments,
shared storage and study files. The helpers here are reused by test_reinforce.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from storage import open_storage
from studies import StudySpecError, build_sampler, parse_spec
from studies.cli import main
from studies.samplers._evolution import (
    MUTATION_ATTR,
    PARENT_ATTR,
    RegularizedEvolutionSampler,
    mutate,
    tournament_keys,
)

MO: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]


def check_valid(trial: optuna.Trial, name: str, value: Any) -> Any:
    """Fail unless ``value`` (what the sampler returned) is a valid value of its distribution."""
    dist = trial.distributions[name]
    if isinstance(dist, CategoricalDistribution):
        assert any(value == c and type(value) is type(c) for c in dist.choices), (name, value)
        return value
    assert isinstance(dist, (IntDistribution, FloatDistribution)), (name, dist)
    assert type(value) is (int if isinstance(dist, IntDistribution) else float), (name, value)
    assert dist.low <= value <= dist.high, (name, value)
    if dist.step is not None:
        k = (value - dist.low) / dist.step
        assert abs(k - round(k)) < 1e-8, (name, value)
    return value


def mixed_objective(trial: optuna.Trial, n_objectives: int = 1) -> float | tuple[float, float]:
    """A define-by-run space like nas_objectives.space: depth, per-layer widths, an
    optimizer with its own learning rate, stepped and linear floats, checked as sampled."""

    def s(name: str, value: Any) -> Any:
        return check_valid(trial, name, value)

    n = s("n_layers", trial.suggest_int("n_layers", 1, 3))
    widths = [
        s(f"units_l{i}", trial.suggest_int(f"units_l{i}", 4, 256, log=True)) for i in range(n)
    ]
    s("activation", trial.suggest_categorical("activation", ["relu", "gelu", "tanh"]))
    s("residual", trial.suggest_categorical("residual", [False, True]))
    opt = s("optimizer", trial.suggest_categorical("optimizer", ["adamw", "sgd"]))
    lr = s(f"{opt}_lr", trial.suggest_float(f"{opt}_lr", 1e-5, 1e-1, log=True))
    if opt == "sgd":
        s("sgd_momentum", trial.suggest_float("sgd_momentum", 0.0, 0.9, step=0.1))
    dropout = s("dropout", trial.suggest_float("dropout", 0.0, 0.5))
    s("batch_size", trial.suggest_int("batch_size", 32, 256, step=32))
    s("kernel", trial.suggest_categorical("kernel", [3, 5, 7]))
    loss = (
        abs(math.log10(lr) + 3) + abs(n - 2) + dropout + sum(abs(math.log2(w) - 6) for w in widths)
    )
    if n_objectives == 1:
        return loss
    return -loss, float(sum(widths))


def planted_objective(trial: optuna.Trial) -> float:
    """Five decisions of four options, one right each: reward = right choices + noise."""
    noise = np.random.default_rng(1000 + trial.number).normal(0.0, 0.5)
    right = sum(trial.suggest_categorical(f"d{i}", [0, 1, 2, 3]) == i % 4 for i in range(5))
    return right + float(noise)


def param_sequence(
    make: Callable[[int], optuna.samplers.BaseSampler], seed: int, n_objectives: int = 1
) -> list[dict[str, Any]]:
    directions: list[Literal["maximize", "minimize"]] = ["minimize"] if n_objectives == 1 else MO
    study = optuna.create_study(directions=directions, sampler=make(seed))
    study.optimize(lambda t: mixed_objective(t, n_objectives), n_trials=30)
    return [t.params for t in study.trials]


def late_mean(make: Callable[[int], optuna.samplers.BaseSampler]) -> float:
    """Mean objective of trials 50-99 of the planted problem, over five seeds."""
    means = []
    for seed in range(5):
        study = optuna.create_study(direction="maximize", sampler=make(seed))
        study.optimize(planted_objective, n_trials=100)
        means.append(np.mean([t.value for t in study.trials[50:]]))
    return float(np.mean(means))


def alternate_workers(
    url: str, name: str, make: Callable[[], optuna.samplers.BaseSampler], n_trials: int
) -> list[dict[str, Any]]:
    """Two workers, each its own study object and sampler, take turns on one stored study."""
    storage = open_storage(url, heartbeat=None)
    optuna.create_study(study_name=name, storage=storage, direction="minimize")
    workers = [optuna.load_study(study_name=name, storage=storage, sampler=make()) for _ in "ab"]
    for i in range(n_trials):
        workers[i % 2].optimize(mixed_objective, n_trials=1)
    return [t.params for t in workers[0].trials]


def _evolution(seed: int) -> RegularizedEvolutionSampler:
    return RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=seed)


def test_same_seed_same_params_other_seed_differs() -> None:
    first = param_sequence(_evolution, 1)
    assert param_sequence(_evolution, 1) == first
    assert param_sequence(_evolution, 2) != first


@pytest.mark.parametrize("n_objectives", [1, 2])
def test_only_valid_samples_on_a_define_by_run_space(n_objectives: int) -> None:
    # check_valid runs inside the objective; a failed check would fail the trial.
    params = param_sequence(_evolution, 3, n_objectives)
    assert len(params) == 30
    assert {len(p) for p in params} != {min(len(p) for p in params)}  # depths vary


def test_children_copy_the_parent_but_one_choice() -> None:
    study = optuna.create_study(direction="maximize", sampler=_evolution(0))
    study.optimize(planted_objective, n_trials=40)
    trials = study.trials
    children = [t for t in trials if PARENT_ATTR in t.system_attrs]
    assert [t.number for t in children] == list(range(8, 40))
    for child in children:
        parent = trials[child.system_attrs[PARENT_ATTR]]
        assert parent.number < child.number
        changed = [k for k in child.params if child.params[k] != parent.params[k]]
        assert changed == [child.system_attrs[MUTATION_ATTR]]


def test_beats_random_search_on_a_planted_problem() -> None:
    random = late_mean(lambda s: optuna.samplers.RandomSampler(seed=s))
    evolved = late_mean(lambda s: RegularizedEvolutionSampler(seed=s))
    # Over 30 seeds offline: random 1.4-1.6, evolution 3.1-3.3 per group of five seeds.
    assert evolved > random + 1.0, (evolved, random)


def _trial(
    values: list[float] | None,
    number: int,
    state: TrialState = TrialState.COMPLETE,
    violation: float = 0.0,
    steps: dict[int, float] | None = None,
) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state,
        values=values,
        params={"x": number},
        distributions={"x": IntDistribution(0, 100)},
        intermediate_values=steps,
        constraints={"c": violation},
    )
    trial.number = number
    return trial


def test_multi_objective_tournament_follows_pareto_rank_then_crowding() -> None:
    directions = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    population = [
        _trial([0.9, 500.0], 0),  # front 0, an end: crowding inf
        _trial([0.8, 300.0], 1),  # front 0, inner
        _trial([0.5, 100.0], 2),  # front 0, an end
        _trial([0.7, 400.0], 3),  # front 1 (1 dominates it)
        _trial([0.6, 600.0], 4),  # front 2
        _trial([0.99, 1.0], 5, violation=2.0),  # dominates all, but infeasible
        _trial([0.95, 2.0], 6, violation=1.0),  # infeasible, smaller violation
        _trial(None, 7, TrialState.PRUNED),
    ]
    keys = tournament_keys(population, directions)
    order = sorted(range(len(population)), key=lambda i: keys[i])
    assert set(order[:2]) == {0, 2} and order[2:] == [1, 3, 4, 7, 6, 5]


def test_single_objective_tournament_ranks_pruned_by_progress_and_infeasible_last() -> None:
    directions = [optuna.study.StudyDirection.MINIMIZE]
    population = [
        _trial([3.0], 0),
        _trial([1.0], 1),
        _trial(None, 2, TrialState.PRUNED, steps={1: 0.5, 2: 0.4}),
        _trial(None, 3, TrialState.PRUNED, steps={1: 0.1}),
        _trial([0.1], 4, violation=0.5),
        _trial(None, 5, TrialState.PRUNED, steps={1: 0.3, 2: 0.2}),
    ]
    keys = tournament_keys(population, directions)
    assert sorted(range(6), key=lambda i: keys[i]) == [1, 0, 5, 2, 3, 4]


def test_tournament_picks_the_pareto_front_in_a_study() -> None:
    dist = {"a": CategoricalDistribution(["p", "q", "r"]), "b": IntDistribution(1, 9)}
    study = optuna.create_study(
        directions=MO,
        sampler=RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0),
    )
    points = [([0.5, 10.0], "p"), ([0.9, 5.0], "q"), ([0.6, 50.0], "r"), ([0.95, 1.0], "r")]
    for i, (values, a) in enumerate(points):
        # The last point dominates every other but is infeasible, so it must lose.
        study.add_trial(
            optuna.trial.create_trial(
                values=values,
                params={"a": a, "b": i + 1},
                distributions=dist,
                constraints={"c": 1.0 if i == 3 else 0.0},
            )
        )
    for _ in range(5):
        study.tell(study.ask(dist), state=TrialState.FAIL)  # keep the population as it is
        assert study.trials[-1].system_attrs[PARENT_ATTR] == 1


@pytest.mark.parametrize(
    "dist, value",
    [
        (IntDistribution(1, 3), 3),
        (IntDistribution(4, 256, log=True), 4),
        (IntDistribution(4, 256, log=True), 5),
        (IntDistribution(0, 10, step=5), 5),
        (FloatDistribution(1e-5, 1e-1, log=True), 1e-3),
        (FloatDistribution(0.0, 0.9, step=0.1), 0.9),
        (FloatDistribution(0.0, 0.5), 0.0),
        (CategoricalDistribution([None, 1, "a"]), 1),
    ],
)
def test_mutation_changes_the_value_and_stays_valid(dist: BaseDistribution, value: Any) -> None:
    for seed in range(50):
        child = mutate(dist, value, 0.25, np.random.default_rng(seed))
        assert child != value
        assert dist._contains(dist.to_internal_repr(child))


def test_log_mutation_is_local_on_a_log_scale() -> None:
    dist = FloatDistribution(1e-6, 1.0, log=True)
    rng = np.random.default_rng(0)
    steps = [math.log10(mutate(dist, 1e-3, 0.1, rng)) + 3 for _ in range(500)]
    # sd 0.1 of six decades: 0.6 decades.
    assert 0.45 < float(np.std(steps)) < 0.75 and abs(float(np.mean(steps))) < 0.1


def test_workers_sharing_a_storage_sample_as_one_process(
    storage_url: str, unique_name: str
) -> None:
    def make() -> RegularizedEvolutionSampler:
        return RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=7)

    shared = alternate_workers(storage_url, unique_name, make, 10)
    alone = optuna.create_study(direction="minimize", sampler=make())
    alone.optimize(mixed_objective, n_trials=10)
    assert shared == [t.params for t in alone.trials]


def test_bad_options_are_rejected() -> None:
    for options in (
        {"population_size": 1},
        {"population_size": 4, "sample_size": 5},
        {"mutation_scale": 0.0},
        {"population_size": 2.5},
    ):
        with pytest.raises(ValueError):
            RegularizedEvolutionSampler(**options)


STUDY = """
name = "evo"
dataset = "digits"
objectives = ["accuracy", "params"]
[model]
depth = [1, 2]
width = [8, 32]
[sampler]
name = "evolution"
"""


def test_study_file_selects_evolution_and_checks_its_options() -> None:
    spec = parse_spec(STUDY + "population_size = 8\n")
    sampler = build_sampler(spec)
    assert isinstance(sampler, RegularizedEvolutionSampler)
    assert sampler._population_size == 8
    with pytest.raises(StudySpecError, match=r"sampler\.population: unknown option .*"):
        parse_spec(STUDY + "population = 8\n")
    with pytest.raises(StudySpecError, match="population_size must be at least 2"):
        parse_spec(STUDY + "population_size = 1\n")


def test_nas_study_run_with_the_evolution_sampler(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evo.toml"
    path.write_text(STUDY + "population_size = 3\nsample_size = 2\n")
    url = f"sqlite:///{tmp_path}/evo.db"
    assert main(["run", str(path), "--n-trials", "6", "--epochs", "1", "--storage", url]) == 0
    study = optuna.load_study(study_name="evo", storage=open_storage(url, heartbeat=None))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert [PARENT_ATTR in t.system_attrs for t in study.trials] == [False] * 3 + [True] * 3
