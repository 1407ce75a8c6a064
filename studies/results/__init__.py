"""What a study found: tables of the best trials, the HTML report, the guarded
optuna-dashboard, and the replay of a trial for export. Read-only: nothing here trains
(export's retraining lives in :mod:`nas_objectives.export`) or changes a study."""

from __future__ import annotations

from studies.results._dashboard import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DashboardServer,
    make_dashboard_server,
    serve_dashboard,
)
from studies.results._dashboard_guard import (
    MIN_TOKEN_LENGTH,
    TOKEN_ENV_VAR,
    check_token,
    dashboard_app,
    is_loopback,
)
from studies.results._export import BEST, replay_trial, select_trial, stored_spec
from studies.results._hypervolume import (
    REFERENCE_MARGIN,
    HypervolumeSpace,
    hypervolume_history,
    hypervolume_space,
)
from studies.results._report import FORMATS as REPORT_FORMATS
from studies.results._report import PNG_HINT, build_report, default_out, write_report
from studies.results._report_parts import ReportSection
from studies.results._tables import FORMATS as TABLE_FORMATS
from studies.results._tables import (
    best_trials,
    format_rows,
    metric_names,
    summary_rows,
    trial_rows,
)

__all__ = [
    "BEST",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MIN_TOKEN_LENGTH",
    "PNG_HINT",
    "REFERENCE_MARGIN",
    "REPORT_FORMATS",
    "TABLE_FORMATS",
    "TOKEN_ENV_VAR",
    "DashboardServer",
    "HypervolumeSpace",
    "ReportSection",
    "best_trials",
    "build_report",
    "check_token",
    "dashboard_app",
    "default_out",
    "format_rows",
    "hypervolume_history",
    "hypervolume_space",
    "is_loopback",
    "make_dashboard_server",
    "metric_names",
    "replay_trial",
    "select_trial",
    "serve_dashboard",
    "stored_spec",
    "summary_rows",
    "trial_rows",
    "write_report",
]
