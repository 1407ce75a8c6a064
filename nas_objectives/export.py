"""A trained model on disk: its weights, its architecture and where it came from.

An export directory holds:

* ``weights.pt``: a plain ``state_dict`` saved by :func:`torch.save`, read back with
  ``torch.load(..., weights_only=True)``, so loading never runs an unrestricted pickle;
* ``architecture.json``: the :class:`~nas_objectives.space.Layout` that rebuilds the model
  with :func:`~nas_objectives.models.build_model`, plus a format version;
* ``metrics.json``: what training measured (parameter count, FLOPs, loss per epoch) and the
  trial's own values;
* optionally ``model.torchscript.pt`` (traced) and ``model.onnx``;
* ``manifest.json``, written last: format version, provenance (study, trial, seed, epochs,
  dataset, versions) and the size and SHA-256 of every other file.

Every reader checks every file against the manifest first, so a file that was modified,
truncated or removed after the export raises :class:`ExportError` naming it. The manifest
is a checksum list, not a signature: it catches damage and casual edits, not someone who
rewrites the manifest too.

Example:
    >>> import tempfile
    >>> from nas_objectives import load_dataset
    >>> from nas_objectives.space import Layout, OptimizerSettings
    >>> d = load_dataset("digits")
    >>> layout = Layout("mlp", d.input_shape, d.num_classes, widths=(32,))
    >>> model, run = retrain(layout, OptimizerSettings("adamw", lr=3e-3), d, epochs=2, seed=0)
    >>> out = tempfile.mkdtemp()
    >>> _ = save_export(out, model, layout, dataset="digits", val_fraction=0.2)
    >>> load_model(out)(d.x_test[:4]).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_objectives.data import TensorData, load_dataset
from nas_objectives.metrics import count_flops, count_params
from nas_objectives.models import build_model
from nas_objectives.space import Layout, OptimizerSettings
from nas_objectives.train import TrainResult, predict, train

#: Version of the directory layout below; readers refuse newer versions.
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
ARCHITECTURE_FILE = "architecture.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
#: Files every export has, besides the manifest.
REQUIRED_FILES = (WEIGHTS_FILE, ARCHITECTURE_FILE, METRICS_FILE)
_OPTIONAL_FILES = (TORCHSCRIPT_FILE, ONNX_FILE)
_ONNX_PACKAGES = ("onnx", "onnxscript")


class ExportError(RuntimeError):
    """An export cannot be made as asked, or an export directory is missing, incomplete or
    tampered with. ``str()`` is one line naming the file (or option) and the problem."""


@dataclass(frozen=True)
class ExportEvaluation:
    """An exported model measured on its dataset's test split."""

    directory: str
    dataset: str
    n_test: int
    test_accuracy: float
    params: int
    study: str | None
    trial: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- writing -------------------------------------------------------------------------------


def check_export_formats(*, torchscript: bool = False, onnx: bool = False) -> None:
    """Fail early (before any training) when an asked-for format cannot be written.

    Raises:
        ExportError: ``onnx`` is asked for and the ``onnx``/``onnxscript`` packages are
            missing.
    """
    del torchscript  # TorchScript ships with torch
    if onnx:
        missing = [p for p in _ONNX_PACKAGES if importlib.util.find_spec(p) is None]
        if missing:
            raise ExportError(
                f"--onnx needs the package(s) {', '.join(missing)}: pip install onnx onnxscript"
            )


def check_export_dir(out_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """``out_dir`` as a path that may be written: absent, empty, or ``force`` is set.

    Raises:
        ExportError: it is a file, or a non-empty directory and ``force`` is not set.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out}: directory is not empty; pass --force to overwrite the export")
    return out


def retrain(
    layout: Layout,
    settings: OptimizerSettings,
    data: TensorData,
    *,
    epochs: int,
    seed: int,
) -> tuple[nn.Module, TrainResult]:
    """Build ``layout`` and train it on ``data``'s training **and** validation splits.

    The model is initialised exactly as a trial initialises it (``torch.manual_seed(seed)``
    right before :func:`build_model`) and trained by :func:`nas_objectives.train` with the
    same ``seed``; the caller's global RNG state is left unchanged. The validation split
    is still what ``train`` reports per epoch, but it is now seen in training, so that
    figure is a training accuracy. Returns the model in eval mode, on ``data``'s device.
    """
    merged = dataclasses.replace(
        data,
        x_train=torch.cat([data.x_train, data.x_val]),
        y_train=torch.cat([data.y_train, data.y_val]),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(layout)
    result = train(model, settings, merged, epochs=epochs, seed=seed)
    return model.eval(), result


def save_export(
    out_dir: str | os.PathLike[str],
    model: nn.Module,
    layout: Layout,
    *,
    dataset: str,
    val_fraction: float,
    normalization: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    force: bool = False,
    torchscript: bool = False,
    onnx: bool = False,
) -> dict[str, Any]:
    """Write ``model`` (built from ``layout``) to ``out_dir`` and return the manifest.

    Args:
        out_dir: Created if absent; must be empty unless ``force``.
        model: A model built by :func:`build_model` from ``layout``, trained.
        layout: Its architecture.
        dataset: Dataset name (:data:`~nas_objectives.DATASETS`); evaluation reads its test
            split with the same ``val_fraction``, which fixes the input normalisation.
        val_fraction: As above.
        normalization: The per-channel ``mean`` and ``std`` that inputs are normalised
            with (:attr:`TensorData.mean`, :attr:`TensorData.std`), stored in
            ``architecture.json`` as ``input_normalization`` for deployment.
        training: How it was trained (seed, epochs, optimizer settings...), JSON-ready.
        provenance: Where it came from (study, trial, values, storage...), JSON-ready.
        metrics: Extra measurements for ``metrics.json`` (``params`` and ``flops`` are
            always measured here).
        force: Overwrite the export files in a non-empty ``out_dir`` (other files there
            are left alone).
        torchscript: Also write ``model.torchscript.pt`` (``torch.jit.trace``).
        onnx: Also write ``model.onnx`` (needs ``onnx`` and ``onnxscript``).

    Raises:
        ExportError: ``out_dir`` not writable as asked, a format that cannot be written, or
            a model that does not match ``layout``.
    """
    check_export_formats(torchscript=torchscript, onnx=onnx)
    out = check_export_dir(out_dir, force=force)
    model = copy.deepcopy(model).to("cpu").eval()  # the caller's model stays where it is
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    expected = build_model(layout).state_dict()
    if {k: tuple(v.shape) for k, v in expected.items()} != {
        k: tuple(v.shape) for k, v in state.items()
    }:
        raise ExportError(f"the model's weights do not match its layout {layout.summary()!r}")
    n_params = count_params(model)
    all_metrics = {
        "params": n_params,
        "flops": count_flops(model, layout.input_shape),
        **dict(metrics or {}),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Without a manifest a half-rewritten directory reads as incomplete, never as valid.
        (out / MANIFEST_FILE).unlink(missing_ok=True)
        for name in _OPTIONAL_FILES:
            (out / name).unlink(missing_ok=True)  # a stale extra from an earlier export
        written = [WEIGHTS_FILE, ARCHITECTURE_FILE, METRICS_FILE]
        _write_atomic(out / WEIGHTS_FILE, lambda p: torch.save(state, p))
        architecture = {
            "format": "nas-study-architecture",
            "format_version": FORMAT_VERSION,
            "layout": layout.to_dict(),
            "summary": layout.summary(),
            "input_normalization": dict(normalization or {}),
        }
        _write_json(out / ARCHITECTURE_FILE, architecture)
        _write_json(out / METRICS_FILE, all_metrics)
        example = torch.zeros((2, *layout.input_shape))
        if torchscript:
            _write_atomic(out / TORCHSCRIPT_FILE, lambda p: _save_torchscript(model, example, p))
            written.append(TORCHSCRIPT_FILE)
        if onnx:
            _write_atomic(out / ONNX_FILE, lambda p: _save_onnx(model, example, p))
            written.append(ONNX_FILE)
        manifest = {
            "format": "nas-study-export",
            "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dataset": {"name": dataset, "val_fraction": float(val_fraction)},
            "params": n_params,
            "training": dict(training or {}),
            "provenance": dict(provenance or {}),
            "versions": _versions(),
            "files": {name: _file_entry(out / name) for name in written},
        }
        _write_json(out / MANIFEST_FILE, manifest)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    except ValueError as exc:  # json refuses NaN and infinity in metrics or provenance
        raise ExportError(f"{out}: cannot write the export: {exc}") from None
    return manifest


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    _write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def _save_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still works
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))


def _save_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch")
    # The ONNX optimizer logs every pass at INFO, which the CLI shows: keep it to warnings.
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        _onnx_export(model, example, path, batch)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def _onnx_export(model: nn.Module, example: torch.Tensor, path: Path, batch: Any) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: batch}},
        dynamo=True,
        external_data=False,  # one self-contained file; these models are far below 2 GB
        verbose=False,
    )


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "nas-study": version("nas-study"),
        "torch": torch.__version__,
        "optuna": version("optuna"),
        "python": platform.python_version(),
    }


# -- reading -------------------------------------------------------------------------------


def read_manifest(export_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` and check every file it lists (size and SHA-256).

    Raises:
        ExportError: the manifest is missing or malformed, of a newer format, lacks a
            required file, or a listed file is missing, truncated or modified.
    """
    root = Path(export_dir)
    if not root.is_dir():
        raise ExportError(f"{root}: no such export directory")
    manifest = _read_json(root / MANIFEST_FILE, "manifest")
    path = root / MANIFEST_FILE
    if manifest.get("format") != "nas-study-export":
        raise ExportError(f"{path}: not a nas-study export manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(
            f"{path}: format version {version!r} is not supported (this nas-study reads up to "
            f"{FORMAT_VERSION}); upgrade nas-study"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ExportError(f"{path}: malformed: 'files' must be a table of file checksums")
    for name in REQUIRED_FILES:
        if name not in files:
            raise ExportError(f"{path}: lists no {name}; the export is incomplete")
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise ExportError(f"{path}: malformed: 'dataset' must name the dataset")
    for name, entry in files.items():
        _check_file(root, name, entry, path)
    return manifest


def _check_file(root: Path, name: Any, entry: Any, manifest_path: Path) -> None:
    if (
        not isinstance(name, str)
        or Path(name).name != name  # nothing outside the directory
        or not isinstance(entry, dict)
        or not isinstance(entry.get("sha256"), str)
        or not isinstance(entry.get("bytes"), int)
    ):
        raise ExportError(f"{manifest_path}: malformed entry for file {name!r}")
    file = root / name
    if not file.is_file():
        raise ExportError(f"{file}: missing (listed in {MANIFEST_FILE})")
    size = file.stat().st_size
    if size != entry["bytes"]:
        raise ExportError(
            f"{file}: {'truncated' if size < entry['bytes'] else 'changed'}: "
            f"{size} bytes, the manifest says {entry['bytes']}"
        )
    if _sha256(file) != entry["sha256"]:
        raise ExportError(f"{file}: SHA-256 mismatch: the file was modified after export")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExportError(
            f"{path}: missing; not an export directory, or an incomplete one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read the {what}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: the {what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: the {what} must be a JSON object")
    return data


def read_architecture(export_dir: str | os.PathLike[str]) -> Layout:
    """The verified :class:`Layout` of an export (see :func:`read_manifest`)."""
    read_manifest(export_dir)
    return _layout(Path(export_dir))


def _layout(root: Path) -> Layout:
    path = root / ARCHITECTURE_FILE
    arch = _read_json(path, "architecture")
    if arch.get("format_version") != FORMAT_VERSION or not isinstance(arch.get("layout"), dict):
        raise ExportError(
            f"{path}: malformed: expected format_version {FORMAT_VERSION} and a layout"
        )
    try:
        layout = Layout.from_dict(arch["layout"])
        build_model(layout)  # an unknown family or activation fails here, not later
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportError(f"{path}: invalid layout: {exc}") from None
    return layout


def load_model(
    export_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild an exported model, verified, on ``device`` and in eval mode.

    Inputs must be normalised as :func:`~nas_objectives.load_dataset` normalises the export's
    dataset: ``(x - mean) / std`` per channel, with ``architecture.json``'s
    ``input_normalization``.

    Raises:
        ExportError: a file is missing, truncated or modified, or the weights do not fit the
            architecture.

    Example::

        model = load_model("exports/digits-best")
        classes = model(x).argmax(1)
    """
    root = Path(export_dir)
    read_manifest(root)
    layout = _layout(root)
    model = build_model(layout)
    path = root / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain data
        raise ExportError(f"{path}: unreadable weights: {_first_line(exc)}") from None
    if not isinstance(state, dict):
        raise ExportError(f"{path}: expected a state dict, found {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(
            f"{path}: the weights do not fit {ARCHITECTURE_FILE}: {_first_line(exc)}"
        ) from None
    return model.to(device).eval()


def evaluate_export(
    export_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    data_dir: str | os.PathLike[str] | None = None,
) -> ExportEvaluation:
    """Load an export (verified) and measure its accuracy on its dataset's test split.

    Raises:
        ExportError: as :func:`load_model`.
        DatasetError: the dataset cannot be read from ``data_dir``.
    """
    manifest = read_manifest(export_dir)
    model = load_model(export_dir, device=device)
    ds = manifest["dataset"]
    val_fraction = ds.get("val_fraction", 0.2)
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ExportError(
            f"{Path(export_dir) / MANIFEST_FILE}: invalid dataset.val_fraction {val_fraction!r}"
        )
    data = load_dataset(ds["name"], device=device, data_dir=data_dir, val_fraction=val_fraction)
    correct = (predict(model, data.x_test) == data.y_test).sum().item()
    prov = manifest.get("provenance", {})
    trial = prov.get("trial") if isinstance(prov, dict) else None
    study = prov.get("study") if isinstance(prov, dict) else None
    return ExportEvaluation(
        directory=str(export_dir),
        dataset=ds["name"],
        n_test=len(data.y_test),
        test_accuracy=correct / len(data.y_test) if len(data.y_test) else math.nan,
        params=count_params(model),
        study=study if isinstance(study, str) else None,
        trial=trial if isinstance(trial, int) else None,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
