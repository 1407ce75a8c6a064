"""What a study is and how it runs: study files, the catalog, samplers and pruners, the
worker loop, results and the ``nas-study`` CLI."""

from __future__ import annotations

from studies._catalog import DEFAULT_STUDY, catalog, catalog_dir, resolve_spec
from studies._components import build_pruner, build_sampler
from studies._dashboard import (
    DashboardServer,
    dashboard_app,
    make_dashboard_server,
    serve_dashboard,
)
from studies._evolution import RegularizedEvolutionSampler
from studies._launch import launch_workers, stop_on_signals
from studies._mo_pruners import (
    MO_PRUNERS,
    BaseMultiObjectivePruner,
    DominancePruner,
    ParetoRankPruner,
    build_mo_pruner,
)
from studies._reinforce import ReinforceSampler
from studies._report import (
    ReportSection,
    build_report,
    hypervolume_history,
    hypervolume_space,
    write_report,
)
from studies._results import best_trials, format_rows, metric_names, summary_rows, trial_rows
from studies._runner import (
    BUDGET_STATES,
    WORKER_STOPPED,
    BudgetReachedError,
    RunReport,
    StudyRunError,
    count_budget,
    open_study,
    resolve_device,
    run_study,
    run_trials,
)
from studies._spec import (
    PRUNERS,
    SAMPLERS,
    ComponentSpec,
    DatasetSpec,
    HeartbeatSpec,
    StudySpec,
    StudySpecError,
    load_spec,
    parse_spec,
    spec_from_data,
)

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
    "run_study",
    "run_trials",
    "serve_dashboard",
    "spec_from_data",
    "stop_on_signals",
    "summary_rows",
    "trial_rows",
    "write_report",
]
