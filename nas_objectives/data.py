"""Datasets as normalised tensors resident on the training device.

Each dataset is read once per process (see :func:`load_dataset`'s cache), split into
train/validation/test with a fixed seed, normalised once with the training split's
per-channel statistics, and moved to the device. Training then slices these tensors
directly: no ``DataLoader`` and no per-sample transform.

``digits`` is scikit-learn's bundled 8x8 digits and needs no files. ``mnist``,
``fashion_mnist`` and ``cifar10`` are read by torchvision's own dataset classes from
``data_dir`` (downloaded there when the network allows).
"""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from nas_objectives._errors import first_line

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
DEFAULT_DATA_DIR = Path("~/.cache/nas-study/data")


class DatasetError(RuntimeError):
    """A dataset is unknown, missing or unreadable."""


@dataclass(frozen=True)
class TensorData:
    """Normalised splits of one dataset, all on the same device.

    ``x_*`` are float32 ``(N, C, H, W)``; ``y_*`` are int64 class indices. ``mean`` and
    ``std`` are the per-channel statistics of the training split that normalised them, on
    the raw scale (digits: 0 to 16; torchvision images: 0 to 1), so a deployed model's
    inputs can be normalised the same way.
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
) -> TensorData:
    """Return ``name`` split, normalised and on ``device``; cached for the process.

    Args:
        name: One of :data:`DATASETS`.
        device: Where the tensors live.
        data_dir: Where torchvision datasets are read from (and downloaded to). Defaults to
            ``~/.cache/nas-study/data``.
        val_fraction: Share of the training split held out for validation.
        download: Try to download a missing torchvision dataset.

    Raises:
        DatasetError: unknown name, files missing where they cannot be downloaded, or
            files that cannot be read.

    Example:
        >>> d = load_dataset("digits")
        >>> d.input_shape, d.num_classes, len(d.x_train) + len(d.x_val) + len(d.x_test)
        ((1, 8, 8), 10, 1797)
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    dev = torch.device(device)
    key = (name, str(dev), str(root), float(val_fraction))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load_uncached(name, dev, root, val_fraction, download)
        return _cache[key]


def _load_uncached(
    name: str, device: torch.device, root: Path, val_fraction: float, download: bool
) -> TensorData:
    if name == "digits":
        x_all, y_all = _digits()
        # digits has no official test split: hold out a fixed, seeded 20%.
        perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
        n_test = len(y_all) // 5
        x_test, y_test = x_all[perm[:n_test]], y_all[perm[:n_test]]
        x_train, y_train = x_all[perm[n_test:]], y_all[perm[n_test:]]
        num_classes = 10
    else:
        x_train, y_train, x_test, y_test, num_classes = _torchvision(name, root, download)
    # Validation is a fixed, seeded slice of the training split, the same for every trial.
    perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(1))
    n_val = max(1, round(len(y_train) * val_fraction))
    x_val, y_val = x_train[perm[:n_val]], y_train[perm[:n_val]]
    x_train, y_train = x_train[perm[n_val:]], y_train[perm[n_val:]]

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
    )


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    return x, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))


_WHERE = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion_mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
}


def _torchvision(
    name: str, root: Path, download: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    from torchvision import datasets

    cls: type = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": _cifar10_class(),
    }[name]
    splits = []
    for train in (True, False):
        try:
            try:
                ds = cls(str(root), train=train, download=False)
            except RuntimeError:
                if not download or os.environ.get("NAS_STUDY_OFFLINE"):
                    raise
                ds = cls(str(root), train=train, download=True)
        except (RuntimeError, OSError) as exc:
            raise DatasetError(
                f"dataset {name!r} not found under {root} and could not be downloaded "
                f"({first_line(exc)}); put the files at {root}/{_WHERE[name]} or pass --data-dir"
            ) from exc
        except _UNREADABLE as exc:
            # A truncated or foreign file (say, a download cut short) fails inside
            # torchvision's readers with these, not with RuntimeError.
            raise DatasetError(
                f"dataset {name!r} under {root} is unreadable ({first_line(exc)}); "
                f"replace the files at {root}/{_WHERE[name]}"
            ) from exc
        data = torch.as_tensor(np.asarray(ds.data))
        if data.ndim == 3:  # MNIST-style (N, H, W) uint8
            x = data.unsqueeze(1).float() / 255.0
        else:  # CIFAR-style (N, H, W, C) uint8
            x = data.permute(0, 3, 1, 2).float() / 255.0
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        splits += [x, y]
    return splits[0], splits[1], splits[2], splits[3], len(ds.classes)


# What torchvision's IDX and pickle readers raise on a truncated or malformed file.
_UNREADABLE = (
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AssertionError,
    pickle.UnpicklingError,
)


def _cifar10_class() -> type:
    from torchvision.datasets import CIFAR10

    class LocalCIFAR10(CIFAR10):
        """torchvision's CIFAR10 reader, accepting local files without their md5.

        torchvision checks every batch file against the official md5 before reading it. We
        keep its reader and its checked download, but read a local copy as it is, so a
        re-packed copy or a small fixture in the same on-disk format loads too.
        """

        train_list: ClassVar[list[list[str | None]]] = [[f, None] for f, _ in CIFAR10.train_list]
        test_list: ClassVar[list[list[str | None]]] = [[f, None] for f, _ in CIFAR10.test_list]
        meta: ClassVar[dict[str, str | None]] = {**CIFAR10.meta, "md5": None}

    return LocalCIFAR10
