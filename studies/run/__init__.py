"""How a study runs: open or join it, the worker loop, the local launcher.

Example:
    >>> import optuna
    >>> from studies.run import RunOptions, run_study
    >>> from studies.spec import resolve_spec
    >>> report = run_study(resolve_spec("digits-mlp"), optuna.storages.InMemoryStorage(),
    ...                    RunOptions(n_trials=2, epochs=1), progress=False)
    >>> report.ran
    2
"""

from __future__ import annotations

from studies.run._arrays import run_arrays
from studies.run._launch import gpu_slots, launch_workers
from studies.run._lifeline import ADOPTED_ATTR, TRIAL_LOST
from studies.run._open import BUDGET_STATES, SPEC_ATTR, count_budget, open_study, resolve_device
from studies.run._options import RunOptions
from studies.run._progress import show_progress
from studies.run._worker import (
    BUDGET_REACHED,
    WORKER_STOPPED,
    RunReport,
    run_study,
    run_trials,
)

__all__ = [
    "ADOPTED_ATTR",
    "BUDGET_REACHED",
    "BUDGET_STATES",
    "SPEC_ATTR",
    "TRIAL_LOST",
    "WORKER_STOPPED",
    "RunOptions",
    "RunReport",
    "count_budget",
    "gpu_slots",
    "launch_workers",
    "open_study",
    "resolve_device",
    "run_arrays",
    "run_study",
    "run_trials",
    "show_progress",
]
