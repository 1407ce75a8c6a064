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
    >>> load_model(out)(d.normalize(d.x_test[:4])).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

# The code lives in private modules, one job each; this module is the public face and keeps
# every name that was importable from it before the split.
from nas_objectives._export_load import load_model, read_architecture
from nas_objectives._export_manifest import (
    ARCHITECTURE_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    METRICS_FILE,
    ONNX_FILE,
    REQUIRED_FILES,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    ExportError,
    read_manifest,
)
from nas_objectives._export_retrain import ExportEvaluation, evaluate_export, retrain
from nas_objectives._export_write import check_export_dir, check_export_formats, save_export

__all__ = [
    "ARCHITECTURE_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "ONNX_FILE",
    "REQUIRED_FILES",
    "TORCHSCRIPT_FILE",
    "WEIGHTS_FILE",
    "ExportError",
    "ExportEvaluation",
    "check_export_dir",
    "check_export_formats",
    "evaluate_export",
    "load_model",
    "read_architecture",
    "read_manifest",
    "retrain",
    "save_export",
]
