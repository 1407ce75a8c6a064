"""One-shot proposals: DARTS searches over a study's cell space, whose derived cells are
enqueued into the study as ordinary trials (``nas-study oneshot``).

The search itself (supernet, bilevel training, discretisation) is
:mod:`nas_objectives._supernet`, which knows nothing of storage; this package claims the
sweep's lambdas through the storage and enqueues what the searches derive.
"""

from __future__ import annotations

from nas_objectives._supernet import SearchSettings
from studies.oneshot._claims import CLAIMS_SUFFIX, Claim, Claims
from studies.oneshot._propose import (
    PROPOSED_BY_ONESHOT,
    Proposal,
    check_oneshot_space,
    cost_kind,
    lambda_grid,
    macro_layout,
    run_oneshot,
    sweep_key,
)

__all__ = [
    "CLAIMS_SUFFIX",
    "PROPOSED_BY_ONESHOT",
    "Claim",
    "Claims",
    "Proposal",
    "SearchSettings",
    "check_oneshot_space",
    "cost_kind",
    "lambda_grid",
    "macro_layout",
    "run_oneshot",
    "sweep_key",
]
