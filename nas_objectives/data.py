"""Datasets as normalised tensors resident on the training device.

Each dataset is read once per process (see :func:`load_dataset`'s cache), split into
train/validation/test with a fixed seed, normalised once with the training split's
per-channel statistics, and moved to the device. Training then slices these tensors
directly: no ``DataLoader`` and no per-sample transform.

``digits`` is scikit-learn's bundled 8x8 digits and needs no files. ``mnist``,
``fashion_mnist``, ``kmnist``, ``emnist``, ``cifar10``, ``cifar100`` and ``svhn`` are read
by torchvision's own dataset classes from ``data_dir`` (downloaded there when the network
allows). ``image_folder``, ``tensors`` and ``csv`` are the user's own files
(:mod:`nas_objectives._data_files`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas_objectives._data_errors import DatasetError, data_error
from nas_objectives._data_files import (
    FILE_DATASETS,
    RawData,
    read_csv,
    read_image_folder,
    read_tensor_file,
)
from nas_objectives._data_torchvision import EMNIST_SPLITS, TORCHVISION_DATASETS, read_torchvision

DATASETS = ("digits", *TORCHVISION_DATASETS, *FILE_DATASETS)
DEFAULT_DATA_DIR = Path("~/.cache/nas-study/data")
# Without a test split of its own, a file dataset holds out this share for test, as digits does.
FILE_TEST_FRACTION = 0.2

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorData:
    """Normalised splits of one dataset, all on the same device.

    ``x_*`` are float32 ``(N, C, H, W)`` (tabular data: ``(N, F, 1, 1)``); ``y_*`` are int64
    class indices. ``mean`` and ``std`` are the per-channel statistics of the training split
    that normalised them, on the raw scale (digits: 0 to 16; images: 0 to 1; tensor and CSV
    files: as stored), so a deployed model's inputs can be normalised the same way.
    ``classes`` names class index ``i`` (folder names, CSV label values, ...).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def device(self) -> torch.device:
        return self.x_train.device


_cache: dict[tuple[object, ...], TensorData] = {}
_cache_lock = threading.Lock()


def load_dataset(
    name: str,
    *,
    device: str | torch.device = "cpu",
    data_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.2,
    download: bool = True,
    path: str | os.PathLike[str] | None = None,
    test_path: str | os.PathLike[str] | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    label: str | None = None,
    split: str | None = None,
    seed: int = 0,
    family: str | None = None,
) -> TensorData:
    """Return ``name`` split, normalised and on ``device``; cached for the process.

    Args:
        name: One of :data:`DATASETS`.
        device: Where the tensors live.
        data_dir: Where torchvision datasets are read from (and downloaded to). Defaults to
            ``~/.cache/nas-study/data``.
        val_fraction: Share of the training split held out for validation.
        download: Try to download a missing torchvision dataset.
        path: The folder (``image_folder``) or file (``tensors``, ``csv``) to read.
        test_path: ``image_folder`` only: a separate folder for the test split.
        image_size: ``image_folder`` only: ``(height, width)`` every image is resized to.
        channels: ``image_folder`` only: 1 (grayscale) or 3 (RGB); default from the first image.
        label: ``csv`` only: the class column.
        split: ``emnist`` only: one of :data:`EMNIST_SPLITS` (default ``"balanced"``).
        seed: Seeds the stratified splits of file datasets that lack their own.
        family: The model family that will train; a CNN on tabular data is refused.

    Raises:
        DatasetError: unknown name, files missing where they cannot be downloaded, files
            that cannot be read, or data that does not fit ``family``.

    Example:
        >>> d = load_dataset("digits")
        >>> d.input_shape, d.num_classes, len(d.x_train) + len(d.x_val) + len(d.x_test)
        ((1, 8, 8), 10, 1797)
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if name in FILE_DATASETS and path is None:
        raise DatasetError(f"dataset {name!r}: dataset.path is required")
    if name == "csv" and label is None:
        raise DatasetError("dataset 'csv': dataset.label is required")
    if name == "emnist" and split is not None and split not in EMNIST_SPLITS:
        raise DatasetError(f"emnist: dataset.split: unknown split {split!r}")
    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    dev = torch.device(device)
    files = tuple(None if p is None else Path(p).expanduser().absolute() for p in (path, test_path))
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    key: tuple[object, ...] = (name, str(dev), str(root), float(val_fraction), files, size)
    key += (channels, label, split, seed if name in FILE_DATASETS else None)
    with _cache_lock:
        if key not in _cache:
            if name in FILE_DATASETS:
                raw = _read_files(name, files[0], files[1], size, channels, label)  # type: ignore[arg-type]
                _cache[key] = _split_files(name, raw, dev, val_fraction, seed)
            else:
                _cache[key] = _load_uncached(name, dev, root, val_fraction, download, split)
        data = _cache[key]
    if family not in (None, "mlp") and data.input_shape[1:] == (1, 1):
        raise data_error(
            files[0] or name,
            "model.family",
            f"a {family} needs images, but this dataset holds tabular features "
            f'{data.input_shape[:1]}; use family = "mlp"',
            family,
        )
    return data


def _load_uncached(
    name: str,
    device: torch.device,
    root: Path,
    val_fraction: float,
    download: bool,
    split: str | None,
) -> TensorData:
    if name == "digits":
        x_all, y_all = _digits()
        # digits has no official test split: hold out a fixed, seeded 20%.
        perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
        n_test = len(y_all) // 5
        x_test, y_test = x_all[perm[:n_test]], y_all[perm[:n_test]]
        x_train, y_train = x_all[perm[n_test:]], y_all[perm[n_test:]]
        classes = tuple(str(d) for d in range(10))
    else:
        x_train, y_train, x_test, y_test, classes = read_torchvision(name, root, download, split)
    # Validation is a fixed, seeded slice of the training split, the same for every trial.
    perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(1))
    n_val = max(1, round(len(y_train) * val_fraction))
    x_val, y_val = x_train[perm[:n_val]], y_train[perm[:n_val]]
    x_train, y_train = x_train[perm[n_val:]], y_train[perm[n_val:]]
    return _normalised(
        name, (x_train, y_train, x_val, y_val, x_test, y_test), len(classes), classes, device
    )


def _read_files(
    name: str,
    path: Path,
    test_path: Path | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
    label: str | None,
) -> RawData:
    if name == "image_folder":
        return read_image_folder(
            path, test_path=test_path, image_size=image_size, channels=channels
        )
    if name == "tensors":
        return read_tensor_file(path)
    assert label is not None
    return read_csv(path, label)


def _split_files(
    name: str, raw: RawData, device: torch.device, val_fraction: float, seed: int
) -> TensorData:
    """Use the splits the files provide; carve the others, seeded and stratified."""
    x_train, y_train = raw.x_train, raw.y_train
    if raw.x_test is not None and raw.y_test is not None:
        x_test, y_test = raw.x_test, raw.y_test
    else:
        x_train, y_train, x_test, y_test = _stratified(x_train, y_train, FILE_TEST_FRACTION, seed)
    if raw.x_val is not None and raw.y_val is not None:
        x_val, y_val = raw.x_val, raw.y_val
    else:
        x_train, y_train, x_val, y_val = _stratified(x_train, y_train, val_fraction, seed)
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    return _normalised(name, splits, len(raw.classes), raw.classes, device)


def _stratified(
    x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_out = max(1, round(n * fraction))
    if n_out >= n:
        raise DatasetError(f"too few samples ({n}) to hold out {fraction:.0%} and keep some")
    index = np.arange(n)
    try:
        keep, out = train_test_split(index, test_size=n_out, random_state=seed, stratify=y.numpy())
    except ValueError:
        # A class with one sample, or fewer held-out rows than classes: split unstratified.
        _logger.info("too few samples per class to stratify; splitting at random")
        keep, out = train_test_split(index, test_size=n_out, random_state=seed)
    keep_t, out_t = torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(out))
    return x[keep_t], y[keep_t], x[out_t], y[out_t]


def _normalised(
    name: str,
    splits: tuple[torch.Tensor, ...],
    num_classes: int,
    classes: tuple[str, ...],
    device: torch.device,
) -> TensorData:
    x_train, y_train, x_val, y_val, x_test, y_test = splits
    # Normalise once, with training statistics only, per channel.
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

    def prep(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean) / std).to(device).contiguous()

    def labels(y: torch.Tensor) -> torch.Tensor:
        return y.to(device=device, dtype=torch.long)

    return TensorData(
        name=name,
        x_train=prep(x_train),
        y_train=labels(y_train),
        x_val=prep(x_val),
        y_val=labels(y_val),
        x_test=prep(x_test),
        y_test=labels(y_test),
        num_classes=num_classes,
        mean=tuple(float(v) for v in mean.flatten()),
        std=tuple(float(v) for v in std.flatten()),
        classes=classes,
    )


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    return x, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
