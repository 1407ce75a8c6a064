"""``nas-study export`` and ``nas-study evaluate`` end to end, on a real study in a real
SQLite file."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import load_dataset, load_model, predict, read_manifest
from storage import open_storage, redact_url
from studies.cli import main

STUDY = "digits-mlp"


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real three-trial digits-mlp study, shared by the tests of this module (read only)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('study')}/s.db"
    args = ["run", STUDY, "--n-trials", "3", "--epochs", "2", "--storage", url]
    assert main(["-q", *args]) == 0
    return url


@pytest.fixture(scope="module")
def study(study_url: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(study_url))


@pytest.fixture(scope="module")
def exported(study_url: str, study: optuna.Study, tmp_path_factory: pytest.TempPathFactory):
    """Trial 1 exported with TorchScript; (directory, trial)."""
    out = tmp_path_factory.mktemp("exports") / "trial1"
    args = ["export", STUDY, "--trial", "1", "--out", str(out), "--storage", study_url]
    assert main([*args, "--device", "cpu", "--torchscript"]) == 0
    return out, study.trials[1]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line an expected error prints, checked to be one line with no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nas-study: error: ") and "Traceback" not in err
    return lines[0]


def _accuracy_of(trial: FrozenTrial) -> float:
    return float(trial.values[0])


def test_export_then_evaluate_round_trip(
    exported: tuple[Path, FrozenTrial], study_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, trial = exported
    for name in (
        "weights.pt",
        "architecture.json",
        "metrics.json",
        "manifest.json",
        "model.torchscript.pt",
    ):
        assert (out / name).is_file(), name
    manifest = read_manifest(out)
    prov = manifest["provenance"]
    assert prov["study"] == STUDY and prov["trial"] == 1
    assert prov["values"] == {"accuracy": trial.values[0], "params": trial.values[1]}
    assert prov["storage"] == study_url  # no password to hide in a SQLite URL
    assert manifest["training"]["seed"] == 0 + 1  # the study seed plus the trial number
    assert manifest["training"]["seed"] == trial.user_attrs["seed"]  # as the trial trained
    assert manifest["training"]["epochs"] == 2  # the epochs the trial ran
    assert manifest["training"]["optimizer_settings"] == trial.user_attrs["optimizer_settings"]
    assert manifest["dataset"] == {"name": "digits", "val_fraction": 0.2, "seed": 0}
    arch = json.loads((out / "architecture.json").read_text())
    assert arch["layout"] == trial.user_attrs["layout"]

    capsys.readouterr()
    assert main(["evaluate", str(out), "--format", "json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["test_accuracy"] <= 1.0
    assert report["params"] == trial.user_attrs["params"]
    assert (report["study"], report["trial"], report["dataset"]) == (STUDY, 1, "digits")

    # The Python API gives the very predictions evaluate scored.
    model = load_model(out)
    assert isinstance(model, torch.nn.Module) and not model.training
    data = load_dataset("digits")
    assert len(data.y_test) == report["n_test"]
    correct = (predict(model, data.x_test, prepare=data.normalize) == data.y_test).sum().item()
    assert correct / len(data.y_test) == report["test_accuracy"]

    # A deployment normalises raw inputs with the stored statistics: raw digits pixels
    # (0 to 16) as (x * scale - mean) / std are what the model was trained and scored on.
    norm = arch["input_normalization"]
    assert norm == {"mean": list(data.mean), "std": list(data.std), "scale": 1 / 16}
    raw = data.x_test.float()
    assert raw.min().item() == 0 and raw.max().item() == 16
    renormed = (raw * norm["scale"] - norm["mean"][0]) / norm["std"][0]
    assert torch.equal(
        predict(model, renormed), predict(model, data.x_test, prepare=data.normalize)
    )

    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "directory",
        "dataset",
        "n_test",
        "test_accuracy",
        "params",
        "study",
        "trial",
    ]
    assert str(trial.user_attrs["params"]) in table[2].split()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_matches(exported: tuple[Path, FrozenTrial]) -> None:
    out, _ = exported
    scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    digits = load_dataset("digits")
    x = digits.normalize(digits.x_test[:37])
    assert torch.allclose(scripted(x), load_model(out)(x), atol=1e-6)


def test_trial_best_with_and_without_max_params(
    study_url: str,
    study: optuna.Study,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pareto = study.best_trials
    best = max(pareto, key=lambda t: (_accuracy_of(t), -t.values[1], -t.number))
    smallest = min(pareto, key=lambda t: (t.values[1], -_accuracy_of(t)))
    common = ["--storage", study_url, "--device", "cpu", "--epochs", "1"]

    picked = tmp_path / "best"
    assert main(["export", STUDY, "--trial", "best", "--out", str(picked), *common]) == 0
    assert read_manifest(picked)["provenance"]["trial"] == best.number

    limit = int(smallest.user_attrs["params"])
    small = tmp_path / "small"
    args = ["export", STUDY, "--trial", "best", "--max-params", str(limit), "--out", str(small)]
    assert main([*args, *common]) == 0
    under = [t for t in pareto if t.user_attrs["params"] <= limit]
    expected = max(under, key=lambda t: (_accuracy_of(t), -t.values[1], -t.number))
    manifest = read_manifest(small)
    assert manifest["provenance"]["trial"] == expected.number
    assert manifest["params"] == expected.user_attrs["params"] <= limit
    assert manifest["training"]["epochs"] == 1  # --epochs overrides

    capsys.readouterr()
    none = tmp_path / "none"
    args = ["export", STUDY, "--trial", "best", "--max-params", str(limit - 1), "--out", str(none)]
    assert main([*args, *common]) == 2
    assert f"has at most {limit - 1} params" in _error_line(capsys)
    assert not none.exists()


def test_a_flipped_byte_in_the_weights(
    exported: tuple[Path, FrozenTrial], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Path(shutil.copytree(exported[0], tmp_path / "copy"))
    weights = out / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2
    line = _error_line(capsys)
    assert str(weights) in line and "SHA-256 mismatch" in line


def test_a_deleted_architecture(
    exported: tuple[Path, FrozenTrial], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Path(shutil.copytree(exported[0], tmp_path / "copy"))
    (out / "architecture.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2
    line = _error_line(capsys)
    assert f"{out / 'architecture.json'}: missing" in line


def test_a_bad_trial_number(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["export", STUDY, "--out", str(out), "--storage", study_url]
    capsys.readouterr()
    assert main([*base, "--trial", "99"]) == 2
    assert "study 'digits-mlp' has no trial 99 (trials 0-2)" in _error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:  # argparse's own one-line error
        main([*base, "--trial", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == "nas-study export: error: argument --trial: trial numbers start at 0, got -1"
    )
    assert not out.exists()


def test_options_refused_before_anything_trains(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["export", STUDY, "--storage", study_url]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main([*base, "--trial", "0", "--out", str(busy)]) == 2
    assert "directory is not empty; pass --force" in _error_line(capsys)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    assert main([*base, "--trial", "0", "--max-params", "10", "--out", str(tmp_path / "a")]) == 2
    assert "--max-params only applies with --trial best" in _error_line(capsys)

    onnx = tmp_path / "onnx"
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
        assert main([*base, "--trial", "0", "--onnx", "--out", str(onnx)]) == 2
        assert "pip install onnx onnxscript" in _error_line(capsys)
        assert not onnx.exists()
    else:
        args = [*base, "--trial", "0", "--onnx", "--epochs", "1", "--out", str(onnx)]
        assert main([*args, "--device", "cpu"]) == 0
        assert "model.onnx" in read_manifest(onnx)["files"]
        capsys.readouterr()

    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "no such export directory" in _error_line(capsys)


def test_force_overwrites_an_export(
    exported: tuple[Path, FrozenTrial], study_url: str, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(exported[0], tmp_path / "copy"))
    args = ["export", STUDY, "--trial", "0", "--out", str(out), "--storage", study_url]
    assert main([*args, "--epochs", "1", "--device", "cpu", "--force"]) == 0
    manifest = read_manifest(out)
    assert manifest["provenance"]["trial"] == 0
    assert not (out / "model.torchscript.pt").exists()  # not asked for this time


def _copy_study(url: str, dest: str, name: str = STUDY) -> optuna.Study:
    optuna.copy_study(
        from_study_name=STUDY,
        from_storage=open_storage(url),
        to_storage=open_storage(dest),
        to_study_name=name,
    )
    return optuna.load_study(study_name=name, storage=open_storage(dest))


def test_export_from_sqlite_and_postgresql(
    study_url: str, study: optuna.Study, storage_url: str, unique_name: str, tmp_path: Path
) -> None:
    _copy_study(study_url, storage_url, unique_name)
    out = tmp_path / "out"
    args = ["export", unique_name, "--trial", "2", "--out", str(out), "--storage", storage_url]
    assert main([*args, "--epochs", "1", "--seed", "5", "--device", "cpu"]) == 0
    manifest = read_manifest(out)
    assert manifest["provenance"]["study"] == unique_name
    assert manifest["provenance"]["storage"] == redact_url(storage_url)
    assert manifest["training"]["seed"] == 5 + 2  # --seed replaces the study seed
    assert manifest["params"] == study.trials[2].user_attrs["params"]


def test_pruned_trials_and_stored_mismatches_are_refused(
    study_url: str, study: optuna.Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = f"sqlite:///{tmp_path}/copy.db"
    copy = _copy_study(study_url, dest)
    source = study.trials[0]
    copy.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            params=source.params,
            distributions=source.distributions,
            user_attrs=source.user_attrs,
        )
    )
    wrong = dict(source.user_attrs["layout"])
    wrong["widths"] = [w + 1 for w in wrong["widths"]]
    copy.add_trial(
        optuna.trial.create_trial(
            values=source.values,
            params=source.params,
            distributions=source.distributions,
            user_attrs={**source.user_attrs, "layout": wrong},
        )
    )
    base = ["export", STUDY, "--storage", dest, "--device", "cpu"]
    capsys.readouterr()
    assert main([*base, "--trial", "3", "--out", str(tmp_path / "p")]) == 2
    assert "trial 3 of study 'digits-mlp' is PRUNED" in _error_line(capsys)
    assert main([*base, "--trial", "4", "--out", str(tmp_path / "m")]) == 2
    line = _error_line(capsys)
    assert "trial 4: replaying its parameters gives layout" in line
    assert not (tmp_path / "m").exists()


def test_a_study_nas_study_did_not_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/plain.db"
    plain = optuna.create_study(study_name="plain", storage=open_storage(url))
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    capsys.readouterr()
    code = main(["export", "plain", "--trial", "0", "--out", str(tmp_path / "o"), "--storage", url])
    assert code == 2
    assert "has no stored study file" in _error_line(capsys)
