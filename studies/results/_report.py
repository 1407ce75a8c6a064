"""``nas-study report``: one self-contained HTML report of a study.

The report holds, for a multi-objective study, the Pareto front of the first two
objectives, the hypervolume over trials and over wall-clock time, the optimization history
and the parameter importances of each objective, every trial's validation-accuracy curve
and a table of the Pareto-optimal trials; for a single-objective study, all of these but
the Pareto front and the hypervolume. plotly.js is embedded once, so the file opens
offline.
"""

from __future__ import annotations

import datetime
import html
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection

from studies.errors import StudyRunError
from studies.results._hypervolume import hypervolume_sections
from studies.results._report_figures import (
    best_table_section,
    history_section,
    importance_section,
    learning_curves_section,
    pareto_section,
)
from studies.results._report_parts import ReportSection, cell, require_complete, state_counts
from studies.results._tables import metric_names

FORMATS = ("html", "png")


PNG_HINT = 'pip install "nas-study[png]"'


def build_report(study: optuna.Study) -> list[ReportSection]:
    """The sections of ``study``'s report, in order.

    Raises:
        StudyRunError: the study has no complete trial.
    """
    return _sections(snapshot(study))


def _sections(study: optuna.Study) -> list[ReportSection]:
    require_complete(study)
    names = metric_names(study)
    sections: list[ReportSection] = []
    if len(study.directions) > 1:
        sections.append(pareto_section(study))
        sections.extend(hypervolume_sections(study))
    for i, name in enumerate(names):
        sections.append(history_section(study, i, name))
    for i, name in enumerate(names):
        sections.append(importance_section(study, i, name))
    sections.append(learning_curves_section(study))
    sections.append(best_table_section(study))
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
        require_complete(study)
        if len(study.directions) > 1:
            figure = pareto_section(study).figure
        else:
            figure = history_section(study, 0, metric_names(study)[0]).figure
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
        f'<p class="meta">{html.escape(directions)} &middot; {html.escape(state_counts(study))}'
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
            cells.append(f"<td{cls}>{html.escape(cell(v))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------- helpers


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- CLI
