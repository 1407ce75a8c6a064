"""The commands that only read stay cheap: ``--help``, ``catalog``, ``studies``, ``best``,
``report`` and ``dashboard`` never import torch, torchvision or the worker loop, and
neither does ``import studies.results``.

Each runs in a fresh interpreter against a real SQLite study, which then lists what it
loaded; importing torch alone takes seconds, more than the whole command should.
"""

from __future__ import annotations

import datetime
import http.client
import importlib
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

import nas_objectives
import studies

#: What a read-only command must never load.
HEAVY = ("torch", "torchvision", "studies.run._worker")

#: Runs ``studies.cli.main`` on its arguments, then prints its exit status and which of
#: ``HEAVY`` it loaded as the last line of stdout.
RUN_MAIN = f"""
import json, sys
from studies.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help
    rc = exc.code
print(json.dumps({{"rc": rc, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
#: Runs the statement in ``sys.argv[1]``, then prints which of ``HEAVY`` it loaded.
RUN_STATEMENT = f"""
import json, sys
exec(sys.argv[1])
print(json.dumps({{"rc": 0, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
STUDY = "cheap"


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real SQLite study of two objectives: six complete trials, as workers store them."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cheap')}/studies.db"
    study = optuna.create_study(study_name=STUDY, storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "params"])
    t0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
    for i in range(6):
        acc = 0.5 + 0.08 * i
        trial = create_trial(
            params={"lr": 1e-3 * (i + 1)},
            distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
            values=[acc, 1000.0 * (i + 1)],
            user_attrs={"arch": f"64-{8 * (i + 1)}-10 relu", "val_accuracy": [acc / 2, acc]},
        )
        trial.datetime_start = t0 + datetime.timedelta(seconds=10 * i)
        trial.datetime_complete = t0 + datetime.timedelta(seconds=10 * i + 5)
        study.add_trial(trial)
    return url


def _child_env() -> dict[str, str]:
    return {**os.environ, "CI": "true"}


def _loaded(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The heavy modules the child reported, after checking it exited 0."""
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, proc.stdout + proc.stderr
    loaded: list[str] = report["loaded"]
    return loaded


def _main(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_MAIN, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_child_env(),
        timeout=300,
    )


def _statement(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_STATEMENT, code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_child_env(),
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["catalog"],
        ["studies", "--storage", "{url}"],
        ["best", STUDY, "--storage", "{url}"],
        ["best", STUDY, "--storage", "{url}", "--format", "json"],
    ],
    ids=lambda argv: " ".join(a for a in argv if a != "{url}" and "storage" not in a),
)
def test_read_only_command_imports_no_torch(
    argv: list[str], study_url: str, tmp_path: Path
) -> None:
    proc = _main([a.replace("{url}", study_url) for a in argv], tmp_path)
    assert _loaded(proc) == []
    assert proc.stdout.strip()  # it did its job: help, the catalog, a table


def test_report_writes_html_without_torch(study_url: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = _main(["report", STUDY, "--storage", study_url, "--out", str(out)], tmp_path)
    assert _loaded(proc) == []
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") or text.lower().startswith("<html")
    assert "Pareto front" in text and "Hypervolume over trials" in text


def test_dashboard_serves_without_torch(study_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_MAIN, "dashboard", "--storage", study_url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_child_env(),
    )
    try:
        assert proc.stdout is not None
        link = proc.stdout.readline().strip()  # blocks until it listens (or exits)
        assert link, proc.communicate(timeout=30)
        port = urlsplit(link).port
        assert port
        for path in ("/dashboard", "/api/studies"):  # the page and the studies it lists
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            assert resp.status == 200, (path, body[:200])
        assert STUDY.encode() in body
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"rc": 0, "loaded": []}


@pytest.mark.parametrize("module", ["studies.results", "studies", "nas_objectives"])
def test_import_loads_no_torch(module: str, tmp_path: Path) -> None:
    assert _loaded(_statement(f"import {module}", tmp_path)) == []


def test_a_name_that_needs_torch_loads_it_on_first_use(tmp_path: Path) -> None:
    # The control for the tests above: the check sees torch when it is imported.
    code = "import nas_objectives; nas_objectives.load_dataset"
    assert _loaded(_statement(code, tmp_path)) == ["torch"]


@pytest.mark.parametrize("package", [nas_objectives, studies], ids=lambda p: p.__name__)
def test_every_public_name_resolves(package: types.ModuleType) -> None:
    names: list[str] = package.__all__
    assert len(names) == len(set(names))
    lazy: dict[str, str] = package._LAZY
    assert set(lazy) <= set(names)
    # Every module defining a lazy name is imported first: a name shared with its own
    # module (``nas_objectives.train``) must still answer the function, not the module.
    for module in set(lazy.values()):
        importlib.import_module(module)
    for name in names:
        assert name in dir(package)
        value = getattr(package, name)
        assert value is not None, name
        if name in lazy:
            assert value is getattr(sys.modules[lazy[name]], name), name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018
