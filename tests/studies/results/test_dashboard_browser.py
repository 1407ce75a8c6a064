"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): the study is
listed, the Pareto front of a two-objective study is drawn with every trial, and the token
guard holds. A screenshot of the Pareto front is kept as a test artifact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from storage import open_storage
from studies.results import DashboardServer, make_dashboard_server

TOKEN = "browser-Token_0123456789abcdef"
STUDY = "digits-mlp-dash"
#: Per wait: generous for a loaded 2-core machine, still far inside the test's ~30 s.
WAIT_MS = 20_000

# (accuracy, params): four on the Pareto front, four dominated.
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

DISTRIBUTIONS = {
    "n_layers": IntDistribution(1, 3),
    "units_l0": IntDistribution(4, 256, log=True),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
}


@pytest.fixture
def study(sqlite_url: str) -> optuna.Study:
    study = optuna.create_study(
        study_name=STUDY,
        storage=open_storage(sqlite_url, heartbeat=None),
        directions=["maximize", "minimize"],
    )
    study.set_metric_names(["accuracy", "params"])
    for i, (accuracy, params) in enumerate(VALUES):
        study.add_trial(
            optuna.trial.create_trial(
                params={
                    "n_layers": 1 + i % 3,
                    "units_l0": 4 + 30 * i,
                    "optimizer": "adam" if i % 2 else "sgd",
                    "lr": 1e-3 * (i + 1),
                },
                distributions=DISTRIBUTIONS,
                values=[accuracy, params],
                user_attrs={"params": int(params), "arch": f"64-{4 + 30 * i}-10"},
            )
        )
    return study


@pytest.fixture
def server(study: optuna.Study, sqlite_url: str) -> Iterator[DashboardServer]:
    server = make_dashboard_server(open_storage(sqlite_url, heartbeat=None), port=0, token=TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


# Every point plotly drew in the Pareto-front div, by trace name, from the graph's own data.
_PARETO_POINTS = """() => {
    const g = document.getElementById('graph-pareto-front');
    if (!g || !Array.isArray(g.data)) return null;
    return g.data.map(t => ({
        name: (t.hovertemplate || '').replace(/^.*<extra>(.*)<\\/extra>$/, '$1'),
        x: Array.from(t.x || []),
        y: Array.from(t.y || []),
    }));
}"""


def _points(trace: dict[str, Any]) -> list[tuple[float, float]]:
    return list(zip(trace["x"], trace["y"], strict=True))


def test_dashboard_in_chromium(
    browser: Any, server: DashboardServer, study: optuna.Study, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)

    # (3) No token: refused, and nothing of the dashboard comes back.
    refused = page.goto(server.url)
    assert refused is not None and refused.status == 401
    assert "Optuna" not in page.content()

    # The token link: a cookie, then the same page without the token in its address.
    signed_in = page.goto(server.link)
    assert signed_in is not None and signed_in.status == 200
    assert "token=" not in page.url and page.url.endswith("/dashboard")
    cookies = page.context.cookies()
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]

    # (1) The study is listed on the top page.
    listed = page.get_by_role("link").filter(has_text=STUDY)
    expect(listed).to_have_attribute("href", f"/dashboard/studies/{study._study_id}")
    expect(listed).to_contain_text("MAXIMIZE, MINIMIZE")

    # (2) The study's History page draws the Pareto front of a multi-objective study.
    listed.click()
    page.wait_for_url(f"**/dashboard/studies/{study._study_id}")
    page.wait_for_function(
        f"() => {{ const t = ({_PARETO_POINTS})(); "
        f"return t !== null && t.reduce((n, s) => n + s.x.length, 0) === {len(VALUES)}; }}"
    )
    traces = page.evaluate(_PARETO_POINTS)
    drawn = sorted(p for t in traces for p in _points(t))
    assert drawn == sorted(VALUES)
    best = {p for t in traces if t["name"] == "Best Trial" for p in _points(t)}
    assert best == {tuple(t.values) for t in study.best_trials} == set(VALUES[:4])
    # ...and drew them: one SVG marker per trial inside the plot.
    graph = page.locator("#graph-pareto-front")
    expect(graph.locator(".scatterlayer path.point")).to_have_count(len(VALUES))
    expect(graph.locator(".xtick").first).to_be_attached()

    shot = artifacts_dir / "dashboard-pareto.png"
    shot.unlink(missing_ok=True)
    # The whole card: the plot with its "Objective X/Y" choices, which name the metrics.
    card = page.locator(".MuiCard-root").filter(has=graph)
    expect(card).to_contain_text("Pareto Front")
    expect(card).to_contain_text("accuracy")  # the metric names pick the axes
    expect(card).to_contain_text("params")
    card.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000

    # The cookie carries every later request; a fresh context without it is refused again.
    api = page.request.get(server.url.replace("/dashboard", "/api/studies"))
    assert api.status == 200 and STUDY in api.text()
    other = browser.new_context()
    try:
        assert other.request.get(server.url.replace("/dashboard", "/api/studies")).status == 401
    finally:
        other.close()
