"""Reading an export back: its verified architecture and the rebuilt model."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from nas_objectives._errors import first_line
from nas_objectives._export_manifest import (
    ARCHITECTURE_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    ExportError,
    read_json,
    read_manifest,
)
from nas_objectives.models import build_model
from nas_objectives.space import Layout


def read_architecture(export_dir: str | os.PathLike[str]) -> Layout:
    """The verified :class:`Layout` of an export (see :func:`read_manifest`)."""
    read_manifest(export_dir)
    return _layout(Path(export_dir))


def _layout(root: Path) -> Layout:
    path = root / ARCHITECTURE_FILE
    arch = read_json(path, "architecture")
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
    dataset: ``(x * scale - mean) / std`` per channel for raw inputs ``x``, with
    ``architecture.json``'s ``input_normalization``.

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
        raise ExportError(f"{path}: unreadable weights: {first_line(exc)}") from None
    if not isinstance(state, dict):
        raise ExportError(f"{path}: expected a state dict, found {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(
            f"{path}: the weights do not fit {ARCHITECTURE_FILE}: {first_line(exc)}"
        ) from None
    return model.to(device).eval()
