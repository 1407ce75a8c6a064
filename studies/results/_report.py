"""``nas-study report``: one self-contained HTML report of a study.

The report holds, for a multi-objective study, the Pareto front of the first two
objectives, the hypervolume over trials and over wall-clock time, the optimization history
and the parameter importances of each objective, every trial's validation-accuracy curve
and a table of the Pareto-optimal trials; for a single-objective study, all of these but
the Pareto front and the hypervolume. plotly.js is embedded once, so the file opens
offline.
"""

from __future__ import annotations

import argparse
import datetime
import html
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna._hypervolume import compute_hypervolume
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from storage import open_storage
from studies._cli_args import Parser, load_named_study, storage_arg
from studies._results import best_trials, metric_names, trial_rows
from studies._runner import StudyRunError

FORMATS = ("html", "png")

#: Objectives that count something and span orders of magnitude: drawn on log axes, and
#: taken in log10 for the hypervolume.
COUNT_OBJECTIVES = ("params", "flops", "latency_ms")
#: Objectives that are fractions in [0, 1]: their hypervolume reference is 0.
FRACTION_OBJECTIVES = ("accuracy", "f1")
#: Margin past the worst observed value for the hypervolume reference point: 0.1 decade
#: (x1.26) for a count objective, 10% of the observed range for any other.
REFERENCE_MARGIN = 0.1
#: Fewer complete trials than this give importances that mean nothing (PED-ANOVA ranks the
#: top 10% against the rest).
MIN_IMPORTANCE_TRIALS = 5

PNG_HINT = 'pip install "nas-study[png]"'

_PARETO_COLOR = "#d62728"
_OTHER_COLOR = "#7f9fbf"
_PRUNED_COLOR = "#9a9a9a"


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


def build_report(study: optuna.Study) -> list[ReportSection]:
    """The sections of ``study``'s report, in order.

    Raises:
        StudyRunError: the study has no complete trial.
    """
    return _sections(snapshot(study))


def _sections(study: optuna.Study) -> list[ReportSection]:
    _require_complete(study)
    names = metric_names(study)
    sections: list[ReportSection] = []
    if len(study.directions) > 1:
        sections.append(pareto_section(study))
        sections.extend(hypervolume_sections(study))
    for i, name in enumerate(names):
        sections.append(_history_section(study, i, name))
    for i, name in enumerate(names):
        sections.append(_importance_section(study, i, name))
    sections.append(learning_curves_section(study))
    sections.append(_best_table_section(study))
    return sections


def write_report(study: optuna.Study, out: str | Path | None = None, fmt: str = "html") -> Path:
    """Write ``study``'s report to ``out`` and return its path.

    Args:
        study: The study.
        out: The file to write; default ``<study name>-report.<fmt>`` in the current directory.
        fmt: ``"html"``: the whole report in one self-contained file (plotly.js embedded, no
            network needed to open it). ``"png"``: the Pareto front (the optimization history
            for a single-objective study) as an image; needs kaleido.

    Raises:
        StudyRunError: no complete trials, kaleido missing for PNG, or ``out`` not writable.
    """
    if fmt not in FORMATS:
        raise StudyRunError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")
    # Checked before any work: the hint is all the user needs.
    if fmt == "png" and not _kaleido_installed():
        raise StudyRunError(
            f"--format png needs kaleido, which is not installed: {PNG_HINT} (or use --format html)"
        )
    path = Path(out) if out is not None else default_out(study, fmt)
    study = snapshot(study)
    if fmt == "png":
        _require_complete(study)
        if len(study.directions) > 1:
            figure = pareto_section(study).figure
        else:
            figure = _history_section(study, 0, metric_names(study)[0]).figure
        assert figure is not None
        try:
            figure.write_image(str(path), format="png", width=1000, height=650)
        except OSError as exc:
            raise StudyRunError(f"cannot write the report to {path}: {_os_reason(exc)}") from None
        except (RuntimeError, ValueError) as exc:  # kaleido without a browser, and the like
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StudyRunError(f"cannot render {path} with kaleido: {first}") from None
        return path
    text = render_html(study, _sections(study))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StudyRunError(f"cannot write the report to {path}: {_os_reason(exc)}") from None
    return path


def snapshot(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of ``study``: every section sees the same trials while workers
    go on writing, and the many reads of a report do not each query the database."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory"
    try:
        copy = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            study_name=study.study_name,
            directions=study.directions,
        )
    finally:
        optuna.logging.set_verbosity(level)
    if study.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy.set_metric_names(study.metric_names)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


def _kaleido_installed() -> bool:
    try:
        import kaleido  # noqa: F401  (plotly's static image export)
    except ImportError:
        return False
    return True


def default_out(study: optuna.Study, fmt: str = "html") -> Path:
    """``<study name>-report.<fmt>``, with characters unsafe in a file name replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study.study_name).strip("._") or "study"
    return Path(f"{safe}-report.{fmt}")


# --------------------------------------------------------------------------- sections


def pareto_section(study: optuna.Study) -> ReportSection:
    """The first objective (y) against the second (x), the Pareto set highlighted.

    The Pareto set is the study's, over all objectives and feasible trials only; with more
    than two objectives the points are projected on the first two.
    """
    names = metric_names(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pareto = best_trials(study)
    on_front = {t.number for t in pareto}
    infeasible = [t for t in complete if not _feasible(t)]
    others = [t for t in complete if t.number not in on_front and _feasible(t)]
    x_name, y_name = names[1], names[0]
    hover = (
        f"trial %{{customdata[0]}}<br>{y_name}=%{{y:.4g}}<br>{x_name}=%{{x:.4g}}"
        "<br>%{customdata[1]}<extra>%{fullData.name}</extra>"
    )

    def scatter(trials: Sequence[FrozenTrial], name: str, **style: Any) -> go.Scatter:
        return go.Scatter(
            x=[t.values[1] for t in trials],
            y=[t.values[0] for t in trials],
            customdata=[[t.number, t.user_attrs.get("arch", "")] for t in trials],
            hovertemplate=hover,
            name=name,
            **style,
        )

    fig = go.Figure()
    fig.add_trace(
        scatter(others, "other trials", mode="markers", marker={"color": _OTHER_COLOR, "size": 7})
    )
    if infeasible:
        fig.add_trace(
            scatter(
                infeasible,
                "infeasible (over a constraint)",
                mode="markers",
                marker={"color": _PRUNED_COLOR, "symbol": "x", "size": 7},
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
            line={"shape": "hv" if _better_is_low(study, 1) else "vh", "color": _PARETO_COLOR},
            marker={"color": _PARETO_COLOR, "size": 10, "line": {"width": 1, "color": "black"}},
        )
    )
    fig.update_layout(
        title=f"Pareto front: {y_name} vs {x_name}",
        xaxis={"title": _axis_title(study, 1), "type": _axis_type(names[1], complete, 1)},
        yaxis={"title": _axis_title(study, 0), "type": _axis_type(names[0], complete, 0)},
        hovermode="closest",
    )
    note = (
        f"{len(pareto)} Pareto-optimal of {len(complete)} complete trials."
        + (" Points show the first two objectives only." if len(names) > 2 else "")
        + " Hover a point for its trial number and architecture."
    )
    return ReportSection("Pareto front", figure=fig, note=note)


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
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
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
        complete = sorted(complete, key=lambda t: (_completed_at(t), t.number))
    maps, ref, _ = hypervolume_space(study)
    front = np.empty((0, len(ref)))
    hv = 0.0
    history = []
    for t in complete:
        if _feasible(t):
            point = np.asarray([m(v) for m, v in zip(maps, t.values, strict=True)])
            dominated = bool(front.size) and bool(np.any(np.all(front <= point, axis=1)))
            if np.all(point <= ref) and not dominated:
                kept = front[~np.all(point <= front, axis=1)]
                front = np.vstack([kept, point])
                hv = float(compute_hypervolume(front, ref, assume_pareto=True))
        history.append((t, hv))
    return history


def hypervolume_sections(study: optuna.Study) -> list[ReportSection]:
    """Hypervolume over trial numbers and over wall-clock time since the first start."""
    names = metric_names(study)
    _, ref, labels = hypervolume_space(study)
    space = ", ".join(labels)
    refs = ", ".join(
        f"{n}={_fmt_ref(n, r, d)}" for n, r, d in zip(names, ref, study.directions, strict=True)
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
    seconds = [(_completed_at(t) - start).total_seconds() if start else 0.0 for t, _ in by_time]
    scale, unit = _time_unit(max(seconds, default=0.0))
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


def _history_section(study: optuna.Study, i: int, name: str) -> ReportSection:
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
            best = _running_best(study, i)
            fig.add_trace(go.Scatter(x=best[0], y=best[1], mode="lines", name=f"best {name}"))
        else:
            fig = optuna.visualization.plot_optimization_history(study, target_name=name)
    fig.update_layout(title=title, yaxis_type=_axis_type(name, complete, i))
    return ReportSection(title, figure=fig)


def _importance_section(study: optuna.Study, i: int, name: str) -> ReportSection:
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
        if not t.user_attrs.get("val_accuracy"):
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
        "pruned": ("pruned", {"color": _PRUNED_COLOR, "width": 1, "dash": "dash"}),
        "complete": ("complete", {"color": _OTHER_COLOR, "width": 1}),
        "best": (best_label, {"color": _PARETO_COLOR, "width": 2.5}),
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
            curve = t.user_attrs["val_accuracy"]
            xs += [*range(1, len(curve) + 1), None]
            ys += [*curve, None]
            text += [_curve_label(t)] * len(curve) + [None]
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
                x=[len(t.user_attrs["val_accuracy"]) for t in ends],
                y=[t.user_attrs["val_accuracy"][-1] for t in ends],
                text=[_curve_label(t) for t in ends],
                mode="markers",
                marker={"symbol": "x", "color": _PRUNED_COLOR, "size": 8},
                name="pruned here",
                hovertemplate="%{text}<br>pruned after epoch %{x}<extra></extra>",
            )
        )
    longest = max(len(t.user_attrs["val_accuracy"]) for g in groups.values() for t in g)
    fig.update_layout(
        title="Validation accuracy per epoch",
        xaxis={"title": "epoch", "tick0": 1, "dtick": max(1, math.ceil(longest / 15))},
        yaxis_title="validation accuracy",
        hovermode="closest",
    )
    counts = ", ".join(f"{len(v)} {styles[k][0]}" for k, v in groups.items() if v)
    return ReportSection(title, figure=fig, note=f"{counts}. Pruned trials are dashed grey.")


def _best_table_section(study: optuna.Study) -> ReportSection:
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


# --------------------------------------------------------------------------- HTML


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; margin-top: 0; }
section { margin-top: 2.5em; } .note { color: #444; }
.plot { width: 100%; height: 520px; }
table { border-collapse: collapse; font-size: 0.85em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; white-space: nowrap; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

_DRAW = """
document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  Plotly.newPlot(el.dataset.plot, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""


def render_html(study: optuna.Study, sections: Sequence[ReportSection]) -> str:
    """One self-contained HTML page: plotly.js inline once, each figure as JSON in a
    ``<script type="application/json" data-plot=...>`` element, no external resources."""
    from plotly.offline import get_plotlyjs

    names = metric_names(study)
    directions = ", ".join(
        f"{'maximize' if d == StudyDirection.MAXIMIZE else 'minimize'} {n}"
        for n, d in zip(names, study.directions, strict=True)
    )
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(study.study_name)}: nas-study report</title>",
        f"<style>{_STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(study.study_name)}</h1>",
        f'<p class="meta">{html.escape(directions)} &middot; {html.escape(_state_counts(study))}'
        f" &middot; generated {html.escape(generated)} by nas-study</p>",
    ]
    for k, s in enumerate(sections):
        parts.append(f'<section id="section-{k}"><h2>{html.escape(s.title)}</h2>')
        if s.note:
            parts.append(f'<p class="note">{html.escape(s.note)}</p>')
        if s.figure is not None:
            # "<" only ever occurs inside JSON strings, where \u003c means the same, so no
            # value (an architecture summary, a user attribute) can close the script element.
            data = s.figure.to_json().replace("<", "\\u003c")
            parts.append(f'<div class="plot" id="plot-{k}"></div>')
            parts.append(f'<script type="application/json" data-plot="plot-{k}">{data}</script>')
        if s.rows:
            parts.append(_html_table(s.rows))
        parts.append("</section>")
    parts += [f"<script>{_DRAW}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{html.escape(_cell(v))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------- helpers


def _require_complete(study: optuna.Study) -> None:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyRunError(
            f"study {study.study_name!r} has no complete trials yet ({_state_counts(study)}); "
            "nothing to report"
        )


def _feasible(t: FrozenTrial) -> bool:
    return all(c <= 0.0 for c in t.constraints.values())


def _better_is_low(study: optuna.Study, i: int) -> bool:
    return study.directions[i] == StudyDirection.MINIMIZE


def _axis_type(name: str, trials: Sequence[FrozenTrial], i: int) -> str:
    if name in COUNT_OBJECTIVES and trials and all(t.values[i] > 0 for t in trials):
        return "log"
    return "linear"


def _axis_title(study: optuna.Study, i: int) -> str:
    arrow = "higher is better" if not _better_is_low(study, i) else "lower is better"
    return f"{metric_names(study)[i]} ({arrow})"


def _running_best(study: optuna.Study, i: int) -> tuple[list[int], list[float]]:
    pick = min if _better_is_low(study, i) else max
    xs, ys = [], []
    best: float | None = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not _feasible(t):
            continue
        best = t.values[i] if best is None else pick(best, t.values[i])
        xs.append(t.number)
        ys.append(best)
    return xs, ys


def _completed_at(t: FrozenTrial) -> datetime.datetime:
    return t.datetime_complete or t.datetime_start or datetime.datetime.min


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 3 * 3600:
        return 3600.0, "hours"
    if seconds >= 3 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _curve_label(t: FrozenTrial) -> str:
    label = f"trial {t.number}"
    if t.state == TrialState.PRUNED:
        by = t.user_attrs.get("pruned_by")
        at = t.user_attrs.get("pruned_at_epoch", len(t.user_attrs.get("val_accuracy", [])))
        label += f" (pruned at epoch {at}{f' by {by}' if by else ''})"
    arch = t.user_attrs.get("arch")
    return f"{label}<br>{arch}" if arch else label


def _fmt_ref(name: str, ref: float, direction: StudyDirection) -> str:
    value = (-ref if direction == StudyDirection.MAXIMIZE else ref) + 0.0  # no "-0"
    if name in COUNT_OBJECTIVES and math.isfinite(value) and direction == StudyDirection.MINIMIZE:
        raw = 10**value
        return (f"{raw:,.0f}" if raw >= 100 else f"{raw:.3g}") + f" (log10 {value:.3g})"
    return f"{value:.4g}"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.4g}"
    return str(v)


def _state_counts(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    shown = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
    return f"{len(trials)} trials" + (f": {shown}" if shown else "")


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a study")
    p.add_argument("study", help="study name in the storage, or a catalog name or study file")
    storage_arg(p)
    p.add_argument(
        "--out", metavar="PATH", help="file to write (default: <study name>-report.<format>)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="html",
        help="html: the whole report, opens offline (default); png: the Pareto front, or the "
        "optimization history of a single-objective study (needs kaleido)",
    )


def command(args: argparse.Namespace, url: str) -> int:
    study = load_named_study(open_storage(url, heartbeat=None, create=False), args.study, url)
    path = write_report(study, args.out, args.format)
    print(f"report of {study.study_name!r} written to {path}")
    return 0
