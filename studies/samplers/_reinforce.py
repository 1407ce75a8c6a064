"""A policy-gradient controller as an Optuna sampler: :class:`ReinforceSampler`.

Zoph and Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
(arXiv:1611.01578), in its simplest per-decision form: instead of an RNN controller, one
independent categorical policy (a vector of logits) per search decision, trained with
REINFORCE (Williams, 1992) and a moving-average baseline, as in the paper's update rule.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
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

from storage.optuna_compat import contains_internal
from studies.pareto import minimized, share_not_dominating, violation
from studies.samplers._base import (
    IndependentSampler,
    base_seed,
    finished_trials,
    from_unit,
    grid_value,
    per_storage,
    require_int,
    require_number,
    to_unit,
    trial_rng,
)

# Ranges with more grid points than this are binned like continuous ones.
_MAX_ENUMERATED = 100_000
# Bound on one update's normalised advantage, so one outlier cannot flip a policy.
_MAX_ADVANTAGE = 3.0
# Snapshots of the policy kept for replaying from a trial that finished out of order.
_SNAPSHOTS = 512


class _Actions:
    """A distribution's actions: its choices, or up to ``n_bins`` bins of a numeric range.

    Stepped ranges (ints, floats with a step) are binned by grid point, so every action
    holds at least one valid value and a value maps back to the action it came from; bins
    are of equal width on the range's scale (log for log ranges), and a range with at most
    ``n_bins`` points has one action per point. Continuous ranges have ``n_bins`` bins.
    """

    def __init__(self, dist: BaseDistribution, n_bins: int) -> None:
        self.dist = dist
        self.groups: list[np.ndarray] | None = None
        self.action_of_index: np.ndarray | None = None
        if isinstance(dist, CategoricalDistribution):
            self.n = len(dist.choices)
            return
        if not isinstance(dist, IntDistribution | FloatDistribution):
            raise TypeError(f"unsupported distribution {dist!r}")
        self.n = n_bins
        if dist.step is None and not isinstance(dist, IntDistribution):
            return
        step = 1 if dist.step is None else dist.step
        count = math.floor((dist.high - dist.low) / step + 1e-8) + 1
        if count > _MAX_ENUMERATED:
            return
        index = np.arange(count)
        if count <= n_bins:
            bins = index
        else:
            values = dist.low + index * step
            lo, hi = float(dist.low), float(dist.high)
            if dist.log:
                u = (np.log(values) - math.log(lo)) / (math.log(hi) - math.log(lo))
            else:
                u = (values - lo) / (hi - lo)
            bins = np.clip(np.floor(u * n_bins), 0, n_bins - 1).astype(np.int64)
        used, self.action_of_index = np.unique(bins, return_inverse=True)
        self.groups = [np.flatnonzero(self.action_of_index == a) for a in range(len(used))]
        self.n = len(used)

    def action_of(self, value: Any) -> int | None:
        """The action that yields ``value``, or None if ``value`` is not one of ``dist``'s."""
        dist = self.dist
        try:
            internal = dist.to_internal_repr(value)
            if not contains_internal(dist, internal):
                return None
        except (ValueError, TypeError):
            return None
        if isinstance(dist, CategoricalDistribution):
            return int(internal)
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if self.action_of_index is not None:
            step = 1 if dist.step is None else dist.step
            return int(self.action_of_index[round((internal - dist.low) / step)])
        return min(int(to_unit(dist, internal) * self.n), self.n - 1)

    def sample(self, action: int, rng: np.random.Generator) -> Any:
        """A value of the action: the choice, or uniform inside the bin (on its scale)."""
        dist = self.dist
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[action]
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if self.groups is not None:
            group = self.groups[action]
            return grid_value(dist, int(group[rng.integers(len(group))]))
        return from_unit(dist, (action + float(rng.uniform())) / self.n)


@dataclass
class _Policy:
    """The controller after replaying some trials. Updates replace arrays, never change
    them in place, so a shallow copy is a snapshot."""

    logits: dict[tuple[str, BaseDistribution], np.ndarray] = field(default_factory=dict)
    baseline: float | None = None
    scale: float = 0.0
    worst: float = math.inf  # lowest reward of a feasible COMPLETE trial so far
    n_points: int = 0  # objective vectors (multi-objective) seen so far

    def copy(self) -> _Policy:
        return _Policy(dict(self.logits), self.baseline, self.scale, self.worst, self.n_points)


@dataclass
class _History:
    """One study's replay: trial numbers replayed, in order, and snapshots of the policy."""

    numbers: list[int] = field(default_factory=list)
    snapshots: dict[int, _Policy] = field(default_factory=lambda: {0: _Policy()})
    points: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


class ReinforceSampler(IndependentSampler[_Policy]):
    """REINFORCE with a moving-average baseline (Zoph and Le, 2017), one policy per decision.

    Every parameter name (with its distribution) has a categorical policy ``softmax(logits)``
    over its actions: the choices of a categorical, or ``n_bins`` bins of a numeric range
    (equal width on a log scale for log ranges; a stepped or integer range with at most
    ``n_bins`` values has one action per value). A chosen bin yields a value uniformly
    inside it, on the range's scale, rounded to the step for integers and stepped floats.
    Parameters that only exist for some trials (a layer's width) have their own policy
    and are trained only by the trials that had them (define-by-run).

    The policy is rebuilt by replaying the finished trials in trial-number order, so every
    worker sharing a study samples from the same policy (a cache makes the replay
    incremental). For each replayed trial with reward ``R`` and every decision ``a`` it made,
    ``logits += learning_rate * A * (onehot(a) - softmax(logits))`` where
    ``A = (R - b) / s``, ``b`` is the moving average of past rewards (``b <- d*b + (1-d)*R``,
    ``d = baseline_decay``, starting at the first reward) and ``s`` the moving average of
    ``|R - b|`` with the same decay, so ``learning_rate`` does not depend on the objective's
    units; ``A`` is clipped to ``[-3, 3]``.

    Rewards (larger is better):

    * one objective: the value, negated when minimizing;
    * several objectives: ``1 - d/k``, where ``k`` trials (COMPLETE and feasible) came
      before it by number and ``d`` of them dominate it: 1 for a trial on the Pareto front
      of the trials before it, lower the more of them beat it on every objective;
    * PRUNED trials, infeasible trials (Optuna constraints) and non-finite values get the
      lowest reward seen so far, so the policy learns to avoid them (no update before a
      first COMPLETE feasible trial).

    The first ``n_startup_trials`` trials are sampled uniformly at random; they are
    replayed like the others. Randomness of trial ``n`` derives from ``(seed, n)``.

    Args:
        learning_rate: Step size of the policy-gradient update (on normalised rewards).
        baseline_decay: Decay ``d`` of the moving averages, in ``[0, 1)``.
        n_bins: Bins per numeric range, at least 2.
        n_startup_trials: Random trials before the policy is used.
        seed: Seed of the random choices.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=ReinforceSampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=60)
        >>> study.best_value < 0.01
        True
    """

    def __init__(
        self,
        learning_rate: float = 0.2,
        baseline_decay: float = 0.9,
        n_bins: int = 10,
        n_startup_trials: int = 10,
        *,
        seed: int | None = None,
    ) -> None:
        require_number("learning_rate", learning_rate)
        require_number("baseline_decay", baseline_decay)
        require_int("n_bins", n_bins)
        require_int("n_startup_trials", n_startup_trials)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be non-negative, got {n_startup_trials}")
        self._lr = float(learning_rate)
        self._decay = float(baseline_decay)
        self._n_bins = n_bins
        self._n_startup_trials = n_startup_trials
        super().__init__()
        self._seed = base_seed(seed)
        self._actions: dict[BaseDistribution, _Actions] = {}
        self._histories: dict[tuple[int, int], tuple[weakref.ref[Any], _History]] = {}
        self._lock = threading.Lock()  # Study.optimize(n_jobs>1) shares one sampler

    def _new_trial_state(self, study: Study, trial: FrozenTrial) -> _Policy | None:
        return self._policy_for_trial(study)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        policy = self._trial_state(study, trial)
        actions = self._actions_of(param_distribution)
        rng = trial_rng(self._seed, trial.number, param_name)
        logits = None if policy is None else policy.logits.get((param_name, param_distribution))
        if logits is None:
            action = int(rng.integers(actions.n))
        else:
            action = int(rng.choice(actions.n, p=_softmax(logits)))
        return actions.sample(action, rng)

    def policy(self, study: Study) -> dict[str, np.ndarray]:
        """Each decision's action probabilities after replaying ``study``'s finished trials.

        Keys are parameter names (a name seen with several distributions keeps the last).
        """
        state = self._current(study, finished_trials(study))
        return {name: _softmax(logits) for (name, _), logits in state.logits.items()}

    # ------------------------------------------------------------------ replay

    def _policy_for_trial(self, study: Study) -> _Policy | None:
        finished = finished_trials(study)
        if len(finished) < self._n_startup_trials:
            return None
        return self._current(study, finished)

    def _current(self, study: Study, finished: list[FrozenTrial]) -> _Policy:
        with self._lock:
            history = self._replay_locked(study, finished)
            return history.snapshots[len(history.numbers)]

    def _actions_of(self, dist: BaseDistribution) -> _Actions:
        actions = self._actions.get(dist)
        if actions is None:
            actions = self._actions[dist] = _Actions(dist, self._n_bins)
        return actions

    def _replay_locked(self, study: Study, finished: list[FrozenTrial]) -> _History:
        history = per_storage(self._histories, study, _History)
        numbers = [t.number for t in finished]
        done = len(history.numbers)
        if numbers[:done] != history.numbers:
            # A trial finished out of number order: go back to the last snapshot that is
            # still a prefix of the finished trials.
            same = 0
            while same < done and numbers[same] == history.numbers[same]:
                same += 1
            while same not in history.snapshots:
                same -= 1
            del history.numbers[same:]
            for k in [k for k in history.snapshots if k > same]:
                del history.snapshots[k]
            done = same
        n_objectives = len(study.directions)
        if history.points.shape[1] != n_objectives:
            history.points = np.empty((64, n_objectives))
        state = history.snapshots[done]
        for trial in finished[done:]:
            state = self._learn(state, trial, study.directions, history)
            history.numbers.append(trial.number)
            history.snapshots[len(history.numbers)] = state
            if len(history.numbers) > _SNAPSHOTS:  # the initial policy (0) stays
                history.snapshots.pop(len(history.numbers) - _SNAPSHOTS, None)
        return history

    def _learn(
        self,
        state: _Policy,
        trial: FrozenTrial,
        directions: Sequence[optuna.study.StudyDirection],
        history: _History,
    ) -> _Policy:
        state = state.copy()
        reward = self._reward(state, trial, directions, history)
        if reward is None:
            return state
        if state.baseline is None:
            state.baseline = reward
        advantage = reward - state.baseline
        if state.scale > 0:
            state.scale = self._decay * state.scale + (1 - self._decay) * abs(advantage)
        else:
            state.scale = abs(advantage)
        if state.scale > 0:
            g = self._lr * max(-_MAX_ADVANTAGE, min(_MAX_ADVANTAGE, advantage / state.scale))
            for name, dist in trial.distributions.items():
                if dist.single():
                    continue
                actions = self._actions_of(dist)
                action = actions.action_of(trial.params[name])
                if action is None:
                    continue
                key = (name, dist)
                logits = state.logits.get(key)
                if logits is None:
                    logits = np.zeros(actions.n)
                new = logits - g * _softmax(logits)
                new[action] += g
                state.logits[key] = new
        state.baseline = self._decay * state.baseline + (1 - self._decay) * reward
        return state

    @staticmethod
    def _reward(
        state: _Policy,
        trial: FrozenTrial,
        directions: Sequence[optuna.study.StudyDirection],
        history: _History,
    ) -> float | None:
        values = trial.values
        if (
            trial.state != TrialState.COMPLETE
            or values is None
            or violation(trial) > 0
            or not all(math.isfinite(v) for v in values)
        ):
            return None if math.isinf(state.worst) else state.worst
        point = minimized(values, directions)
        if len(directions) == 1:
            reward = -float(point[0])
        else:
            reward = share_not_dominating(
                point, history.points[: state.n_points], ["minimize"] * len(point)
            )
            if state.n_points == len(history.points):
                history.points = np.concatenate([history.points, np.empty_like(history.points)])
            history.points[state.n_points] = point
            state.n_points += 1
        state.worst = min(state.worst, reward)
        return reward


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


#: The multi-objective reward: ``1 - d/k`` for ``k`` earlier points, ``d`` of them
#: dominating the trial's.
mo_reward = share_not_dominating
