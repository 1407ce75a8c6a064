"""``nas-study oneshot`` end to end: real processes sharing one sweep on SQLite and
PostgreSQL, ``best`` showing provenance, and bad input as one line with exit status 2."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas_objectives import record
from storage import open_storage
from studies.cli import main
from studies.oneshot import CLAIMS_SUFFIX

TINY = """
name = "tiny-cell"
objectives = ["accuracy", "params"]
epochs = 1
n_trials = 4
dataset = "digits"
[model]
family = "cell"
nodes = 3
ops = OPS
width = 4
cells_per_stage = 1
[optimizers.sgd]
lr = 0.05
"""


def _study_file(tmp_path: Path, ops: str = '["none", "skip_connect", "nor_conv_1x1"]') -> Path:
    path = tmp_path / "tiny-cell.toml"
    path.write_text(TINY.replace("OPS", ops))
    return path


def _oneshot(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    env.pop("NAS_STUDY_STORAGE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "studies", "oneshot", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_never_search_the_same_lambda(
    storage_url: str, unique_name: str, tmp_path: Path
) -> None:
    study_file = _study_file(tmp_path)
    args = [str(study_file), "--storage", storage_url, "--study-name", unique_name]
    args += ["--candidates", "4", "--epochs", "1", "--batch-size", "256"]
    procs = [_oneshot(*args), _oneshot(*args)]
    outputs = [p.communicate(timeout=300) for p in procs]
    try:
        for p, (_out, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
            assert "Traceback" not in err
        storage = open_storage(storage_url, heartbeat=None)
        study = optuna.load_study(study_name=unique_name, storage=storage)
        waiting = study.get_trials(states=(TrialState.WAITING,))
        lambdas = sorted(t.user_attrs[record.ONESHOT_LAMBDA] for t in waiting)
        assert lambdas == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # each lambda once
        claims = optuna.load_study(study_name=unique_name + CLAIMS_SUFFIX, storage=storage)
        ran = [t for t in claims.trials if t.state == TrialState.COMPLETE]
        assert sorted(t.user_attrs["lambda_index"] for t in ran) == [0, 1, 2, 3]
        # Each process printed only the lambdas it ran, and together they ran them all.
        printed = [sum(" enqueued " in line for line in out.splitlines()) for out, _ in outputs]
        assert sum(printed) == 4
    finally:
        if storage_url.startswith("postgresql"):
            with contextlib.suppress(KeyError):
                optuna.delete_study(
                    study_name=unique_name + CLAIMS_SUFFIX,
                    storage=open_storage(storage_url, heartbeat=None),
                )


def test_oneshot_then_worker_then_best_shows_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    study_file = str(_study_file(tmp_path))
    args = ["--storage", url, "--candidates", "1", "--epochs", "1", "--batch-size", "256"]
    assert main(["oneshot", study_file, *args]) == 0
    out = capsys.readouterr().out
    assert " enqueued " in out and "~0|+|" in out  # the derived cell, as a NAS-Bench-201 string
    assert main(["worker", study_file, "--storage", url, "--n-trials", "1"]) == 0
    capsys.readouterr()
    assert main(["best", "tiny-cell", "--storage", url]) == 0
    table = capsys.readouterr().out
    assert "proposed_by" in table.splitlines()[1]
    assert "oneshot darts-1st+beta lambda=0" in table


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ("digits-mlp", "model.family: oneshot searches cell spaces only"),
        ("ONLY_NONE", "model.ops: a one-shot search needs an op other than 'none'"),
    ],
)
def test_bad_study_is_one_line_and_exit_2(
    study: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if study == "ONLY_NONE":
        study = str(_study_file(tmp_path, ops='["none"]'))
    db = tmp_path / "never.db"
    assert main(["oneshot", study, "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas-study: error: ") and message in err
    assert "\n" not in err
    assert not db.exists()  # refused before any database was made
