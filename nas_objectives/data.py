"""Datasets as tensors resident on the training device.

Each dataset is read once per process (see :func:`load_dataset`'s cache), split into
train/validation/test with a fixed seed, and moved to the device as stored (uint8 for
images); the training split's per-channel statistics normalise each batch
(:class:`~nas_objectives._tensor_data.TensorData`). Training then slices these tensors
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_objectives._data_errors import DatasetError, data_error
from nas_objectives._data_files import (
    RawData,
    raw_from_arrays,
    read_csv,
    read_image_folder,
    read_tensor_file,
)
from nas_objectives._data_torchvision import read_torchvision
from nas_objectives._tensor_data import TensorData, make_tensor_data
from nas_objectives.config import DATASETS, EMNIST_SPLITS, FILE_DATASETS

DEFAULT_DATA_DIR = Path("~/.cache/nas-study/data")
# Without a test split of its own, a file dataset holds out this share for test, as digits does.
FILE_TEST_FRACTION = 0.2

_logger = logging.getLogger(__name__)


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
    memory_budget: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TensorData:
    """Return ``name`` split and placed for ``device``; cached for the process.

    Images are kept as uint8 (4x smaller than float32) and normalised per batch by
    :meth:`TensorData.normalize`. Decoded image folders are also cached on disk, in
    ``cache_dir``, so a second run or another worker on the machine skips the decode.

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
        memory_budget: The share of the device's free memory (or, above 1, the bytes) the
            features may take; beyond it they stay in pinned host memory and each batch is
            copied over one batch ahead. Default: :data:`DEFAULT_MEMORY_BUDGET`.
        cache_dir: Where decoded image folders are cached; default
            ``$NAS_STUDY_CACHE_DIR`` or ``~/.cache/nas-study/decoded``.

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
    key += (channels, label, split, seed if name in FILE_DATASETS else None, memory_budget)
    key += (None if cache_dir is None else str(cache_dir), *(_stamp(f) for f in files))
    with _cache_lock:
        if key not in _cache:
            if name in FILE_DATASETS:
                raw = _read_files(name, files[0], files[1], size, channels, label, cache_dir)  # type: ignore[arg-type]
                _cache[key] = _split_files(
                    name, raw, dev, val_fraction, seed, memory_budget, source=files[0]
                )
            else:
                _cache[key] = _load_uncached(
                    name, dev, root, val_fraction, download, split, memory_budget
                )
        data = _cache[key]
    _check_family(data, files[0] or name, family)
    return data


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's (or folder's and its subfolders') size and mtime: part of the process
    cache key, so a file or class folder changed since the last read is read again."""
    if path is None or not path.exists():
        return None
    stats = [path.stat()]
    if path.is_dir():
        stats += [e.stat() for e in os.scandir(path) if e.is_dir()]
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def _check_family(data: TensorData, source: object, family: str | None) -> None:
    """Refuse a CNN (any family but ``mlp``) on tabular ``(N, F, 1, 1)`` data."""
    if family not in (None, "mlp") and data.input_shape[1:] == (1, 1):
        raise data_error(
            source,
            "model.family",
            f"a {family} needs images, but this dataset holds tabular features "
            f'{data.input_shape[:1]}; use family = "mlp"',
            family,
        )


def tensor_data_from_arrays(
    x: Any,
    y: Any,
    *,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "cpu",
    name: str = "arrays",
    family: str | None = None,
    memory_budget: float | None = None,
) -> TensorData:
    """Arrays already in memory (numpy arrays or torch tensors) as :class:`TensorData`.

    The same checks, splits and normalisation as a ``tensors`` file holding the same
    arrays: ``x`` is ``(N, C, H, W)`` or tabular ``(N, F)`` (which becomes
    ``(N, F, 1, 1)``); ``y`` is ``(N,)`` class labels, whole numbers or strings, mapped to
    ``0..K-1`` in sorted order (numbers as numbers), with ``classes`` naming them. Splits
    given as ``x_val``/``y_val`` or ``x_test``/``y_test`` are used as given; the others
    are carved from ``x``/``y`` (20% for test, then ``val_fraction`` of the rest),
    stratified and seeded with ``seed``. Nothing is cached. ``name`` labels the data and
    its error messages; ``family``, when given, refuses a CNN on tabular data;
    ``memory_budget`` is as for :func:`load_dataset`. uint8 images stay uint8.

    Raises:
        DatasetError: one line naming the argument and the value, e.g. arrays of different
            lengths, a single class, non-whole float labels, NaN or infinite features.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> d = tensor_data_from_arrays(rng.normal(size=(50, 3)), np.arange(50) % 2)
        >>> d.input_shape, d.num_classes, d.classes, len(d.x_test)
        ((3, 1, 1), 2, ('0', '1'), 10)
    """
    given = {"x": x, "y": y, "x_val": x_val, "y_val": y_val, "x_test": x_test, "y_test": y_test}
    arrays = {k: _as_numpy(v) for k, v in given.items() if v is not None}
    raw = raw_from_arrays(arrays, name)
    dev = torch.device(device)
    data = _split_files(name, raw, dev, val_fraction, seed, memory_budget, field="y")
    _check_family(data, name, family)
    return data


def _as_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _load_uncached(
    name: str,
    device: torch.device,
    root: Path,
    val_fraction: float,
    download: bool,
    split: str | None,
    memory_budget: float | None,
) -> TensorData:
    if name == "digits":
        x_all, y_all = _digits()
        scale = 1 / 16  # digits' pixels are 0 to 16
        # digits has no official test split: hold out a fixed, seeded 20%.
        perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
        n_test = len(y_all) // 5
        x_test, y_test = x_all[perm[:n_test]], y_all[perm[:n_test]]
        x_train, y_train = x_all[perm[n_test:]], y_all[perm[n_test:]]
        classes = tuple(str(d) for d in range(10))
    else:
        x_train, y_train, x_test, y_test, classes = read_torchvision(name, root, download, split)
        scale = 1 / 255
    # Validation is a fixed, seeded slice of the training split, the same for every trial.
    perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(1))
    n_val = max(1, round(len(y_train) * val_fraction))
    x_val, y_val = x_train[perm[:n_val]], y_train[perm[:n_val]]
    x_train, y_train = x_train[perm[n_val:]], y_train[perm[n_val:]]
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    return make_tensor_data(name, splits, classes, device, scale=scale, memory_budget=memory_budget)


def _read_files(
    name: str,
    path: Path,
    test_path: Path | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
    label: str | None,
    cache_dir: str | os.PathLike[str] | None,
) -> RawData:
    if name == "image_folder":
        return read_image_folder(
            path,
            test_path=test_path,
            image_size=image_size,
            channels=channels,
            cache_dir=cache_dir,
        )
    if name == "tensors":
        return read_tensor_file(path)
    assert label is not None
    return read_csv(path, label)


def _split_files(
    name: str,
    raw: RawData,
    device: torch.device,
    val_fraction: float,
    seed: int,
    memory_budget: float | None = None,
    *,
    source: object = None,
    field: str = "dataset.path",
) -> TensorData:
    """Use the splits the files provide; carve the others, seeded and stratified.

    Raises:
        DatasetError: a class has no sample left in the training split (too few samples
            to stratify, or a given validation/test split holds a class training lacks),
            naming ``source`` (default: ``name``) and ``field``.
    """
    x_train, y_train = raw.x_train, raw.y_train
    carved = 1 + (raw.x_test is None) + (raw.x_val is None)
    counts = torch.bincount(y_train, minlength=len(raw.classes))
    rare = [raw.classes[i] for i in range(len(raw.classes)) if counts[i] < carved]
    if rare and carved > 1:
        raise data_error(
            source or name,
            field,
            f"the split leaves {len(rare)} class(es) out of training: each class needs at "
            f"least {carved} samples (train, validation, test) or the splits provided",
            rare,
        )
    if raw.x_test is not None and raw.y_test is not None:
        x_test, y_test = raw.x_test, raw.y_test
    else:
        x_train, y_train, x_test, y_test = _stratified(x_train, y_train, FILE_TEST_FRACTION, seed)
    if raw.x_val is not None and raw.y_val is not None:
        x_val, y_val = raw.x_val, raw.y_val
    else:
        x_train, y_train, x_val, y_val = _stratified(x_train, y_train, val_fraction, seed)
    _need_every_class_in_training(y_train, raw.classes, source or name, field)
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    return make_tensor_data(
        name, splits, raw.classes, device, scale=raw.scale, memory_budget=memory_budget
    )


def _need_every_class_in_training(
    y_train: torch.Tensor, classes: tuple[str, ...], source: object, field: str
) -> None:
    """A class the model never trains on can only be guessed: refuse such a split."""
    counts = torch.bincount(y_train, minlength=len(classes))
    missing = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if missing:
        raise data_error(
            source,
            field,
            f"the split leaves {len(missing)} class(es) out of training: the validation "
            "or test split holds every sample of them",
            missing,
        )


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


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Whole numbers 0 to 16: stored as uint8, normalised per batch at scale 1/16.
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.uint8)).unsqueeze(1)
    return x, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
