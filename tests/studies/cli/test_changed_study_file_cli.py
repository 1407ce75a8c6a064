"""Issue 20's reproduction: a copy of digits-mlp with other activation choices and the
random sampler, run against the storage where digits-mlp ran. It used to die with
``AssertionError: Should not reach.`` and leave its trial RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna import load_study
from optuna.trial import TrialState

from studies.cli import main
from studies.run import SPEC_ATTR
from studies.spec import catalog_dir

DIGITS_MLP = (catalog_dir() / "digits-mlp.toml").read_text()
ACTIVATIONS = 'activation = ["relu", "gelu", "silu", "tanh"]'


def _random_sampler(text: str) -> str:
    return text[: text.index("[sampler]")] + '[sampler]\nname = "random"\n'


@pytest.fixture
def ran_digits_mlp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A SQLite file where digits-mlp ran two trials."""
    url = f"sqlite:///{tmp_path}/studies.db"
    args = ["--storage", url, "--n-trials", "2", "--epochs", "1"]
    assert main(["-q", "run", "digits-mlp", *args]) == 0
    capsys.readouterr()
    return url


def _states(url: str) -> list[TrialState]:
    return [t.state for t in load_study(study_name="digits-mlp", storage=url).trials]


def test_a_changed_space_ends_with_one_line_and_exit_2(ran_digits_mlp: str, tmp_path: Path) -> None:
    url = ran_digits_mlp
    stored = load_study(study_name="digits-mlp", storage=url).user_attrs[SPEC_ATTR]
    changed = tmp_path / "changed.toml"
    changed.write_text(
        _random_sampler(DIGITS_MLP.replace(ACTIVATIONS, 'activation = ["relu", "gelu"]'))
    )
    args = ["run", str(changed), "--storage", url, "--n-trials", "6", "--epochs", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "studies", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    # Optuna's own info line ("Using an existing study") may come first; nothing else.
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[I ")]
    assert lines == [
        f"nas-study: error: {changed}: model.activation: study 'digits-mlp' was created with "
        '["relu", "gelu", "silu", "tanh"], this file has ["relu", "gelu"]; the search space '
        "of an existing study cannot change: restore the field, or pick another --study-name"
    ]
    # Nothing left RUNNING, nothing stored lost.
    assert _states(url) == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert load_study(study_name="digits-mlp", storage=url).user_attrs[SPEC_ATTR] == stored


@pytest.mark.parametrize("command", ["worker", "launch"])
def test_workers_are_refused_before_any_trial(
    ran_digits_mlp: str, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = tmp_path / "changed.toml"
    changed.write_text(DIGITS_MLP.replace("schedule = [", 'schedule = ["cosine"]\n# ['))
    args = [command, str(changed), "--storage", ran_digits_mlp, "--n-trials", "4"]
    if command == "launch":
        args += ["--workers", "1"]
    assert main(["-q", *args, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "training.schedule" in err[0]
    assert '["constant", "cosine", "onecycle"]' in err[0] and '["cosine"]' in err[0]
    assert _states(ran_digits_mlp) == [TrialState.COMPLETE, TrialState.COMPLETE]


def test_a_file_changed_only_in_budget_and_sampler_runs(
    ran_digits_mlp: str, tmp_path: Path
) -> None:
    same_space = tmp_path / "same-space.toml"
    same_space.write_text(_random_sampler(DIGITS_MLP).replace("n_trials = 60", "n_trials = 3"))
    common = ["--storage", ran_digits_mlp, "--epochs", "1"]
    assert main(["-q", "worker", str(same_space), *common]) == 0
    assert main(["-q", "run", "digits-mlp", *common, "--n-trials", "4"]) == 0
    assert _states(ran_digits_mlp) == [TrialState.COMPLETE] * 4
