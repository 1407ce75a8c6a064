"""Regularized (aging) evolution as an Optuna sampler: :class:`RegularizedEvolutionSampler`.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019 (arXiv:1802.01548). The population is the ``population_size`` most recent
finished trials; each new trial copies the winner of a tournament among ``sample_size``
random members and changes one of its choices. Old trials leave the population by age
(trial number), not by fitness, which is the "regularization".

With ``crossover_prob`` a child first mixes two tournament winners gene by gene (uniform
crossover, Syswerda 1989; the pairing of crossover with mutation that genetic NAS such as
Xie and Yuille's "Genetic CNN", ICCV 2017, uses), then is mutated as usual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from storage.optuna_compat import study_storage, trial_id
from studies.pareto import crowding_distances, minimized, pareto_ranks, violation
from studies.samplers._base import (
    IndependentSampler,
    base_seed,
    contains,
    finished_trials,
    from_unit,
    grid_value,
    require_int,
    require_number,
    sample_uniform,
    to_unit,
    trial_rng,
)

#: System attributes written on each child trial, for lineage in reports.
PARENT_ATTR = "RegularizedEvolutionSampler:parent"
MUTATION_ATTR = "RegularizedEvolutionSampler:mutation"
#: Both parents of a crossover child, ``[first, second]`` (absent on a mutation-only child).
PARENTS_ATTR = "RegularizedEvolutionSampler:parents"


@dataclass(frozen=True)
class _Plan:
    """What a child trial copies (its parent's params, or a crossover of two parents'),
    and which one name it mutates."""

    parent: int
    params: dict[str, Any]
    mutate: str | None
    second_parent: int | None = None


class RegularizedEvolutionSampler(IndependentSampler[_Plan]):
    """Aging evolution (Real et al., 2019) over a define-by-run search space.

    Until ``population_size`` trials have finished, trials are sampled at random. Then each
    trial:

    1. takes the population: the ``population_size`` finished (COMPLETE or PRUNED) trials
       with the highest trial numbers; FAILED trials are ignored as if deleted;
    2. draws ``sample_size`` members at random and picks the best as the parent. Best means,
       in this order: feasible before infeasible (Optuna constraints; infeasible trials
       compare by total violation), COMPLETE before PRUNED (pruned trials compare by the
       last step they reached, then the value there), then the objective value, or for
       several objectives the Pareto rank within the population's complete feasible
       members, then the larger crowding distance; remaining ties go to the first drawn;
    3. copies the parent's params and mutates one of them, drawn uniformly among those
       with more than one possible value: a categorical takes another of its choices; a
       numeric range takes a Gaussian step of ``mutation_scale`` times its width, measured
       on a log scale for log ranges, reflected at the ends and rounded to the step (an
       integer that rounds back to the parent's value moves one step instead).

    Params the parent lacks (a layer the mutation added) or whose stored value the new
    distribution no longer holds are sampled at random. The parent's number and the
    mutated name are stored on the trial as system attributes
    (``RegularizedEvolutionSampler:parent`` and ``:mutation``).

    With probability ``crossover_prob``, step 3 starts from a crossover instead: a second
    tournament picks another parent, and each param is copied from one of the two, drawn
    with equal odds (a param only one parent has comes from that one). The child is then
    mutated as above, and both parents are stored as ``RegularizedEvolutionSampler:parents``.

    The population is rebuilt from the storage for every trial, so any number of workers
    can share a study. All randomness of trial ``n`` derives from ``(seed, n)``, so a run
    is repeatable and a restarted worker samples as before.

    Args:
        population_size: Trials in the population (Real et al.'s P), at least 2.
        sample_size: Tournament size (S), from 1 to ``population_size``.
        mutation_scale: Standard deviation of a numeric mutation, as a fraction of the
            range's width (on a log scale for log ranges), in ``(0, 1]``.
        crossover_prob: Probability in ``[0, 1]`` that a child is a crossover of two
            parents before its mutation; 0 (the default) is Real et al.'s mutation only.
        seed: Seed of the random choices.

    Example:
        >>> import optuna
        >>> sampler = RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=30)
        >>> study.best_value < 0.01
        True
    """

    def __init__(
        self,
        population_size: int = 20,
        sample_size: int = 5,
        mutation_scale: float = 0.25,
        crossover_prob: float = 0.0,
        *,
        seed: int | None = None,
    ) -> None:
        require_int("population_size", population_size)
        require_int("sample_size", sample_size)
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size must be between 1 and population_size ({population_size}), "
                f"got {sample_size}"
            )
        require_number("mutation_scale", mutation_scale)
        if not 0 < mutation_scale <= 1:
            raise ValueError(f"mutation_scale must be in (0, 1], got {mutation_scale}")
        self._population_size = population_size
        self._sample_size = sample_size
        self._mutation_scale = float(mutation_scale)
        require_number("crossover_prob", crossover_prob)
        if not 0 <= crossover_prob <= 1:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self._crossover_prob = float(crossover_prob)
        super().__init__()
        self._seed = base_seed(seed)

    def _new_trial_state(self, study: Study, trial: FrozenTrial) -> _Plan | None:
        return self._make_plan(study, trial)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        plan = self._trial_state(study, trial)
        if plan is not None:
            study_storage(study).set_trial_system_attr(trial_id(trial), PARENT_ATTR, plan.parent)
            study_storage(study).set_trial_system_attr(trial_id(trial), MUTATION_ATTR, plan.mutate)
            if plan.second_parent is not None:
                study_storage(study).set_trial_system_attr(
                    trial_id(trial), PARENTS_ATTR, [plan.parent, plan.second_parent]
                )

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        rng = trial_rng(self._seed, trial.number, param_name)
        plan = self._trial_state(study, trial)
        if plan is None:
            return sample_uniform(param_distribution, rng)
        parent_value = plan.params.get(param_name)
        if param_name not in plan.params or not contains(param_distribution, parent_value):
            return sample_uniform(param_distribution, rng)
        if param_name == plan.mutate:
            return mutate(param_distribution, parent_value, self._mutation_scale, rng)
        if isinstance(param_distribution, CategoricalDistribution):
            # The distribution's own object for an equal choice.
            return param_distribution.choices[
                int(param_distribution.to_internal_repr(parent_value))
            ]
        return parent_value

    def _make_plan(self, study: Study, trial: FrozenTrial) -> _Plan | None:
        finished = finished_trials(study)
        if len(finished) < self._population_size:
            return None
        population = finished[-self._population_size :]
        rng = trial_rng(self._seed, trial.number, "")
        keys = tournament_keys(population, study.directions)
        drawn = rng.choice(len(population), size=self._sample_size, replace=False)
        winner = population[min(drawn.tolist(), key=lambda i: keys[i])]
        params = dict(winner.params)
        distributions = dict(winner.distributions)
        second: int | None = None
        if self._crossover_prob > 0 and rng.random() < self._crossover_prob:
            # The second tournament excludes the first winner, so the two parents differ.
            others = [i for i in range(len(population)) if population[i] is not winner]
            size = min(self._sample_size, len(others))
            drawn2 = rng.choice(others, size=size, replace=False)
            mate = population[min(drawn2.tolist(), key=lambda i: keys[i])]
            second = mate.number
            params = uniform_crossover(winner.params, mate.params, rng)
            distributions = {**mate.distributions, **winner.distributions}
        mutable = sorted(n for n, d in distributions.items() if not d.single())
        mutate_name = mutable[int(rng.integers(len(mutable)))] if mutable else None
        return _Plan(winner.number, params, mutate_name, second)


def uniform_crossover(
    first: dict[str, Any], second: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
    """Each param from ``first`` or ``second`` with equal odds; a param only one of them has
    comes from that one. Names are visited in sorted order, so ``rng`` alone fixes the child.
    """
    child = {}
    for name in sorted(set(first) | set(second)):
        if name not in second or (name in first and rng.random() < 0.5):
            child[name] = first[name]
        else:
            child[name] = second[name]
    return child


def tournament_keys(
    population: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> list[tuple[float, ...]]:
    """One sort key per trial; the smallest wins a tournament.

    Keys order feasible COMPLETE trials by value (one objective) or by Pareto rank and then
    larger crowding distance (several), then feasible PRUNED trials by the last step they
    reached and their value there, then infeasible trials by total constraint violation.
    """
    keys: list[tuple[float, ...]] = [()] * len(population)
    complete: list[int] = []
    for i, t in enumerate(population):
        excess = violation(t)
        if excess > 0:
            keys[i] = (2.0, excess, 0.0)
        elif t.state == TrialState.COMPLETE and t.values is not None:
            complete.append(i)
        else:
            keys[i] = (1.0, *_pruned_key(t, directions))
    if complete:
        points = minimized([population[i].values for i in complete], directions)
        if len(directions) == 1:
            for i, p in zip(complete, points[:, 0].tolist(), strict=True):
                keys[i] = (0.0, p, 0.0)
        else:
            minimize = ["minimize"] * len(directions)
            ranks = pareto_ranks(points, minimize)
            crowd = crowding_distances(points, ranks, minimize)
            for i, r, c in zip(complete, ranks, crowd, strict=True):
                keys[i] = (0.0, float(r), -c)
    return keys


def _pruned_key(
    trial: FrozenTrial, directions: Sequence[optuna.study.StudyDirection]
) -> tuple[float, float]:
    if len(directions) > 1 or not trial.intermediate_values:
        return 0.0, 0.0
    step = max(trial.intermediate_values)
    value = float(minimized([trial.intermediate_values[step]], directions)[0])
    return -float(step), value


def mutate(dist: BaseDistribution, value: Any, scale: float, rng: np.random.Generator) -> Any:
    """A valid value of ``dist`` near ``value`` and different from it where possible.

    A categorical draws another choice uniformly; a numeric range steps by a Gaussian of
    standard deviation ``scale`` (a fraction of its width, log-scaled for log ranges).
    """
    if isinstance(dist, CategoricalDistribution):
        index = int(dist.to_internal_repr(value))
        others = [i for i in range(len(dist.choices)) if i != index]
        return dist.choices[others[int(rng.integers(len(others)))]] if others else value
    if not isinstance(dist, IntDistribution | FloatDistribution):
        raise TypeError(f"unsupported distribution {dist!r}")
    u = to_unit(dist, value)
    step = float(rng.normal(0.0, scale))
    child = from_unit(dist, 1.0 - abs(1.0 - (u + step) % 2.0))  # reflected into [0, 1]
    if child == value and not dist.single():
        # A short step rounded back to the parent: move one grid point that way instead.
        direction = 1 if step >= 0 else -1
        if isinstance(dist, IntDistribution) and dist.log:
            child = value + direction
            if not dist.low <= child <= dist.high:
                child = value - direction
        elif dist.step is not None:
            index = round((value - dist.low) / dist.step)
            child = grid_value(dist, index + direction)
            if child == value:
                child = grid_value(dist, index - direction)
    if isinstance(dist, FloatDistribution) and not math.isfinite(float(child)):
        return value
    return child
