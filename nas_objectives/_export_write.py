"""Writing an export directory: the weights, architecture, metrics, extras and manifest."""

from __future__ import annotations

import copy
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_objectives._export_manifest import (
    ARCHITECTURE_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    METRICS_FILE,
    ONNX_FILE,
    OPTIONAL_FILES,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    ExportError,
    file_entry,
)
from nas_objectives.metrics import count_flops, count_params
from nas_objectives.models import build_model
from nas_objectives.space import Layout

_ONNX_PACKAGES = ("onnx", "onnxscript")


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


def save_export(
    out_dir: str | os.PathLike[str],
    model: nn.Module,
    layout: Layout,
    *,
    dataset: str,
    val_fraction: float,
    dataset_options: Mapping[str, Any] | None = None,
    normalization: Mapping[str, Any] | None = None,
    classes: Sequence[str] = (),
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
        dataset_options: The other :func:`load_dataset` arguments that read the dataset
            (``path``, ``image_size``, ``label``, ``seed``...), JSON-ready; those that are
            None are left out. Evaluation passes them back.
        normalization: The per-channel ``mean`` and ``std`` that inputs are normalised
            with (:attr:`TensorData.mean`, :attr:`TensorData.std`) and the ``scale`` of a
            stored unit (1/255 for uint8 pixels), stored in ``architecture.json`` as
            ``input_normalization`` for deployment: a model input is
            ``(x * scale - mean) / std`` of raw pixels ``x``.
        classes: The name of each output class, in index order (``architecture.json``'s
            ``classes``); evaluation checks the dataset still has them.
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
        for name in OPTIONAL_FILES:
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
        if classes:
            architecture["classes"] = list(classes)
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
            "dataset": {
                "name": dataset,
                "val_fraction": float(val_fraction),
                **{k: v for k, v in (dataset_options or {}).items() if v is not None},
            },
            "params": n_params,
            "training": dict(training or {}),
            "provenance": dict(provenance or {}),
            "versions": _versions(),
            "files": {name: file_entry(out / name) for name in written},
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
