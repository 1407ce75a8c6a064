"""What a study is and how it runs, one sub-package per job:

* :mod:`studies.spec`: the study file (schema, parser) and the shipped catalog;
* :mod:`studies.samplers` and :mod:`studies.pruners`: how to choose and when to stop;
* :mod:`studies.run`: open or join a study, the worker loop, the local launcher;
* :mod:`studies.results`: tables, reports, the dashboard, the replay for export;
* :mod:`studies.cli`: the ``nas-study`` command line;
* :mod:`studies.pareto`: the Pareto maths they share; :mod:`studies.errors`.

This module re-exports the names callers use, so ``from studies import run_study`` (or
``run_arrays``) works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from studies._signals import stop_on_signals
from studies.errors import BudgetReachedError, StudyRunError, StudySpecError
from studies.pruners import (
    MO_PRUNERS,
    PRUNERS,
    BaseMultiObjectivePruner,
    DominancePruner,
    ParetoRankPruner,
    build_mo_pruner,
    build_pruner,
)
from studies.samplers import SAMPLERS, RegularizedEvolutionSampler, ReinforceSampler, build_sampler
from studies.spec import (
    DEFAULT_STUDY,
    ComponentSpec,
    DatasetSpec,
    HeartbeatSpec,
    StudySpec,
    catalog,
    catalog_dir,
    load_spec,
    parse_spec,
    resolve_spec,
    spec_from_data,
)

#: Imported on first use, so that every ``studies.*`` import (``nas-study --help`` among
#: them) does not load the worker loop and torch (``studies.run``), nor plotly and the
#: dashboard (``studies.results``).
_ON_FIRST_USE = {
    "studies.results": (
        "DashboardServer",
        "ReportSection",
        "best_trials",
        "build_report",
        "dashboard_app",
        "format_rows",
        "hypervolume_history",
        "hypervolume_space",
        "make_dashboard_server",
        "metric_names",
        "serve_dashboard",
        "summary_rows",
        "trial_rows",
        "write_report",
    ),
    "studies.run": (
        "BUDGET_STATES",
        "WORKER_STOPPED",
        "RunOptions",
        "RunReport",
        "count_budget",
        "launch_workers",
        "open_study",
        "resolve_device",
        "run_arrays",
        "run_study",
        "run_trials",
    ),
}
_LAZY = {name: module for module, names in _ON_FIRST_USE.items() for name in names}

if TYPE_CHECKING:
    from studies.results import (
        DashboardServer,
        ReportSection,
        best_trials,
        build_report,
        dashboard_app,
        format_rows,
        hypervolume_history,
        hypervolume_space,
        make_dashboard_server,
        metric_names,
        serve_dashboard,
        summary_rows,
        trial_rows,
        write_report,
    )
    from studies.run import (
        BUDGET_STATES,
        WORKER_STOPPED,
        RunOptions,
        RunReport,
        count_budget,
        launch_workers,
        open_study,
        resolve_device,
        run_arrays,
        run_study,
        run_trials,
    )
else:

    def __getattr__(name: str) -> Any:
        """Import a name of ``studies.run`` or ``studies.results`` on first use (PEP 562)."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BUDGET_STATES",
    "DEFAULT_STUDY",
    "MO_PRUNERS",
    "PRUNERS",
    "SAMPLERS",
    "WORKER_STOPPED",
    "BaseMultiObjectivePruner",
    "BudgetReachedError",
    "ComponentSpec",
    "DashboardServer",
    "DatasetSpec",
    "DominancePruner",
    "HeartbeatSpec",
    "ParetoRankPruner",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
    "ReportSection",
    "RunOptions",
    "RunReport",
    "StudyRunError",
    "StudySpec",
    "StudySpecError",
    "best_trials",
    "build_mo_pruner",
    "build_pruner",
    "build_report",
    "build_sampler",
    "catalog",
    "catalog_dir",
    "count_budget",
    "dashboard_app",
    "format_rows",
    "hypervolume_history",
    "hypervolume_space",
    "launch_workers",
    "load_spec",
    "make_dashboard_server",
    "metric_names",
    "open_study",
    "parse_spec",
    "resolve_device",
    "resolve_spec",
    "run_arrays",
    "run_study",
    "run_trials",
    "serve_dashboard",
    "spec_from_data",
    "stop_on_signals",
    "summary_rows",
    "trial_rows",
    "write_report",
]
