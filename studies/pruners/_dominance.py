"""Prune a trial that enough other trials dominate at the same epoch."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from studies.pareto import count_dominating
from studies.pruners._base import BaseMultiObjectivePruner, check_int


class DominancePruner(BaseMultiObjectivePruner):
    """Prunes a trial that at least ``k`` other trials dominate at the same epoch.

    Decides at every epoch from ``min_epochs`` on.
    """

    def __init__(
        self,
        k: int = 3,
        min_epochs: int = 1,
        min_trials: int = 4,
        *,
        objectives: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
    ) -> None:
        check_int("k", k, 1)
        self.k = k
        super().__init__(
            min_epochs=min_epochs,
            min_trials=min_trials,
            objectives=objectives,
            directions=directions,
        )

    def _decide(
        self, study: optuna.Study, trial_number: int, epoch: int, own: tuple[float, ...]
    ) -> str | None:
        if epoch < self.min_epochs:
            return None
        others = self._others_at(study, trial_number, epoch)
        if len(others) < self.min_trials:
            return None
        dominating = count_dominating(own, others, self._directions)
        if dominating < self.k:
            return None
        trials = "trial" if dominating == 1 else "trials"
        return f"dominated by {dominating} {trials} at epoch {epoch}"
