"""An export against its dataset: retraining the model to export, and measuring an export."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_objectives._export_load import load_model
from nas_objectives._export_manifest import (
    ARCHITECTURE_FILE,
    MANIFEST_FILE,
    ExportError,
    read_json,
    read_manifest,
)
from nas_objectives.data import TensorData, load_dataset
from nas_objectives.metrics import count_params
from nas_objectives.models import build_model
from nas_objectives.space import Layout, OptimizerSettings
from nas_objectives.train import TrainResult, predict, train


def retrain(
    layout: Layout,
    settings: OptimizerSettings,
    data: TensorData,
    *,
    epochs: int,
    seed: int,
    augment: Sequence[str] = (),
    min_steps: int = 0,
) -> tuple[nn.Module, TrainResult]:
    """Build ``layout`` and train it on ``data``'s training **and** validation splits.

    The model is initialised exactly as a trial initialises it (``torch.manual_seed(seed)``
    right before :func:`build_model`) and trained by :func:`nas_objectives.train` with the
    same ``seed``, ``augment`` (the study's ``[dataset] augment``) and ``min_steps`` (its
    ``[training] min_steps``); the caller's global
    RNG state is left unchanged. The validation split is still what ``train`` reports per
    epoch, but it is now seen in training, so that figure is a training accuracy. Returns
    the model in eval mode, on ``data``'s device.
    """
    merged = dataclasses.replace(
        data,
        x_train=torch.cat([data.x_train, data.x_val]),
        y_train=torch.cat([data.y_train, data.y_val]),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(layout)
    result = train(
        model, settings, merged, epochs=epochs, seed=seed, augment=augment, min_steps=min_steps
    )
    return model.eval(), result


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


#: The :func:`load_dataset` arguments a manifest may store beside the name and val_fraction.
DATASET_OPTIONS = ("path", "test_path", "image_size", "channels", "label", "split", "seed")


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
    options = {k: ds[k] for k in DATASET_OPTIONS if k in ds}
    if "image_size" in options:
        options["image_size"] = tuple(options["image_size"])
    data = load_dataset(
        ds["name"], device=device, data_dir=data_dir, val_fraction=val_fraction, **options
    )
    exported = read_json(Path(export_dir) / ARCHITECTURE_FILE, "architecture").get("classes")
    if exported is not None and list(exported) != list(data.classes):
        raise ExportError(
            f"{Path(export_dir) / ARCHITECTURE_FILE}: classes: the model was exported for "
            f"{len(exported)} classes {exported[:5]}..., but the dataset now has "
            f"{len(data.classes)}: {list(data.classes[:5])}..."
        )
    correct = (predict(model, data.x_test, prepare=data.normalize) == data.y_test).sum().item()
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
