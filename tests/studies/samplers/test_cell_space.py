"""Every sampler a study file can name runs, unchanged, on the ``cell`` space of
``digits-cell``: a few one-epoch trials each, on a real SQLite file."""

from __future__ import annotations

from typing import Any

import pytest
import tomllib
from optuna.trial import TrialState

from storage import open_storage
from studies.run import RunOptions, run_study
from studies.samplers import SAMPLERS
from studies.spec import catalog_dir, spec_from_data

# Options that let each sampler leave its random start within three trials.
_OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 2, "multivariate": True},
    "nsga2": {"population_size": 2},
    "nsga3": {"population_size": 2},
    "gp": {"n_startup_trials": 2},
    "evolution": {"population_size": 2, "sample_size": 2, "crossover_prob": 0.5},
    "reinforce": {"n_startup_trials": 1},
}


def _spec(sampler: str) -> Any:
    data = tomllib.loads((catalog_dir() / "digits-cell.toml").read_text())
    data["sampler"] = {"name": sampler, **_OPTIONS.get(sampler, {})}
    data["model"]["width"] = 4  # tiny: seconds per trial
    return spec_from_data(data, "digits-cell.toml")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampler_runs_on_the_cell_space(sampler: str, sqlite_url: str) -> None:
    spec = _spec(sampler)
    storage = open_storage(sqlite_url, heartbeat=None)
    report = run_study(spec, storage, RunOptions(n_trials=3, epochs=1), progress=False)
    trials = report.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, [
        t.user_attrs.get("fail_reason") for t in trials
    ]
    edges = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    for t in trials:
        assert sorted(n for n in t.params if n.startswith("edge_")) == sorted(edges)
        assert t.user_attrs["arch"].startswith("|")  # the NAS-Bench-201 string comes first
        assert t.values is not None and t.values[1] == t.user_attrs["params"]


def test_catalog_cell_studies_parse() -> None:
    names = {p.stem for p in catalog_dir().glob("*-cell.toml")}
    assert names == {"digits-cell", "cifar10-cell"}
    cifar = spec_from_data(tomllib.loads((catalog_dir() / "cifar10-cell.toml").read_text()))
    m = cifar.objective.space.model
    assert (m.family, m.nodes, m.width.low, m.cells_per_stage.low) == ("cell", 4, 16, 5)  # type: ignore[union-attr]
    sgd = cifar.objective.space.optimizers["sgd"]
    assert (sgd.lr.low, sgd.weight_decay.low, sgd.nesterov.options) == (0.1, 5e-4, (True,))  # type: ignore[union-attr]
    assert cifar.objective.space.training.batch_size.options == (256,)
