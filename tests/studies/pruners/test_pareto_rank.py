"""ParetoRankPruner: rungs at min_epochs times powers of the reduction factor, the best
1/reduction_factor kept by Pareto rank, and the warm-up."""

from __future__ import annotations

from studies.pruners import (
    ParetoRankPruner,
)
from tests.studies.pruners.mo_curves import (
    decide,
)


def test_rungs_are_min_epochs_times_powers_of_the_reduction_factor() -> None:
    assert [e for e in range(1, 40) if ParetoRankPruner(1, 3).is_rung(e)] == [1, 3, 9, 27]
    assert [e for e in range(1, 40) if ParetoRankPruner(2, 2).is_rung(e)] == [2, 4, 8, 16, 32]


def test_pareto_rank_prunes_the_right_trials_at_the_right_rungs() -> None:
    pruner = ParetoRankPruner(min_epochs=1, reduction_factor=3, min_trials=4)
    # Epoch 1: 7 trials (E, F count; the failed one doesn't), the best 3 are A, C and Z.
    assert decide(pruner, "X", 1) == "pareto rank: not in the best 1/3 of 7 trials at epoch 1"
    assert decide(pruner, "Z", 1) is None
    # Epoch 2 is no rung: nothing is pruned there, however dominated.
    assert decide(pruner, "X", 2) is None
    assert decide(pruner, "Z", 2) is None
    # Epoch 3: E and F never reached it, so 5 trials; Z fell behind A and B.
    assert decide(pruner, "Z", 3) == "pareto rank: not in the best 1/3 of 5 trials at epoch 3"
    assert decide(pruner, "tiny", 3) is None


def test_pareto_rank_warm_up_counts_only_trials_that_reached_the_rung() -> None:
    # Six others at epoch 1, only four (A, B, C, D) at epoch 3.
    assert decide(ParetoRankPruner(min_trials=6), "X", 1) is not None
    assert decide(ParetoRankPruner(min_trials=7), "X", 1) is None
    assert decide(ParetoRankPruner(min_trials=4), "Z", 3) is not None
    assert decide(ParetoRankPruner(min_trials=5), "Z", 3) is None
    # No decision before min_epochs: epoch 1 is then no rung.
    assert decide(ParetoRankPruner(min_epochs=3), "X", 1) is None
    assert decide(ParetoRankPruner(min_epochs=3), "X", 3) is not None
