"""What every part of a report shares: the section type, the objective kinds, colours and
small readers of a study (running best, axis types, time units)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import record
from studies.errors import StudyRunError
from studies.pareto import feasible
from studies.results._tables import metric_names

#: Objectives that count something and span orders of magnitude: drawn on log axes, and
#: taken in log10 for the hypervolume.
COUNT_OBJECTIVES = record.COST_OBJECTIVES


#: Objectives that are fractions in [0, 1]: their hypervolume reference is 0.
FRACTION_OBJECTIVES = record.CURVE_OBJECTIVES


#: Fewer complete trials than this give importances that mean nothing (PED-ANOVA ranks the
#: top 10% against the rest).
MIN_IMPORTANCE_TRIALS = 5


PARETO_COLOR = "#d62728"


OTHER_COLOR = "#7f9fbf"


PRUNED_COLOR = "#9a9a9a"


@dataclass(frozen=True)
class ReportSection:
    """One section of a report: a title, then a figure, a table or just a note.

    Attributes:
        title: The section heading.
        figure: A plotly figure, or ``None``.
        rows: Table rows (one dict per row, the same keys in each), or empty.
        note: A sentence shown under the title (why a plot is missing, how to read it).
    """

    title: str
    figure: go.Figure | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def require_complete(study: optuna.Study) -> None:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyRunError(
            f"study {study.study_name!r} has no complete trials yet ({state_counts(study)}); "
            "nothing to report"
        )


def better_is_low(study: optuna.Study, i: int) -> bool:
    return study.directions[i] == StudyDirection.MINIMIZE


def axis_type(name: str, trials: Sequence[FrozenTrial], i: int) -> str:
    if name in COUNT_OBJECTIVES and trials and all(t.values[i] > 0 for t in trials):
        return "log"
    return "linear"


def axis_title(study: optuna.Study, i: int) -> str:
    arrow = "higher is better" if not better_is_low(study, i) else "lower is better"
    return f"{metric_names(study)[i]} ({arrow})"


def running_best(study: optuna.Study, i: int) -> tuple[list[int], list[float]]:
    pick = min if better_is_low(study, i) else max
    xs, ys = [], []
    best: float | None = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not feasible(t):
            continue
        best = t.values[i] if best is None else pick(best, t.values[i])
        xs.append(t.number)
        ys.append(best)
    return xs, ys


def completed_at(t: FrozenTrial) -> datetime.datetime:
    return t.datetime_complete or t.datetime_start or datetime.datetime.min


def time_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 3 * 3600:
        return 3600.0, "hours"
    if seconds >= 3 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"


def state_counts(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    shown = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
    return f"{len(trials)} trials" + (f": {shown}" if shown else "")


def cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.4g}"
    return str(v)
