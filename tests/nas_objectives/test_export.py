"""Export directories on real digits data: retraining, saving, loading, and every way a
damaged export is caught."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from nas_objectives import (
    ExportError,
    Layout,
    OptimizerSettings,
    TensorData,
    build_model,
    count_params,
    evaluate_export,
    load_dataset,
    load_model,
    predict,
    read_manifest,
    retrain,
    save_export,
)
from nas_objectives.export import (
    ARCHITECTURE_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    METRICS_FILE,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    check_export_dir,
    check_export_formats,
)

SETTINGS = OptimizerSettings("adamw", lr=5e-3, batch_size=64)


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def layout(digits: TensorData) -> Layout:
    # Batch norm and dropout: buffers in the state dict, and eval mode must matter.
    return Layout(
        "mlp", digits.input_shape, digits.num_classes, widths=(24,), norm="batch", dropout=0.1
    )


@pytest.fixture(scope="module")
def trained(digits: TensorData, layout: Layout) -> nn.Module:
    model, _ = retrain(layout, SETTINGS, digits, epochs=2, seed=3)
    return model


@pytest.fixture(scope="module")
def export_dir(
    tmp_path_factory: pytest.TempPathFactory, trained: nn.Module, layout: Layout
) -> Path:
    out = tmp_path_factory.mktemp("exports") / "model"
    save_export(
        out,
        trained,
        layout,
        dataset="digits",
        val_fraction=0.2,
        training={"seed": 3, "epochs": 2},
        provenance={"study": "unit", "trial": 7},
        torchscript=True,
    )
    return out


@pytest.fixture
def copy_of(export_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the export, free to damage."""
    return Path(shutil.copytree(export_dir, tmp_path / "copy"))


def test_retrain_uses_train_and_validation_and_is_seeded(
    digits: TensorData, layout: Layout
) -> None:
    a, run = retrain(layout, SETTINGS, digits, epochs=1, seed=5)
    b, _ = retrain(layout, SETTINGS, digits, epochs=1, seed=5)
    c, _ = retrain(layout, SETTINGS, digits, epochs=1, seed=6)
    assert not a.training  # handed back in eval mode
    assert run.epochs_run == 1
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.state_dict()["net.1.weight"], c.state_dict()["net.1.weight"])
    # One step per batch of the merged split: BatchNorm counts them.
    n = len(digits.y_train) + len(digits.y_val)
    assert int(a.state_dict()["net.2.num_batches_tracked"]) == -(-n // SETTINGS.batch_size)
    # The caller's global RNG is untouched.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    retrain(layout, SETTINGS, digits, epochs=1, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_round_trip_gives_the_same_model(
    export_dir: Path, trained: nn.Module, digits: TensorData, layout: Layout
) -> None:
    names = sorted(p.name for p in export_dir.iterdir())
    assert names == sorted(
        [WEIGHTS_FILE, ARCHITECTURE_FILE, METRICS_FILE, MANIFEST_FILE, TORCHSCRIPT_FILE]
    )
    model = load_model(export_dir)
    assert isinstance(model, nn.Module) and not model.training
    assert count_params(model) == count_params(trained)
    x = digits.normalize(digits.x_test)
    assert torch.equal(model(x), trained.cpu().eval()(x))

    manifest = read_manifest(export_dir)
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["dataset"] == {"name": "digits", "val_fraction": 0.2}
    assert manifest["provenance"] == {"study": "unit", "trial": 7}
    assert manifest["params"] == count_params(trained)
    assert manifest["versions"]["torch"] == torch.__version__
    assert set(manifest["files"]) == {
        WEIGHTS_FILE,
        ARCHITECTURE_FILE,
        METRICS_FILE,
        TORCHSCRIPT_FILE,
    }
    arch = json.loads((export_dir / ARCHITECTURE_FILE).read_text())
    assert Layout.from_dict(arch["layout"]) == layout
    metrics = json.loads((export_dir / METRICS_FILE).read_text())
    assert metrics["params"] == count_params(trained) and metrics["flops"] > 0


def test_weights_are_a_plain_state_dict(export_dir: Path, layout: Layout) -> None:
    state = torch.load(export_dir / WEIGHTS_FILE, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    build_model(layout).load_state_dict(state, strict=True)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches(export_dir: Path, trained: nn.Module, digits: TensorData) -> None:
    scripted = torch.jit.load(str(export_dir / TORCHSCRIPT_FILE))
    x = digits.normalize(digits.x_test[:50])  # another batch size than the one traced
    assert torch.allclose(scripted(x), trained.cpu().eval()(x), atol=1e-6)


def test_evaluate_export_reports_test_accuracy(
    export_dir: Path, trained: nn.Module, digits: TensorData
) -> None:
    result = evaluate_export(export_dir, device="cpu")
    predicted = predict(trained.cpu(), digits.x_test, prepare=digits.normalize)
    expected = (predicted == digits.y_test).float().mean().item()
    assert result.test_accuracy == pytest.approx(expected)
    assert 0.5 < result.test_accuracy <= 1.0
    assert result.n_test == len(digits.y_test)
    assert result.params == count_params(trained)
    assert (result.study, result.trial, result.dataset) == ("unit", 7, "digits")


def test_a_flipped_byte_is_caught(copy_of: Path) -> None:
    weights = copy_of / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"weights\.pt: SHA-256 mismatch"):
        load_model(copy_of)


def test_a_truncated_file_is_caught(copy_of: Path) -> None:
    arch = copy_of / ARCHITECTURE_FILE
    arch.write_bytes(arch.read_bytes()[:-10])
    with pytest.raises(ExportError, match=r"architecture\.json: truncated"):
        evaluate_export(copy_of)


@pytest.mark.parametrize("name", [WEIGHTS_FILE, ARCHITECTURE_FILE, METRICS_FILE, MANIFEST_FILE])
def test_a_missing_file_is_named(copy_of: Path, name: str) -> None:
    (copy_of / name).unlink()
    with pytest.raises(ExportError, match=rf"{name.replace('.', '[.]')}: missing"):
        load_model(copy_of)


def test_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such export directory"):
        read_manifest(tmp_path / "nowhere")


def _forge(root: Path, manifest_edit: dict[str, object] | None = None) -> None:
    """Re-sign every file, as someone who also rewrites the manifest would."""
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    for name in list(manifest["files"]):
        data = (root / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest.update(manifest_edit or {})
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_newer_format_is_refused(copy_of: Path) -> None:
    _forge(copy_of, {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(ExportError, match=r"format version .* is not supported"):
        read_manifest(copy_of)


def test_a_manifest_that_is_not_json(copy_of: Path) -> None:
    (copy_of / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ExportError, match=r"manifest\.json: the manifest is not valid JSON"):
        read_manifest(copy_of)


def test_a_manifest_pointing_outside_the_directory(copy_of: Path) -> None:
    manifest = json.loads((copy_of / MANIFEST_FILE).read_text())
    manifest["files"]["../escape"] = {"sha256": "0" * 64, "bytes": 1}
    (copy_of / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=re.escape("malformed entry for file '../escape'")):
        read_manifest(copy_of)


def test_weights_that_do_not_fit_the_architecture(copy_of: Path, layout: Layout) -> None:
    other = Layout("mlp", layout.input_shape, layout.num_classes, widths=(8,))
    torch.save(build_model(other).state_dict(), copy_of / WEIGHTS_FILE)
    _forge(copy_of)
    with pytest.raises(ExportError, match=r"weights\.pt: the weights do not fit"):
        load_model(copy_of)


def test_a_pickle_in_the_weights_is_never_run(copy_of: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    torch.save({"w": Evil()}, copy_of / WEIGHTS_FILE)
    _forge(copy_of)
    with pytest.raises(ExportError, match=r"weights\.pt: unreadable weights"):
        load_model(copy_of)
    assert not marker.exists()


def test_a_bad_layout_is_one_clear_error(copy_of: Path) -> None:
    arch = json.loads((copy_of / ARCHITECTURE_FILE).read_text())
    arch["layout"]["family"] = "transformer"
    (copy_of / ARCHITECTURE_FILE).write_text(json.dumps(arch))
    _forge(copy_of)
    with pytest.raises(ExportError, match="invalid layout: unknown model family 'transformer'"):
        load_model(copy_of)


def test_a_non_empty_directory_needs_force(
    export_dir: Path, copy_of: Path, trained: nn.Module, layout: Layout
) -> None:
    with pytest.raises(ExportError, match="directory is not empty; pass --force"):
        save_export(copy_of, trained, layout, dataset="digits", val_fraction=0.2)
    with pytest.raises(ExportError, match="not a directory"):
        check_export_dir(copy_of / WEIGHTS_FILE)
    (copy_of / "notes.txt").write_text("mine")
    # --force rewrites the export (dropping the extra it no longer has) and keeps the rest.
    save_export(copy_of, trained, layout, dataset="digits", val_fraction=0.2, force=True)
    assert not (copy_of / TORCHSCRIPT_FILE).exists()
    assert (copy_of / "notes.txt").read_text() == "mine"
    assert TORCHSCRIPT_FILE not in read_manifest(copy_of)["files"]
    assert torch.equal(
        load_model(copy_of).state_dict()["net.1.weight"],
        load_model(export_dir).state_dict()["net.1.weight"],
    )


def test_save_leaves_the_callers_model_alone(
    digits: TensorData, layout: Layout, tmp_path: Path
) -> None:
    model = build_model(layout).train()
    save_export(tmp_path / "e", model, layout, dataset="digits", val_fraction=0.2)
    assert model.training


def test_onnx_needs_its_packages() -> None:
    have = all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxscript"))
    if have:
        check_export_formats(onnx=True)
    else:
        with pytest.raises(ExportError, match="pip install onnx onnxscript"):
            check_export_formats(onnx=True)
    check_export_formats(torchscript=True)  # always available
