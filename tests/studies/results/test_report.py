"""``nas-study report``: the HTML report read back (figures from the builder, and the JSON
embedded in the file), the hypervolume against a hand computation, the single-objective
report, the one-line errors, and the page drawn by a real headless Chromium, offline."""

from __future__ import annotations

import datetime
import html
import itertools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from plotly.offline import get_plotlyjs

from storage import open_storage
from studies import cli
from studies.results import (
    REFERENCE_MARGIN,
    ReportSection,
    build_report,
    hypervolume_history,
    hypervolume_space,
    write_report,
)

DISTRIBUTIONS = {
    "n_layers": IntDistribution(1, 3),
    "units_l0": IntDistribution(4, 256, log=True),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
}
# (accuracy, params): trials 0-3 are the Pareto front, 4-7 are dominated.
VALUES = [
    (0.98, 26000.0),
    (0.96, 5000.0),
    (0.93, 2100.0),
    (0.88, 310.0),
    (0.95, 27000.0),
    (0.90, 6000.0),
    (0.85, 2500.0),
    (0.80, 900.0),
]
PARETO = {0, 1, 2, 3}
INFEASIBLE = 8  # dominates everything, but is over its params constraint
PRUNED = 9
FAILED = 10
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
# Trials finish out of number order, as with several workers: trial 3 first, trial 0 last.
FINISH_S = [80, 70, 60, 10, 20, 30, 40, 50, 55]


def _params(i: int) -> dict[str, Any]:
    return {
        "n_layers": 1 + i % 3,
        "units_l0": 4 + 20 * i,
        "optimizer": "adam" if i % 2 else "sgd",
        "lr": 1e-3 * (i + 1),
    }


def _trial(i: int, state: TrialState = TrialState.COMPLETE, **kw: Any) -> optuna.trial.FrozenTrial:
    t = create_trial(state=state, params=_params(i), distributions=DISTRIBUTIONS, **kw)
    t.datetime_start = T0 + datetime.timedelta(seconds=i)
    if state != TrialState.RUNNING:
        t.datetime_complete = T0 + datetime.timedelta(seconds=FINISH_S[i] if i < 9 else 90 + i)
    return t


def _curve(acc: float, epochs: int = 3) -> list[float]:
    return [acc * (k + 1) / epochs for k in range(epochs)]


def make_mo_study(url: str, name: str) -> optuna.Study:
    """Eight complete trials (four Pareto-optimal), one infeasible, one pruned, one failed."""
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(url, heartbeat=None),
        directions=["maximize", "minimize"],
    )
    study.set_metric_names(["accuracy", "params"])
    for i, (acc, params) in enumerate(VALUES):
        attrs = {"arch": f"64-{4 + 20 * i}-10 relu", "val_accuracy": _curve(acc), "epochs_run": 3}
        study.add_trial(_trial(i, values=[acc, params], user_attrs=attrs))
    study.add_trial(
        _trial(
            INFEASIBLE,
            values=[0.99, 200.0],
            constraints={"max_params": 50.0},
            user_attrs={"arch": "64-2-10 relu", "val_accuracy": _curve(0.99)},
        )
    )
    study.add_trial(
        _trial(
            PRUNED,
            state=TrialState.PRUNED,
            user_attrs={
                "arch": "64-9-10 relu",
                "val_accuracy": [0.2, 0.25],
                "pruned_at_epoch": 2,
                "pruned_by": "ParetoRankPruner",
                "epochs_run": 2,
            },
        )
    )
    study.add_trial(_trial(FAILED, state=TrialState.FAIL, user_attrs={"fail_reason": "NaN loss"}))
    return study


@pytest.fixture
def mo_study(sqlite_url: str) -> optuna.Study:
    return make_mo_study(sqlite_url, "mo")


def _section(sections: list[ReportSection], title: str) -> ReportSection:
    return next(s for s in sections if s.title == title)


def _trace(fig: Any, name: str) -> Any:
    return next(t for t in fig["data"] if t.get("name") == name)


def _embedded_figures(text: str) -> dict[str, dict[str, Any]]:
    """The figures in a report file, by title, from its JSON script elements."""
    figures = {}
    for raw in re.findall(
        r'<script type="application/json" data-plot="[^"]+">(.*?)</script>', text, re.S
    ):
        fig = json.loads(raw)
        figures[fig["layout"]["title"]["text"]] = fig
    return figures


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2, and return its one stderr line."""
    capsys.readouterr()  # drop what the test's set-up logged
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nas-study: error: "), err
    assert "Traceback" not in err
    return lines[0]


def expected_hypervolume(points: list[tuple[float, float]], ref_log_params: float) -> float:
    """Area dominated in (accuracy, log10 params) space down to accuracy 0, by hand: between
    consecutive front points (by params), the best accuracy so far times the log width."""
    front = sorted(points, key=lambda p: p[1])
    area, best = 0.0, 0.0
    bounds = [math.log10(p) for _, p in front] + [ref_log_params]
    for k, (acc, _) in enumerate(front):
        best = max(best, acc)
        area += best * (bounds[k + 1] - bounds[k])
    return area


def test_pareto_plot_holds_exactly_the_pareto_trials(mo_study: optuna.Study) -> None:
    sections = build_report(mo_study)
    assert [s.title for s in sections] == [
        "Pareto front",
        "Hypervolume over trials",
        "Hypervolume over wall-clock time",
        "Optimization history: accuracy",
        "Optimization history: params",
        "Parameter importances: accuracy",
        "Parameter importances: params",
        "Learning curves",
        "Pareto-optimal trials",
    ]
    fig = _section(sections, "Pareto front").figure
    assert fig is not None
    front = _trace(fig.to_dict(), "Pareto-optimal")
    assert {c[0] for c in front["customdata"]} == PARETO
    by_number = {
        c[0]: (y, x, c[1])
        for c, x, y in zip(front["customdata"], front["x"], front["y"], strict=True)
    }
    for n in PARETO:
        assert by_number[n] == (VALUES[n][0], VALUES[n][1], f"64-{4 + 20 * n}-10 relu")
    others = _trace(fig.to_dict(), "other trials")
    assert sorted(c[0] for c in others["customdata"]) == [4, 5, 6, 7]
    infeasible = _trace(fig.to_dict(), "infeasible (over a constraint)")
    assert [c[0] for c in infeasible["customdata"]] == [INFEASIBLE]
    assert fig.layout.xaxis.type == "log"  # params
    assert fig.layout.yaxis.type == "linear"  # accuracy
    assert "trial %{customdata[0]}" in front["hovertemplate"]

    table = _section(sections, "Pareto-optimal trials").rows
    assert [r["trial"] for r in table] == [0, 1, 2, 3]  # best accuracy first
    assert table[1]["accuracy"] == 0.96 and table[1]["params"] == 5000
    assert table[1]["units_l0"] == 24 and table[1]["optimizer"] == "adam"
    assert table[1]["arch"] == "64-24-10 relu"


def test_hypervolume_matches_a_hand_computation(mo_study: optuna.Study) -> None:
    # Reference: accuracy 0; params 0.1 decade past the largest feasible value (27000).
    ref = math.log10(27000.0) + REFERENCE_MARGIN
    final = expected_hypervolume([VALUES[n] for n in PARETO], ref)

    by_number = hypervolume_history(mo_study, "number")
    assert [t.number for t, _ in by_number] == [*range(8), INFEASIBLE]
    assert by_number[0][1] == pytest.approx(expected_hypervolume([VALUES[0]], ref))
    assert by_number[3][1] == pytest.approx(final)
    assert [hv for _, hv in by_number[3:]] == pytest.approx([final] * 6)  # none adds volume

    by_time = hypervolume_history(mo_study, "time")
    assert [t.number for t, _ in by_time] == [3, 4, 5, 6, 7, INFEASIBLE, 2, 1, 0]
    assert by_time[0][1] == pytest.approx(expected_hypervolume([VALUES[3]], ref))
    assert by_time[-1][1] == pytest.approx(final)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(by_time))

    sections = build_report(mo_study)
    clock = _section(sections, "Hypervolume over wall-clock time").figure
    assert clock is not None
    assert list(clock.data[0].x) == [10, 20, 30, 40, 50, 55, 60, 70, 80]  # seconds since T0
    assert clock.layout.xaxis.title.text == "seconds since the first trial started"
    note = _section(sections, "Hypervolume over trials").note
    assert "(accuracy, log10(params)) space" in note
    assert f"accuracy=0, params={27000 * 10**REFERENCE_MARGIN:,.0f} (" in note


def test_learning_curves_mark_pruned_trials(mo_study: optuna.Study) -> None:
    fig = _section(build_report(mo_study), "Learning curves").figure
    assert fig is not None
    traces = {t.name: t for t in fig.data}
    pruned = traces["pruned"]
    assert pruned.line.dash == "dash"
    assert list(pruned.x) == [1, 2, None] and list(pruned.y) == [0.2, 0.25, None]
    assert "trial 9 (pruned at epoch 2 by ParetoRankPruner)" in pruned.text[0]
    end = traces["pruned here"]
    assert end.marker.symbol == "x" and list(end.x) == [2] and list(end.y) == [0.25]
    for name in ("complete", "Pareto-optimal"):
        assert traces[name].line.dash is None  # solid
    labels = {t.split("<br>")[0] for t in traces["Pareto-optimal"].text if t}
    assert labels == {f"trial {n}" for n in PARETO}
    complete = {t.split("<br>")[0] for t in traces["complete"].text if t}
    assert complete == {f"trial {n}" for n in (4, 5, 6, 7, INFEASIBLE)}


def test_html_is_self_contained(
    storage_url: str, unique_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_mo_study(storage_url, unique_name)
    out = tmp_path / "report.html"
    rc = cli.main(["report", unique_name, "--storage", storage_url, "--out", str(out)])
    assert rc == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")

    bundle = get_plotlyjs()
    assert text.count(bundle) == 1 and text.count("* plotly.js v") == 1  # once for all figures
    # Outside plotly.js (whose attribution links for map tiles are never fetched here), the
    # page names no URL at all: no script, style sheet, font or image from elsewhere.
    page = text.replace(bundle, "")
    assert re.findall(r"<script[^>]*>", page) == ['<script type="text/javascript">'] + [
        f'<script type="application/json" data-plot="plot-{k}">' for k in range(8)
    ] + ["<script>"]
    assert not re.search(r"<link\b|@import|@font-face|url\(", page, re.I)
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", page, re.I)

    figures = _embedded_figures(text)
    assert set(figures) >= {
        "Pareto front: accuracy vs params",
        "Hypervolume over trials",
        "Hypervolume over wall-clock time",
        "Validation accuracy per epoch",
    }
    pareto = figures["Pareto front: accuracy vs params"]
    assert pareto["layout"]["xaxis"]["type"] == "log"
    front = _trace(pareto, "Pareto-optimal")
    assert sorted(c[0] for c in front["customdata"]) == sorted(PARETO)
    assert sorted(zip(front["y"], front["x"], strict=True)) == sorted(VALUES[n] for n in PARETO)
    curves = figures["Validation accuracy per epoch"]
    assert _trace(curves, "pruned")["line"]["dash"] == "dash"
    # The Pareto table is HTML, with every Pareto trial's architecture.
    table = text[text.index("<h2>Pareto-optimal trials</h2>") :]
    for n in PARETO:
        assert f"<td>{html.escape(f'64-{4 + 20 * n}-10 relu')}</td>" in table


def test_single_objective_report(sqlite_url: str, tmp_path: Path) -> None:
    study = optuna.create_study(
        study_name="hpo", storage=open_storage(sqlite_url, heartbeat=None), direction="maximize"
    )
    study.set_metric_names(["accuracy"])
    for i, acc in enumerate([0.7, 0.9, 0.8, 0.6, 0.85, 0.75]):
        study.add_trial(_trial(i, values=[acc], user_attrs={"val_accuracy": _curve(acc)}))
    study.add_trial(
        _trial(
            6,
            state=TrialState.PRUNED,
            user_attrs={"val_accuracy": [0.1], "pruned_at_epoch": 1, "pruned_by": "MedianPruner"},
        )
    )
    sections = build_report(study)
    assert [s.title for s in sections] == [
        "Optimization history",
        "Parameter importances",
        "Learning curves",
        "Best trial",
    ]
    history = sections[0].figure
    assert history is not None
    best_line = next(t for t in history.data if t.name == "Best Value")
    assert list(best_line.y)[:3] == [0.7, 0.9, 0.9] and max(best_line.y) == 0.9
    importances = sections[1].figure
    assert importances is not None
    assert set(importances.data[0].y) == set(DISTRIBUTIONS)
    curves = sections[2].figure
    assert curves is not None
    assert {t.name for t in curves.data} == {"complete", "best", "pruned", "pruned here"}
    assert [r["trial"] for r in sections[3].rows] == [1]

    out = write_report(study, tmp_path / "hpo.html")
    text = out.read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", text) == [s.title for s in sections]
    assert set(_embedded_figures(text)) == {
        "Optimization history",
        "Parameter importances",
        "Validation accuracy per epoch",
    }


def test_too_few_trials_give_notes_not_crashes(sqlite_url: str) -> None:
    study = optuna.create_study(
        storage=open_storage(sqlite_url, heartbeat=None), directions=["maximize", "minimize"]
    )
    study.add_trial(_trial(0, values=[0.9, 1000.0]))
    study.add_trial(_trial(1, values=[0.8, 100.0]))  # no val_accuracy, no metric names
    sections = build_report(study)
    importances = [s for s in sections if s.title.startswith("Parameter importances")]
    assert [s.title for s in importances] == [
        "Parameter importances: value0",
        "Parameter importances: value1",
    ]
    for s in importances:
        assert s.figure is None and "at least 5 complete trials" in s.note
    curves = _section(sections, "Learning curves")
    assert curves.figure is None and "No trial stored" in curves.note
    pareto = _section(sections, "Pareto front").figure
    assert pareto is not None and pareto.layout.xaxis.type == "linear"  # "value1": no count
    # Neither a fraction nor a count: 10% of the observed range past the worst value.
    space = hypervolume_space(study)
    assert space.labels == ["value0", "value1"]
    assert list(space.reference) == pytest.approx([-0.79, 1090.0])


def test_three_objectives(sqlite_url: str) -> None:
    study = optuna.create_study(
        storage=open_storage(sqlite_url, heartbeat=None),
        directions=["maximize", "minimize", "minimize"],
    )
    study.set_metric_names(["accuracy", "params", "latency_ms"])
    study.add_trial(_trial(0, values=[0.9, 1000.0, 2.0]))
    study.add_trial(_trial(1, values=[0.8, 1000.0, 2.0]))  # dominated by trial 0
    study.add_trial(_trial(2, values=[0.5, 100.0, 0.2]))
    history = hypervolume_history(study)
    # Alone, trial 0 spans 0.1 decade past itself in both counts (the others are smaller).
    assert history[0][1] == pytest.approx(0.9 * 0.1 * 0.1)
    assert history[1][1] == history[0][1]
    # Trial 2 adds its box (0.5 x 1.1 x 1.1 decades) less the overlap with trial 0's.
    assert history[2][1] == pytest.approx(0.9 * 0.01 + 0.5 * 1.1 * 1.1 - 0.5 * 0.01)
    pareto = _section(build_report(study), "Pareto front")
    assert pareto.figure is not None and "first two objectives only" in pareto.note
    front = _trace(pareto.figure.to_dict(), "Pareto-optimal")
    assert sorted(c[0] for c in front["customdata"]) == [0, 2]
    assert front["mode"] == "markers"  # no staircase for a projection


def test_no_complete_trials_is_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = optuna.create_study(
        study_name="empty", storage=open_storage(sqlite_url, heartbeat=None), direction="maximize"
    )
    study.add_trial(_trial(0, state=TrialState.PRUNED))
    study.add_trial(_trial(1, state=TrialState.FAIL))
    out = tmp_path / "r.html"
    line = _fails(["report", "empty", "--storage", sqlite_url, "--out", str(out)], capsys)
    assert "'empty' has no complete trials yet (2 trials: 1 pruned, 1 fail)" in line
    assert not out.exists()


def test_missing_study_is_one_line(
    mo_study: optuna.Study, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _fails(["report", "nope", "--storage", sqlite_url], capsys)
    assert "no study 'nope'" in line and "studies there: mo" in line


def test_unwritable_out_is_one_line(
    mo_study: optuna.Study, sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_dir = tmp_path / "no-such-dir" / "r.html"
    line = _fails(["report", "mo", "--storage", sqlite_url, "--out", str(missing_dir)], capsys)
    assert line.endswith(f"cannot write the report to {missing_dir}: No such file or directory")
    line = _fails(["report", "mo", "--storage", sqlite_url, "--out", str(tmp_path)], capsys)
    assert line.endswith(f"cannot write the report to {tmp_path}: Is a directory")


def test_png_format(
    mo_study: optuna.Study, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kaleido comes with the test extra and renders with Debian's Chromium.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "mo", "--storage", sqlite_url, "--format", "png"]) == 0
    assert (tmp_path / "mo-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_format_without_kaleido(
    mo_study: optuna.Study,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if not installed: import fails
    line = _fails(["report", "mo", "--storage", sqlite_url, "--format", "png"], capsys)
    assert 'needs kaleido, which is not installed: pip install "nas-study[png]"' in line
    assert not (tmp_path / "mo-report.png").exists()


def test_run_then_report_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/e2e.db"
    monkeypatch.chdir(tmp_path)
    args = ["digits-mlp", "--n-trials", "6", "--epochs", "2", "--storage", url]
    assert cli.main(["run", *args]) == 0
    assert cli.main(["report", "digits-mlp", "--storage", url]) == 0  # default --out
    text = (tmp_path / "digits-mlp-report.html").read_text(encoding="utf-8")

    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url, heartbeat=None))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    figures = _embedded_figures(text)
    front = _trace(figures["Pareto front: accuracy vs params"], "Pareto-optimal")
    assert sorted(c[0] for c in front["customdata"]) == sorted(t.number for t in study.best_trials)
    arch = {t.number: t.user_attrs["arch"] for t in complete}
    assert all(arch[c[0]] == c[1] for c in front["customdata"])
    curves = figures["Validation accuracy per epoch"]
    drawn = [
        y for t in curves["data"] if t["name"] in ("complete", "Pareto-optimal") for y in t["y"]
    ]
    assert len([y for y in drawn if y is not None]) == 2 * len(complete)  # 2 epochs each
    hv = figures["Hypervolume over trials"]["data"][0]
    assert len(hv["x"]) == len(complete) and hv["y"][-1] > 0


def test_report_draws_offline_in_chromium(
    mo_study: optuna.Study, tmp_path: Path, browser: Any, artifacts_dir: Path
) -> None:
    out = write_report(mo_study, tmp_path / "report.html")
    page = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def only_the_file(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:  # offline: anything else would be a leak
            requests.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(out.as_uri())
    n_plots = len(_embedded_figures(out.read_text(encoding="utf-8")))
    page.wait_for_function(
        f"document.querySelectorAll('.plot .main-svg').length >= {n_plots}", timeout=30_000
    )
    drawn = page.evaluate(
        """() => Array.from(document.querySelectorAll('.plot')).map(d => ({
            title: d.layout && d.layout.title && d.layout.title.text,
            traces: (d.data || []).map(t => ({
                name: t.name, n: (t.customdata || []).map(c => c[0]),
            })),
        }))"""
    )
    assert len(drawn) == n_plots
    pareto = next(p for p in drawn if p["title"] == "Pareto front: accuracy vs params")
    front = next(t for t in pareto["traces"] if t["name"] == "Pareto-optimal")
    assert sorted(front["n"]) == sorted(PARETO)
    assert requests == [] and errors == []
    # A picture of the report, kept as a test artifact.
    shot = artifacts_dir / "report.png"
    page.set_viewport_size({"width": 1200, "height": 900})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
