"""The tabular benchmark (``benchmarks/tabular/``): the shipped table and its study file,
read as the data files they are, and the builder and the harness run as their commands."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from nas_objectives import suggest
from studies import load_spec, resolve_spec
from tests.benchmark_runs import REPO_ROOT, run_benchmark

TABULAR = REPO_ROOT / "benchmarks" / "tabular"
TABLE_PATH = TABULAR / "digits-mlp-table.csv.gz"
SETTINGS_PATH = TABULAR / "digits-mlp-table.json"
SPEC_PATH = TABULAR / "digits-mlp-table.toml"
#: The study file's data: 8x8 digits, 10 classes.
INPUT_SHAPE, NUM_CLASSES = (1, 8, 8), 10

Rows = dict[str, list[dict[str, str]]]


def _read_rows(path: Path) -> Rows:
    """The table's rows by configuration (the JSON of its parameters), in seed order."""
    rows: Rows = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["config"], []).append(r)
    for rs in rows.values():
        rs.sort(key=lambda r: int(r["seed"]))
    return rows


def _curve(row: dict[str, str]) -> list[float]:
    return [float(a) for a in row["val_acc"].split(";") if a]


def _accuracy(rs: list[dict[str, str]]) -> float:
    """A configuration's accuracy: the last epoch's, averaged over the seeds."""
    return float(np.mean([_curve(r)[-1] for r in rs]))


@pytest.fixture(scope="module")
def rows() -> Rows:
    return _read_rows(TABLE_PATH)


def _usable(rows: Rows) -> Rows:
    """Configurations whose every seed trained to the end."""
    return {k: rs for k, rs in rows.items() if all(r["status"] == "ok" for r in rs)}


def test_table_holds_every_configuration_of_the_study_file_and_no_other(rows: Rows) -> None:
    # Optuna's brute-force sampler walks the study file's whole space through the project's
    # own suggest(): the configurations it meets are exactly the table's.
    spec = load_spec(SPEC_PATH)
    seen: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        suggest(trial, spec.objective.space, INPUT_SHAPE, NUM_CLASSES)
        seen.append(json.dumps(trial.params, sort_keys=True))
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    study.optimize(objective, n_trials=5000)  # stops by itself once the space is exhausted
    assert len(seen) == len(set(seen)) >= 1000
    assert set(seen) == set(rows)


def test_table_has_every_seed_and_epoch_and_its_settings_say_so(rows: Rows) -> None:
    spec = load_spec(SPEC_PATH)
    settings = json.loads(SETTINGS_PATH.read_text())
    epochs = spec.objective.epochs
    assert settings["epochs"] == epochs and settings["study_file"] == SPEC_PATH.name
    assert settings["configurations"] == len(rows)
    assert len(settings["seeds"]) >= 2
    assert settings["rows"] == len(rows) * len(settings["seeds"])
    for key, rs in rows.items():
        assert [int(r["seed"]) for r in rs] == settings["seeds"], key
        assert len({(r["params"], r["flops"]) for r in rs}) == 1, key  # one architecture
        assert int(rs[0]["params"]) > 0 and int(rs[0]["flops"]) > 0
        for r in rs:
            if r["status"] == "ok":
                assert len(_curve(r)) == epochs, key
    # Nearly all configurations trained to the end; accuracies are proportions.
    usable = _usable(rows)
    assert len(usable) >= 0.95 * len(rows)
    accs = np.array([_accuracy(rs) for rs in usable.values()])
    assert ((accs >= 0) & (accs <= 1)).all()
    assert accs.max() > 0.95  # good configurations exist ...
    assert accs.min() < 0.5  # ... and bad ones


def test_retraining_a_configuration_reproduces_the_stored_row(rows: Rows, tmp_path: Path) -> None:
    out = tmp_path / "one.csv.gz"
    args = ("--limit", "1", "--seeds", "1", "--out", str(out))
    settings, _ = run_benchmark(
        "tabular.build_table", *args, report=tmp_path / "one.json", timeout=300
    )
    assert settings["configurations"] == 1 and settings["seeds"] == [1]
    ((key, (row,)),) = _read_rows(out).items()
    (stored,) = [r for r in rows[key] if r["seed"] == "1"]
    # Same seed, one CPU thread: the curve is reproduced to the stored 6 decimals.
    assert _curve(row) == pytest.approx(_curve(stored), abs=1e-6)
    assert (row["params"], row["flops"], row["arch"]) == (
        stored["params"],
        stored["flops"],
        stored["arch"],
    )


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small run of the harness, and a second with the same arguments."""
    tmp = tmp_path_factory.mktemp("tabular")
    out, plot, runs = tmp / "tabular.json", tmp / "tabular.png", tmp / "runs"
    argv = ["--strategies", "random", "tpe", "--seeds", "2", "--trials", "25"]
    argv += ["--prune-strategies", "tpe", "--runs-dir", str(runs)]
    argv += ["--out", str(out), "--plot", str(plot)]
    report, _ = run_benchmark("tabular.run_strategies", *argv, report=out, timeout=600)
    stored = {p: p.stat().st_mtime_ns for p in runs.iterdir()}
    again, _ = run_benchmark("tabular.run_strategies", *argv, report=out, timeout=600)
    return {
        "argv": argv,
        "report": report,
        "again": again,
        "plot": plot,
        "runs_before": stored,
        "runs_after": {p: p.stat().st_mtime_ns for p in runs.iterdir()},
    }


def test_harness_writes_report_with_documented_keys(harness: dict[str, Any], rows: Rows) -> None:
    report = harness["report"]
    assert report["command"] == " ".join(
        ["python", "-m", "benchmarks.tabular.run_strategies", *harness["argv"]]
    )
    assert report["table"]["configurations"] == len(rows)
    assert report["settings"]["strategies"]["tpe"] == {
        "sampler": "tpe",
        **resolve_spec("digits-mlp").sampler.options,
    }
    for name in ("random", "tpe"):
        mo = report["multi_objective"][name]
        assert mo["runs"] == 2
        hv = mo["relative_hv"]["25"]
        assert 0 < hv["q25"] <= hv["median"] <= hv["q75"] <= 1
        assert set(mo["trials_to"]) == {"0.95", "0.99"}
        to95 = mo["trials_to"]["0.95"]
        assert to95["reached"] + to95["not_reached"] == 2
        assert len(mo["curve"]["median"]) == 25
        strict = mo["strict"]["relative_hv"]["25"]
        # The strict reference point (median configuration's accuracy) scores lower.
        assert 0 < strict["median"] <= hv["median"]
        so = report["single_objective"][name]
        assert 0 <= so["regret"]["25"]["median"] < 1
    pruning = report["pruning"]["tpe"]
    for key in ("relative_hv_at_epochs", "strict_relative_hv_at_epochs"):
        for curve in pruning[key].values():
            assert 0 < curve["300"]["median"] <= 1
    assert pruning["pruned_per_run"]["median"] > 0
    assert "goals" not in report  # they are judged at 100 trials
    assert harness["plot"].stat().st_size > 1000


def test_a_second_run_reads_the_stored_runs_instead_of_running_them(
    harness: dict[str, Any],
) -> None:
    assert harness["runs_before"] and harness["runs_after"] == harness["runs_before"]
    assert harness["again"]["multi_objective"] == harness["report"]["multi_objective"]


def test_the_reported_true_front_is_the_tables_non_dominated_set(
    harness: dict[str, Any], rows: Rows
) -> None:
    # (mean accuracy, params) of every usable configuration, from the shipped file itself.
    points = [(rs[0]["arch"], _accuracy(rs), int(rs[0]["params"])) for rs in _usable(rows).values()]
    front = {
        (arch, round(acc, 5), params)
        for arch, acc, params in points
        if not any(a >= acc and p <= params and (a > acc or p < params) for _, a, p in points)
    }
    table = harness["report"]["table"]
    reported = {(e["arch"], e["accuracy"], e["params"]) for e in table["true_front"]}
    assert reported == front
    assert table["true_hv"] > table["strict_true_hv"] > 0


def test_shipped_table_is_small_enough_to_ship() -> None:
    assert TABLE_PATH.exists() and TABLE_PATH.stat().st_size < 5_000_000
