"""torchvision's dataset classes, read from ``data_dir`` as uint8 tensors.

Each class is torchvision's own reader. Those that check the official md5 before reading a
local file (CIFAR, SVHN) are subclassed to read a local copy as it is, so a re-packed copy
or a small fixture in the same on-disk format loads too; their checked download is kept.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_objectives._data_errors import DatasetError
from nas_objectives._errors import first_line

# Where each dataset's files go under data_dir, for the "not found" message.
_WHERE = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion_mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "kmnist": "KMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "emnist": "EMNIST/raw/emnist-{split}-{train,test}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "cifar100": "cifar-100-python/{train,test,meta}",
    "svhn": "{train,test}_32x32.mat",
}

# What torchvision's IDX, pickle and .mat readers raise on a truncated or malformed file.
_UNREADABLE = (
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AssertionError,
    pickle.UnpicklingError,
)


def read_torchvision(
    name: str, root: Path, download: bool, split: str | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Train and test images (uint8 ``(N, C, H, W)``), labels and class names."""
    where = _WHERE[name].replace("{split}", split or "balanced")
    splits: list[torch.Tensor] = []
    classes: tuple[str, ...] = ()
    for train in (True, False):
        try:
            try:
                ds = _make(name, root, train, split, download=False)
            except RuntimeError:
                if not download or os.environ.get("NAS_STUDY_OFFLINE"):
                    raise
                ds = _make(name, root, train, split, download=True)
        except (RuntimeError, OSError) as exc:
            raise DatasetError(
                f"dataset {name!r} not found under {root} and could not be downloaded "
                f"({first_line(exc)}); put the files at {root}/{where} or pass --data-dir"
            ) from exc
        except _UNREADABLE as exc:
            # A truncated or foreign file (say, a download cut short) fails inside
            # torchvision's readers with these, not with RuntimeError.
            raise DatasetError(
                f"dataset {name!r} under {root} is unreadable ({first_line(exc)}); "
                f"replace the files at {root}/{where}"
            ) from exc
        data = torch.as_tensor(np.asarray(ds.data))
        if data.ndim == 3:  # MNIST-style (N, H, W) uint8
            x = data.unsqueeze(1)
        elif name == "svhn":  # torchvision already gives (N, C, H, W)
            x = data
        else:  # CIFAR-style (N, H, W, C) uint8
            x = data.permute(0, 3, 1, 2)
        x = x.to(torch.uint8).contiguous()
        targets = ds.labels if name == "svhn" else ds.targets
        splits += [x, torch.as_tensor(np.asarray(targets), dtype=torch.long)]
        classes = tuple(str(c) for c in getattr(ds, "classes", [str(d) for d in range(10)]))
    return splits[0], splits[1], splits[2], splits[3], classes


def _make(name: str, root: Path, train: bool, split: str | None, *, download: bool) -> Any:
    from torchvision import datasets

    if name == "svhn":
        return _svhn_class()(str(root), split="train" if train else "test", download=download)
    if name == "emnist":
        return datasets.EMNIST(str(root), split=split or "balanced", train=train, download=download)
    cls: type = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "kmnist": datasets.KMNIST,
        "cifar10": _without_md5("CIFAR10"),
        "cifar100": _without_md5("CIFAR100"),
    }[name]
    return cls(str(root), train=train, download=download)


def _without_md5(name: str) -> type:
    """torchvision's CIFAR10 or CIFAR100 reader, accepting local files without their md5.

    torchvision checks every batch file against the official md5 before reading it. We keep
    its reader and its checked download, but read a local copy as it is, so a re-packed
    copy or a small fixture in the same on-disk format loads too.
    """
    from torchvision import datasets

    base = getattr(datasets, name)
    return type(
        f"Local{name}",
        (base,),
        {
            "train_list": [[f, None] for f, _ in base.train_list],
            "test_list": [[f, None] for f, _ in base.test_list],
            "meta": {**base.meta, "md5": None},
        },
    )


def _svhn_class() -> type:
    from torchvision.datasets import SVHN

    class LocalSVHN(SVHN):
        """torchvision's SVHN reader (scipy's loadmat), reading a local file without its md5."""

        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    return LocalSVHN
