"""The figures of a report: the Pareto front, each objective's history and importances
(Optuna's own plots), every trial's learning curve, and the table of the best trials."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import record
from studies.pareto import feasible
from studies.results._report_parts import (
    MIN_IMPORTANCE_TRIALS,
    OTHER_COLOR,
    PARETO_COLOR,
    PRUNED_COLOR,
    ReportSection,
    axis_title,
    axis_type,
    better_is_low,
    running_best,
)
from studies.results._tables import best_trials, metric_names, trial_rows


def pareto_section(study: optuna.Study) -> ReportSection:
    """The first objective (y) against the second (x), the Pareto set highlighted.

    The Pareto set is the study's, over all objectives and feasible trials only; with more
    than two objectives the points are projected on the first two.
    """
    names = metric_names(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pareto = best_trials(study)
    on_front = {t.number for t in pareto}
    infeasible = [t for t in complete if not feasible(t)]
    others = [t for t in complete if t.number not in on_front and feasible(t)]
    x_name, y_name = names[1], names[0]
    hover = (
        f"trial %{{customdata[0]}}<br>{y_name}=%{{y:.4g}}<br>{x_name}=%{{x:.4g}}"
        "<br>%{customdata[1]}<extra>%{fullData.name}</extra>"
    )

    def scatter(trials: Sequence[FrozenTrial], name: str, **style: Any) -> go.Scatter:
        return go.Scatter(
            x=[t.values[1] for t in trials],
            y=[t.values[0] for t in trials],
            customdata=[[t.number, t.user_attrs.get(record.ARCH, "")] for t in trials],
            hovertemplate=hover,
            name=name,
            **style,
        )

    fig = go.Figure()
    fig.add_trace(
        scatter(others, "other trials", mode="markers", marker={"color": OTHER_COLOR, "size": 7})
    )
    if infeasible:
        fig.add_trace(
            scatter(
                infeasible,
                "infeasible (over a constraint)",
                mode="markers",
                marker={"color": PRUNED_COLOR, "symbol": "x", "size": 7},
            )
        )
    front = sorted(pareto, key=lambda t: t.values[1])
    fig.add_trace(
        scatter(
            front,
            "Pareto-optimal",
            # A staircase only means something when the front is two-dimensional.
            mode="markers+lines" if len(names) == 2 else "markers",
            # The edge of the dominated region: horizontal first when x is minimized.
            line={"shape": "hv" if better_is_low(study, 1) else "vh", "color": PARETO_COLOR},
            marker={"color": PARETO_COLOR, "size": 10, "line": {"width": 1, "color": "black"}},
        )
    )
    fig.update_layout(
        title=f"Pareto front: {y_name} vs {x_name}",
        xaxis={"title": axis_title(study, 1), "type": axis_type(names[1], complete, 1)},
        yaxis={"title": axis_title(study, 0), "type": axis_type(names[0], complete, 0)},
        hovermode="closest",
    )
    note = (
        f"{len(pareto)} Pareto-optimal of {len(complete)} complete trials."
        + (" Points show the first two objectives only." if len(names) > 2 else "")
        + " Hover a point for its trial number and architecture."
    )
    return ReportSection("Pareto front", figure=fig, note=note)


def history_section(study: optuna.Study, i: int, name: str) -> ReportSection:
    multi = len(study.directions) > 1
    title = f"Optimization history: {name}" if multi else "Optimization history"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings
        if multi:
            fig = optuna.visualization.plot_optimization_history(
                study, target=lambda t: t.values[i], target_name=name
            )
            # Optuna draws no best-so-far line for a target: it does not know its direction.
            best = running_best(study, i)
            fig.add_trace(go.Scatter(x=best[0], y=best[1], mode="lines", name=f"best {name}"))
        else:
            fig = optuna.visualization.plot_optimization_history(study, target_name=name)
    fig.update_layout(title=title, yaxis_type=axis_type(name, complete, i))
    return ReportSection(title, figure=fig)


def importance_section(study: optuna.Study, i: int, name: str) -> ReportSection:
    multi = len(study.directions) > 1
    title = f"Parameter importances: {name}" if multi else "Parameter importances"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return ReportSection(
            title,
            note=f"Not enough trials: importances need at least {MIN_IMPORTANCE_TRIALS} "
            f"complete trials, the study has {len(complete)}.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = optuna.visualization.plot_param_importances(
                study,
                target=(lambda t: t.values[i]) if multi else None,
                target_name=name,
            )
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ReportSection(title, note=f"Importances could not be computed: {first}")
    if not any(len(trace.x or ()) for trace in fig.data):
        return ReportSection(title, note="No sampled parameters to rank.")
    fig.update_layout(title=title)
    return ReportSection(
        title,
        figure=fig,
        note="Optuna's default evaluator (PED-ANOVA): how much each parameter explains "
        f"the best {name} values.",
    )


def learning_curves_section(study: optuna.Study) -> ReportSection:
    """Validation accuracy per epoch (user attribute ``val_accuracy``) of every complete or
    pruned trial: pruned trials dashed grey with an x where they stopped, the best (or
    Pareto-optimal) trials in red, other complete trials in blue."""
    best = {t.number for t in best_trials(study)}
    groups: dict[str, list[FrozenTrial]] = {"complete": [], "best": [], "pruned": []}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if not t.user_attrs.get(record.VAL_ACCURACY):
            continue
        if t.state == TrialState.PRUNED:
            groups["pruned"].append(t)
        else:
            groups["best" if t.number in best else "complete"].append(t)
    title = "Learning curves"
    if not any(groups.values()):
        return ReportSection(title, note="No trial stored a per-epoch validation accuracy.")
    best_label = "Pareto-optimal" if len(study.directions) > 1 else "best"
    styles = {
        "pruned": ("pruned", {"color": PRUNED_COLOR, "width": 1, "dash": "dash"}),
        "complete": ("complete", {"color": OTHER_COLOR, "width": 1}),
        "best": (best_label, {"color": PARETO_COLOR, "width": 2.5}),
    }
    fig = go.Figure()
    for key, (label, line) in styles.items():
        trials = groups[key]
        if not trials:
            continue
        # One trace per group, trials separated by gaps: thousands of trials stay light.
        xs: list[int | None] = []
        ys: list[float | None] = []
        text: list[str | None] = []
        for t in trials:
            curve = t.user_attrs[record.VAL_ACCURACY]
            xs += [*range(1, len(curve) + 1), None]
            ys += [*curve, None]
            text += [curve_label(t)] * len(curve) + [None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                text=text,
                mode="lines",
                line=line,
                name=label,
                connectgaps=False,
                hovertemplate="%{text}<br>epoch %{x}: %{y:.4f}<extra></extra>",
            )
        )
    if groups["pruned"]:
        ends = groups["pruned"]
        fig.add_trace(
            go.Scatter(
                x=[len(t.user_attrs[record.VAL_ACCURACY]) for t in ends],
                y=[t.user_attrs[record.VAL_ACCURACY][-1] for t in ends],
                text=[curve_label(t) for t in ends],
                mode="markers",
                marker={"symbol": "x", "color": PRUNED_COLOR, "size": 8},
                name="pruned here",
                hovertemplate="%{text}<br>pruned after epoch %{x}<extra></extra>",
            )
        )
    longest = max(len(t.user_attrs[record.VAL_ACCURACY]) for g in groups.values() for t in g)
    fig.update_layout(
        title="Validation accuracy per epoch",
        xaxis={"title": "epoch", "tick0": 1, "dtick": max(1, math.ceil(longest / 15))},
        yaxis_title="validation accuracy",
        hovermode="closest",
    )
    counts = ", ".join(f"{len(v)} {styles[k][0]}" for k, v in groups.items() if v)
    return ReportSection(title, figure=fig, note=f"{counts}. Pruned trials are dashed grey.")


def best_table_section(study: optuna.Study) -> ReportSection:
    multi = len(study.directions) > 1
    title = "Pareto-optimal trials" if multi else "Best trial"
    trials = best_trials(study)
    rows = trial_rows(study, trials)
    param_names: list[str] = []
    for t in trials:
        param_names += [p for p in t.params if p not in param_names]
    for row, t in zip(rows, trials, strict=True):
        row.update({p: t.params.get(p) for p in param_names})
    if not rows:
        return ReportSection(title, note="No feasible complete trial.")
    return ReportSection(title, rows=rows)


def curve_label(t: FrozenTrial) -> str:
    label = f"trial {t.number}"
    if t.state == TrialState.PRUNED:
        by = t.user_attrs.get(record.PRUNED_BY)
        at = t.user_attrs.get(
            record.PRUNED_AT_EPOCH, len(t.user_attrs.get(record.VAL_ACCURACY, []))
        )
        label += f" (pruned at epoch {at}{f' by {by}' if by else ''})"
    arch = t.user_attrs.get(record.ARCH)
    return f"{label}<br>{arch}" if arch else label
