"""Crossover in RegularizedEvolutionSampler: children take each param from one parent, genes
of both parents appear, both parents are recorded, and the default is mutation only."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from studies import StudySpecError, parse_spec
from studies.samplers._evolution import (
    MUTATION_ATTR,
    PARENT_ATTR,
    PARENTS_ATTR,
    RegularizedEvolutionSampler,
    uniform_crossover,
)

NAMES = [f"g{i}" for i in range(8)]


def _genes(trial: optuna.Trial) -> float:
    """A fitness that is a fixed random number per genome, so the population stays diverse
    and most pairs of parents differ."""
    genome = [trial.suggest_categorical(n, [0, 1, 2, 3]) for n in NAMES]
    return float(np.random.default_rng(genome).random())


def test_uniform_crossover_takes_each_gene_from_a_parent() -> None:
    a = {n: 0 for n in NAMES} | {"only_a": 1}
    b = {n: 1 for n in NAMES} | {"only_b": 2}
    child = uniform_crossover(a, b, np.random.default_rng(0))
    assert set(child) == set(a) | set(b)
    assert child["only_a"] == 1 and child["only_b"] == 2
    values = [child[n] for n in NAMES]
    assert 0 in values and 1 in values  # eight fair coins: both parents contribute


def test_children_carry_genes_of_both_parents() -> None:
    sampler = RegularizedEvolutionSampler(
        population_size=6, sample_size=3, crossover_prob=1.0, seed=1
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(_genes, n_trials=30)
    by_number = {t.number: t for t in study.trials}
    children = [t for t in study.trials if PARENTS_ATTR in t.system_attrs]
    assert len(children) == 30 - 6  # every trial after the random start is a crossover
    mixed = 0
    for child in children:
        first, second = child.system_attrs[PARENTS_ATTR]
        assert first == child.system_attrs[PARENT_ATTR] and first != second
        a, b = by_number[first].params, by_number[second].params
        mutated = child.system_attrs[MUTATION_ATTR]
        for name, value in child.params.items():
            if name == mutated:
                continue
            assert value in (a[name], b[name]), (child.number, name)
        from_a = any(child.params[n] == a[n] != b[n] for n in NAMES if n != mutated)
        from_b = any(child.params[n] == b[n] != a[n] for n in NAMES if n != mutated)
        mixed += from_a and from_b
    assert mixed >= len(children) // 3  # many children really mix two different parents


def test_default_is_mutation_only_and_unchanged() -> None:
    def run(**kwargs: float) -> list[dict[str, int]]:
        study = optuna.create_study(
            sampler=RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=3, **kwargs)
        )
        study.optimize(_genes, n_trials=12)
        assert all(PARENTS_ATTR not in t.system_attrs for t in study.trials)
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
        return [t.params for t in study.trials]

    assert run() == run(crossover_prob=0.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_bad_crossover_prob_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="crossover_prob"):
        RegularizedEvolutionSampler(crossover_prob=bad)  # type: ignore[arg-type]
    text = (
        f'name = "s"\ndataset = "digits"\n[sampler]\nname = "evolution"\ncrossover_prob = {bad!r}\n'
    )
    text = text.replace("True", "true")
    with pytest.raises(StudySpecError, match="sampler"):
        parse_spec(text, "s.toml")


def test_a_study_file_sets_crossover_prob() -> None:
    spec = parse_spec(
        'name = "s"\ndataset = "digits"\nsampler = {name = "evolution", crossover_prob = 0.5}\n'
    )
    assert spec.sampler.options == {"crossover_prob": 0.5}
