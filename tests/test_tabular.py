"""The tabular benchmark (benchmarks/tabular/): the shipped table, its study file, the harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from benchmarks.tabular import run_strategies
from benchmarks.tabular._grid import config_key, enumerate_grid
from benchmarks.tabular._table import SPEC_PATH, TABLE_PATH, Table, hypervolume
from benchmarks.tabular.build_table import train_one
from nas_objectives import suggest
from studies import build_sampler, load_spec


@pytest.fixture(scope="module")
def table() -> Table:
    return Table.load()


def test_table_covers_every_configuration_of_the_study_file_and_every_seed(table: Table) -> None:
    spec = load_spec(SPEC_PATH)
    grid = enumerate_grid(spec.objective.space, (1, 8, 8), 10)
    assert len(grid) >= 1000
    assert {config_key(p) for p in grid} == set(table.entries)
    assert len(table.seeds) >= 2
    assert table.settings["seeds"] == list(table.seeds)
    assert table.settings["epochs"] == spec.objective.epochs == table.epochs
    for entry in table.entries.values():
        assert entry.curves.shape == (len(table.seeds), table.epochs)
        assert entry.n_params > 0 and entry.flops > 0
    # Nearly all configurations trained to the end; accuracies are proportions.
    usable = table.usable()
    assert len(usable) >= 0.95 * len(table.entries)
    accs = np.array([e.accuracy for e in usable])
    assert ((accs >= 0) & (accs <= 1)).all()
    assert accs.max() > 0.95  # good configurations exist ...
    assert accs.min() < 0.5  # ... and bad ones


def test_true_front_is_non_empty_and_dominated_by_nothing(table: Table) -> None:
    front = table.true_front()
    assert front
    points = np.array([(e.accuracy, e.n_params) for e in table.usable()])
    for e in front:
        no_worse = (points[:, 0] >= e.accuracy) & (points[:, 1] <= e.n_params)
        better = (points[:, 0] > e.accuracy) | (points[:, 1] < e.n_params)
        assert not (no_worse & better).any(), e.arch
    # The front's hypervolume is the largest any subset of the table can have.
    everything = [(e.accuracy, e.n_params) for e in table.usable()]
    assert hypervolume(everything, table) == pytest.approx(table.true_hypervolume())
    assert table.true_hypervolume() > 0


def test_study_file_suggests_only_configurations_in_the_table(table: Table) -> None:
    spec = load_spec(SPEC_PATH)
    seen = set()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        suggest(trial, spec.objective.space, (1, 8, 8), 10)
        key = json.dumps(trial.params, sort_keys=True)
        assert key in table.entries
        seen.add(key)
        entry = table.entries[key]
        return entry.accuracy, entry.n_params

    study = optuna.create_study(directions=spec.directions, sampler=build_sampler(spec, seed=0))
    study.optimize(objective, n_trials=60)
    assert len(seen) > 30


def test_retraining_a_configuration_reproduces_the_stored_curve(table: Table) -> None:
    spec = load_spec(SPEC_PATH)
    entry = next(e for e in table.entries.values() if e.params["n_layers"] == 2)
    seed = table.seeds[1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = train_one(spec, entry.params, seed)
    finally:
        torch.set_num_threads(threads)
    curve = [float(a) for a in row["val_acc"].split(";")]
    # Same seed, one CPU thread: the curve is reproduced to the stored 6 decimals.
    assert curve == pytest.approx(entry.curves[1].tolist(), abs=1e-6)
    assert row["params"] == entry.n_params and row["flops"] == entry.flops


def test_harness_writes_report_with_documented_keys(tmp_path: Path) -> None:
    out, plot = tmp_path / "tabular.json", tmp_path / "tabular.png"
    argv = ["--strategies", "random", "tpe", "--seeds", "2", "--trials", "25"]
    argv += ["--prune-strategies", "tpe", "--runs-dir", str(tmp_path / "runs")]
    argv += ["--out", str(out), "--plot", str(plot)]
    run_strategies.main(argv)

    report = json.loads(out.read_text())
    assert report["table"]["configurations"] == len(Table.load().entries)
    assert report["settings"]["strategies"]["tpe"] == {
        "sampler": "tpe",
        **load_spec(
            run_strategies.REPO_ROOT / "studies/spec/catalog/digits-mlp.toml"
        ).sampler.options,
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
    assert plot.stat().st_size > 1000
    # A second run reads the stored runs instead of running them again.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    run_strategies.main(argv)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == before
    assert json.loads(out.read_text())["multi_objective"] == report["multi_objective"]


def test_shipped_table_is_where_the_harness_reads_it() -> None:
    assert TABLE_PATH.exists() and TABLE_PATH.stat().st_size < 5_000_000
