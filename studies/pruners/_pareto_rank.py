"""Multi-objective ASHA (Schmucker et al., 2021): prune at rungs by Pareto rank."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from studies.pareto import keep_by_pareto_rank
from studies.pruners._base import BaseMultiObjectivePruner, check_int


class ParetoRankPruner(BaseMultiObjectivePruner):
    """Multi-objective ASHA: asynchronous rungs, Pareto rank with crowding distance.

    At rung epochs ``min_epochs * reduction_factor**k`` (k = 0, 1, ...), a trial is kept
    only if it is in the best ``ceil(n / reduction_factor)`` of the ``n`` trials with a
    value at that epoch (itself included), by :func:`keep_by_pareto_rank`. Other epochs
    never prune.

    Example:
        >>> pruner = ParetoRankPruner(min_epochs=1, reduction_factor=3)
        >>> [e for e in range(1, 30) if pruner.is_rung(e)]
        [1, 3, 9, 27]
    """

    def __init__(
        self,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        min_trials: int = 4,
        *,
        objectives: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
    ) -> None:
        check_int("reduction_factor", reduction_factor, 2)
        self.reduction_factor = reduction_factor
        super().__init__(
            min_epochs=min_epochs,
            min_trials=min_trials,
            objectives=objectives,
            directions=directions,
        )

    def is_rung(self, epoch: int) -> bool:
        """Whether ``epoch`` is ``min_epochs * reduction_factor**k`` for some k >= 0."""
        rung = self.min_epochs
        while rung < epoch:
            rung *= self.reduction_factor
        return rung == epoch

    def decides_at(self, epoch: int) -> bool:
        return self.is_rung(epoch)

    def _decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own: tuple[float, ...]
    ) -> str | None:
        if not self.is_rung(epoch):
            return None
        others = self._others_at(study, trial_number, epoch)
        if len(others) < self.min_trials:
            return None
        if keep_by_pareto_rank(own, others, self._directions, self.reduction_factor):
            return None
        return (
            f"pareto rank: not in the best 1/{self.reduction_factor} of {len(others) + 1} "
            f"trials at epoch {epoch}"
        )
