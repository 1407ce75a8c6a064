"""Hypervolume for reports: the space it is measured in, its history, and its two sections.

Count objectives are taken in log10, so halving the parameters counts the same at every
size; the reference point is 0 for accuracy and F1 and the worst observed value plus a
margin for the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from studies.pareto import feasible, hypervolume_of_minimized
from studies.results._report_parts import (
    COUNT_OBJECTIVES,
    FRACTION_OBJECTIVES,
    ReportSection,
    completed_at,
    time_unit,
)
from studies.results._tables import metric_names

#: Margin past the worst observed value for the hypervolume reference point: 0.1 decade
#: (x1.26) for a count objective, 10% of the observed range for any other.
REFERENCE_MARGIN = 0.1


class HypervolumeSpace(NamedTuple):
    """Where a report measures hypervolume: see :func:`hypervolume_space`."""

    #: Per objective: raw value to the value minimized.
    maps: list[Callable[[float], float]]
    #: The reference point, in the minimized space.
    reference: np.ndarray
    #: Per objective: its name, or ``log10(name)``.
    labels: list[str]


def hypervolume_space(study: optuna.Study) -> HypervolumeSpace:
    """How objective values are mapped for the hypervolume, and the reference point.

    Every objective is turned into one to minimize (a maximized one is negated) after a
    count objective (``params``, ``flops``, ``latency_ms``, when all its values are positive)
    is taken in log10, so that halving the parameters counts the same at every size. The
    reference point is, per objective: 0 for accuracy and F1 (fractions in [0, 1]); the
    largest observed log10 value plus 0.1 (x1.26) for a count objective; for any other,
    the worst observed value plus 10% of the observed range. Observed: over the complete,
    feasible trials.
    """
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if feasible(t)
    ]
    maps: list[Callable[[float], float]] = []
    ref = []
    labels = []
    for i, (name, direction) in enumerate(zip(metric_names(study), study.directions, strict=True)):
        sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
        values = [t.values[i] for t in trials]
        log = name in COUNT_OBJECTIVES and bool(values) and min(values) > 0

        def to_min(v: float, sign: float = sign, log: bool = log) -> float:
            return sign * (math.log10(v) if log else v)

        maps.append(to_min)
        labels.append(f"log10({name})" if log else name)
        mapped = [to_min(v) for v in values]
        if name in FRACTION_OBJECTIVES and direction == StudyDirection.MAXIMIZE:
            ref.append(0.0)
        elif not mapped:
            ref.append(math.inf)
        elif log:
            ref.append(max(mapped) + REFERENCE_MARGIN)
        else:
            span = max(mapped) - min(mapped)
            ref.append(max(mapped) + REFERENCE_MARGIN * (span or max(abs(max(mapped)), 1.0)))
    return HypervolumeSpace(maps, np.asarray(ref, dtype=np.float64), labels)


def hypervolume_history(
    study: optuna.Study, order: str = "number"
) -> list[tuple[FrozenTrial, float]]:
    """The hypervolume of the complete, feasible trials after each complete trial.

    Args:
        study: A multi-objective study.
        order: ``"number"`` (trial order) or ``"time"`` (order of completion).

    Returns:
        ``(trial, hypervolume after it)`` per complete trial, in the order asked, in the
        space and with the reference point of :func:`hypervolume_space`.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if order == "time":
        complete = sorted(complete, key=lambda t: (completed_at(t), t.number))
    maps, ref, _ = hypervolume_space(study)
    front = np.empty((0, len(ref)))
    hv = 0.0
    history = []
    for t in complete:
        if feasible(t):
            point = np.asarray([m(v) for m, v in zip(maps, t.values, strict=True)])
            dominated = bool(front.size) and bool(np.any(np.all(front <= point, axis=1)))
            if np.all(point <= ref) and not dominated:
                kept = front[~np.all(point <= front, axis=1)]
                front = np.vstack([kept, point])
                hv = hypervolume_of_minimized(front, ref)
        history.append((t, hv))
    return history


def hypervolume_sections(study: optuna.Study) -> list[ReportSection]:
    """Hypervolume over trial numbers and over wall-clock time since the first start."""
    names = metric_names(study)
    _, ref, labels = hypervolume_space(study)
    space = ", ".join(labels)
    refs = ", ".join(
        f"{n}={fmt_ref(n, r, d)}" for n, r, d in zip(names, ref, study.directions, strict=True)
    )
    note = (
        f"Volume dominated by the complete, feasible trials in ({space}) space, up to the "
        f"reference point {refs} (the worst observed value plus a margin; 0 for accuracy "
        "and F1). Higher is better."
    )
    by_number = hypervolume_history(study, "number")
    fig_n = go.Figure(
        go.Scatter(
            x=[t.number for t, _ in by_number],
            y=[hv for _, hv in by_number],
            mode="lines+markers",
            line={"shape": "hv"},
            name="hypervolume",
            hovertemplate="trial %{x}<br>hypervolume %{y:.4g}<extra></extra>",
        )
    )
    fig_n.update_layout(
        title="Hypervolume over trials", xaxis_title="trial", yaxis_title="hypervolume"
    )
    by_time = hypervolume_history(study, "time")
    start = min(
        (t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start),
        default=None,
    )
    seconds = [(completed_at(t) - start).total_seconds() if start else 0.0 for t, _ in by_time]
    scale, unit = time_unit(max(seconds, default=0.0))
    fig_t = go.Figure(
        go.Scatter(
            x=[s / scale for s in seconds],
            y=[hv for _, hv in by_time],
            customdata=[t.number for t, _ in by_time],
            mode="lines+markers",
            line={"shape": "hv"},
            name="hypervolume",
            hovertemplate=f"%{{x:.3g}} {unit}<br>trial %{{customdata}}<br>"
            "hypervolume %{y:.4g}<extra></extra>",
        )
    )
    fig_t.update_layout(
        title="Hypervolume over wall-clock time",
        xaxis_title=f"{unit} since the first trial started",
        yaxis_title="hypervolume",
    )
    return [
        ReportSection("Hypervolume over trials", figure=fig_n, note=note),
        ReportSection(
            "Hypervolume over wall-clock time",
            figure=fig_t,
            note="The same hypervolume, as trials completed, across all workers.",
        ),
    ]


def fmt_ref(name: str, ref: float, direction: StudyDirection) -> str:
    value = (-ref if direction == StudyDirection.MAXIMIZE else ref) + 0.0  # no "-0"
    if name in COUNT_OBJECTIVES and math.isfinite(value) and direction == StudyDirection.MINIMIZE:
        raw = 10**value
        return (f"{raw:,.0f}" if raw >= 100 else f"{raw:.3g}") + f" (log10 {value:.3g})"
    return f"{value:.4g}"
