"""``nas-study run`` on the user's own data: image folders, tensor files and CSV tables.

Each test writes real files next to a tiny study file that names them with a relative
path, runs the CLI in-process with ``studies.cli.main`` on a real SQLite file, and reads
the study back with Optuna.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas_objectives import load_dataset, load_model, predict, record
from nas_objectives.testing import separable_table, write_image_folder, write_table
from storage import open_storage
from studies.cli import main

_MODEL = """
[model]
family = "{family}"
depth = 1
width = 8
[training]
batch_size = 16
"""


def _study(folder: Path, dataset: str, family: str = "mlp") -> Path:
    path = folder / "study.toml"
    path.write_text(
        f'name = "mine"\nepochs = 1\nn_trials = 2\n[dataset]\n{dataset}\n'
        + _MODEL.format(family=family)
    )
    return path


@pytest.mark.parametrize("kind", ["image_folder", "tensors", "csv"])
def test_run_on_own_data_completes_two_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    data = tmp_path / "project" / "data"
    if kind == "image_folder":
        write_image_folder(data / "pets", n_per_class=8, suffix=".jpg")
        dataset = 'name = "image_folder"\npath = "data/pets"\nimage_size = [8, 8]'
        family = "cnn"
    elif kind == "tensors":
        write_table(data / "train.npz", *separable_table(n=48))
        dataset, family = 'name = "tensors"\npath = "data/train.npz"', "mlp"
    else:
        x, y = separable_table(n=48)
        write_table(data / "table.csv", x, np.array(["no", "yes", "maybe"])[y])
        dataset, family = 'name = "csv"\npath = "data/table.csv"\nlabel = "target"', "mlp"
    study = _study(tmp_path / "project", dataset, family)
    monkeypatch.chdir(tmp_path)  # paths resolve against the study file, not here
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["--quiet", "run", str(study), "--storage", url]) == 0
    trials = optuna.load_study(study_name="mine", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


def test_device_memory_budget_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_folder(tmp_path / "pets", n_per_class=8)
    study = _study(tmp_path, 'name = "image_folder"\npath = "pets"\nimage_size = [8, 8]', "cnn")
    url = f"sqlite:///{tmp_path}/s.db"
    # A budget of 0 keeps the images in host memory: trials still train and complete.
    run = ["--quiet", "run", str(study), "--storage", url]
    assert main([*run, "--device-memory-budget", "0"]) == 0
    trials = optuna.load_study(study_name="mine", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*run, "--device-memory-budget", "lots"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--device-memory-budget" in err and "'lots'" in err


@pytest.mark.parametrize(
    ("dataset", "family", "message"),
    [
        ('name = "tensors"\npath = "missing.npz"', "mlp", r"missing\.npz: dataset\.path: no such"),
        ('name = "csv"\npath = "t.csv"\nlabel = "target"', "cnn", r"t\.csv: model\.family: "),
        ('name = "csv"\npath = "t.csv"\nlabel = "kind"', "mlp", r"t\.csv: dataset\.label: no such"),
        ('name = "csv"\npath = "t.csv"\ncolumn = "kind"', "mlp", r"study\.toml: dataset\.column: "),
    ],
)
def test_bad_data_is_one_line_exit_2_and_no_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str, family: str, message: str
) -> None:
    write_table(tmp_path / "t.csv", *separable_table(n=20))
    study = _study(tmp_path, dataset, family)
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["--quiet", "run", str(study), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nas-study: error: ")
    assert re.search(message, err), err
    assert optuna.get_all_study_names(storage=open_storage(url)) == []


def test_export_and_evaluate_an_image_folder_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "project" / "data" / "pets", n_per_class=8, suffix=".png")
    dataset = 'name = "image_folder"\npath = "data/pets"\nimage_size = [8, 8]'
    study = _study(tmp_path / "project", dataset, "cnn")
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["--quiet", "run", str(study), "--storage", url]) == 0
    out = tmp_path / "export"
    monkeypatch.chdir(tmp_path)  # export and evaluate run from elsewhere than the study file
    assert (
        main(["--quiet", "export", "mine", "--storage", url, "--trial", "best", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(out), "--format", "json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "image_folder"
    # evaluate re-read the folder through the manifest and split it as the study did: the
    # exported model scores the same on the study's own test split, read here directly.
    data = load_dataset(
        "image_folder", path=tmp_path / "project" / "data" / "pets", image_size=(8, 8), seed=0
    )
    model = load_model(out)
    accuracy = (
        (predict(model, data.x_test, prepare=data.normalize) == data.y_test).float().mean().item()
    )
    assert report["n_test"] == len(data.y_test) > 0
    assert report["test_accuracy"] == pytest.approx(accuracy)

    # The study recorded what its workers read, and the export names its classes.
    stored = optuna.load_study(study_name="mine", storage=open_storage(url)).user_attrs
    assert stored[record.DATASET]["classes"] == ["cat", "dog", "owl"]
    assert stored[record.DATASET]["split_sizes"] == [
        len(data.y_train),
        len(data.y_val),
        len(data.y_test),
    ]
    assert stored[record.DATASET]["mean"] == list(data.mean)
    assert json.loads((out / "architecture.json").read_text())["classes"] == ["cat", "dog", "owl"]
    # A class renamed since: evaluate refuses to score the model against other classes.
    pets = tmp_path / "project" / "data" / "pets"
    (pets / "owl").rename(pets / "emu")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "architecture.json: classes: " in err
