"""DominancePruner: a trial dominated by k others at any epoch from min_epochs is pruned."""

from __future__ import annotations

from studies.pruners import (
    DominancePruner,
)
from tests.studies.pruners.mo_curves import (
    decide,
)


def test_dominance_prunes_at_every_epoch_from_min_epochs() -> None:
    assert decide(DominancePruner(k=4), "X", 1) == "dominated by 4 trials at epoch 1"  # ABCE
    assert decide(DominancePruner(k=5), "X", 1) is None
    assert decide(DominancePruner(k=3), "X", 2) == "dominated by 3 trials at epoch 2"  # ABC
    assert decide(DominancePruner(k=3), "X", 3) == "dominated by 3 trials at epoch 3"
    assert decide(DominancePruner(k=4), "X", 3) is None  # D is worse, E and F stopped at 1
    assert decide(DominancePruner(k=1), "Z", 3) == "dominated by 2 trials at epoch 3"  # A, B
    assert decide(DominancePruner(k=1), "Z", 1) is None
    assert decide(DominancePruner(k=1, min_epochs=2), "X", 1) is None
    assert decide(DominancePruner(k=1, min_trials=5), "X", 3) is None  # 4 reached epoch 3
