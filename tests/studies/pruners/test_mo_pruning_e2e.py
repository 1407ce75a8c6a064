"""Pruning in multi-objective studies, end to end: real training on digits, real storages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from storage import open_storage
from studies.cli import main
from tests.conftest import POSTGRES_URL

PRUNED_STUDY = """
name = "{name}"
dataset = "digits"
objectives = ["accuracy", "params"]
epochs = 9
n_trials = {n_trials}
seed = 5

[model]
depth = [1, 3]
width = {{ low = 16, high = 256, log = true }}

[training]
batch_size = [64, 128]

[optimizers.adamw]
lr = [1e-5, 1e-1]

[optimizers.sgd]
lr = [1e-5, 1.0]
momentum = 0.0

[sampler]
name = "random"

[pruner]
{pruner}
"""


def _write(tmp_path: Path, name: str, pruner: str, n_trials: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(PRUNED_STUDY.format(name=name, pruner=pruner, n_trials=n_trials))
    return path


def test_multi_objective_study_prunes_and_keeps_the_front(tmp_path: Path, capsys) -> None:
    pruner = 'name = "pareto_rank"\nmin_epochs = 1\nreduction_factor = 3\nmin_trials = 3'
    study_file = _write(tmp_path, "mo", pruner, n_trials=16)
    url = f"sqlite:///{tmp_path}/mo.db"
    assert main(["run", str(study_file), "--storage", url]) == 0
    assert "Pareto-optimal trials of 'mo' (accuracy, params)" in capsys.readouterr().out

    trials = optuna.load_study(study_name="mo", storage=open_storage(url)).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(complete) == 16
    assert pruned, "some hopeless trials are pruned"
    assert len(complete) >= 3
    for t in complete:
        assert len(t.values) == 2 and t.user_attrs["epochs_run"] == 9
    for t in pruned:
        epoch = t.user_attrs["pruned_at_epoch"]
        assert epoch in (1, 3)  # rungs at 1, 3, 9: the last one is the end of training
        assert t.user_attrs["epochs_run"] == epoch
        assert len(t.user_attrs["val_accuracy"]) == epoch  # the shared curve, per epoch
        assert "pareto rank" in t.user_attrs["pruned_by"]
        assert t.values is None and not t.intermediate_values


def _worker(url: str, study: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "true", "NAS_STUDY_STORAGE": url, "NAS_STUDY_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "studies", "-q", "worker", str(study), "--threads", "1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workers_share_pruning_decisions_through_postgres(tmp_path: Path, unique_name: str) -> None:
    pruner = 'name = "dominance"\nk = 3\nmin_epochs = 1\nmin_trials = 3'
    study_file = _write(tmp_path, unique_name, pruner, n_trials=20)
    storage = open_storage(POSTGRES_URL)
    study = optuna.create_study(
        study_name=unique_name, storage=storage, directions=["maximize", "minimize"]
    )
    good = {"n_layers": 1, "units_l0": 32, "optimizer": "adamw", "adamw_lr": 1e-2}
    for batch_size in (64, 128, 64, 128):
        study.enqueue_trial({**good, "batch_size": batch_size})
    # Worker A trains four small, accurate models.
    first = _worker(POSTGRES_URL, study_file, "--max-trials", "4", "--worker-index", "0")
    assert first.returncode == 0, first.stderr
    # Worker B, another process, gets a big model that barely learns: dominated by A's
    # trials at its first epoch, it must be pruned there.
    bad = {"n_layers": 3, "units_l0": 256, "units_l1": 256, "units_l2": 256}
    study.enqueue_trial({**bad, "optimizer": "sgd", "sgd_lr": 1e-5, "batch_size": 64})
    second = _worker(POSTGRES_URL, study_file, "--max-trials", "1", "--worker-index", "1")
    assert second.returncode == 0, second.stderr

    trials = optuna.load_study(study_name=unique_name, storage=storage).trials
    assert [t.state for t in trials[:4]] == [TrialState.COMPLETE] * 4
    victim = trials[4]
    assert victim.state == TrialState.PRUNED
    assert victim.user_attrs["pruned_at_epoch"] == 1
    assert victim.user_attrs["pruned_by"] == "dominated by 4 trials at epoch 1"
    workers = {t.user_attrs["worker"] for t in trials[:4]}
    assert len(workers) == 1 and victim.user_attrs["worker"] not in workers
    assert socket.gethostname() in victim.user_attrs["worker"]
