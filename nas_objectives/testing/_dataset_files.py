"""Writers of small datasets in their real on-disk formats (see :mod:`nas_objectives.testing`).

The files are byte-for-byte the formats torchvision's own dataset classes read, so code
under test goes through the real reading path with no download and no mock:

- :func:`write_mnist_like` writes MNIST / Fashion-MNIST IDX files
  (``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``);
- :func:`write_cifar10_like` writes the CIFAR-10 "python version" pickles
  (``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``);
- :func:`write_mnist_like` with ``folder="KMNIST"`` writes KMNIST (the same IDX files) and
  :func:`write_emnist_like` EMNIST (``<root>/EMNIST/raw/emnist-<split>-{train,test}-*``);
- :func:`write_cifar100_like` writes ``<root>/cifar-100-python/{train,test,meta}``;
- :func:`write_svhn_like` writes SVHN's MATLAB files ``<root>/{train,test}_32x32.mat``.

The user's own formats, as a user would make them:

- :func:`write_image_folder` writes an ``ImageFolder`` tree of PNG or JPEG files;
- :func:`write_table` writes ``(x, y)`` features and labels as ``.npz``, ``.pt`` or ``.csv``.

The images are class-dependent (a bright patch whose position, and for CIFAR colour, depend
on the label, over uniform noise), so a model trained on them learns something.

Example:
    >>> import tempfile
    >>> from torchvision.datasets import MNIST
    >>> root = tempfile.mkdtemp()
    >>> arrays = write_mnist_like(root, n_train=20, n_test=10)
    >>> ds = MNIST(root, train=False)
    >>> tuple(ds.data.shape), bool((ds.targets.numpy() == arrays.y_test).all())
    ((10, 28, 28), True)
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

NUM_CLASSES = 10
CIFAR10_LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the rank.
_IDX_UBYTE_RANK3 = 0x00000803
_IDX_UBYTE_RANK1 = 0x00000801


class FixtureArrays(NamedTuple):
    """What a writer wrote, in the order it wrote it.

    ``x_*`` are uint8: ``(N, 28, 28)`` for MNIST-like data, ``(N, 3, 32, 32)`` (channels
    first, as CIFAR stores them) for CIFAR-like data. ``y_*`` are int64 labels in ``[0, 10)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def write_mnist_like(
    root: str | os.PathLike[str],
    folder: Literal["MNIST", "FashionMNIST", "KMNIST"] = "MNIST",
    n_train: int = 200,
    n_test: int = 50,
    seed: int = 0,
) -> FixtureArrays:
    """Write MNIST-format IDX files under ``root/<folder>/raw`` and return what was written.

    Args:
        root: The ``root`` torchvision's ``MNIST`` / ``FashionMNIST`` is given.
        folder: ``"MNIST"``, ``"FashionMNIST"`` or ``"KMNIST"`` (the dataset class's name).
        n_train: Number of training images (``train-*`` files).
        n_test: Number of test images (``t10k-*`` files).
        seed: Seed for labels and noise; the same seed writes the same bytes.
    """
    if folder not in ("MNIST", "FashionMNIST", "KMNIST"):
        raise ValueError(f"folder must be 'MNIST', 'FashionMNIST' or 'KMNIST', not {folder!r}")
    rng = np.random.default_rng(seed)
    x_train, y_train = _mnist_images(rng, n_train)
    x_test, y_test = _mnist_images(rng, n_test)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", x_train, y_train), ("t10k", x_test, y_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", _IDX_UBYTE_RANK3, x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", _IDX_UBYTE_RANK1, y.astype(np.uint8))
    return FixtureArrays(x_train, y_train, x_test, y_test)


def write_cifar10_like(
    root: str | os.PathLike[str],
    n_per_batch: int = 20,
    n_test: int = 50,
    seed: int = 0,
) -> FixtureArrays:
    """Write CIFAR-10 python-version pickles under ``root/cifar-10-batches-py``.

    Each batch is a dict with ``"batch_label"``, ``"labels"`` (a list of ints), ``"data"``
    (uint8 ``(N, 3072)``: the red plane, then green, then blue, each row-major 32x32) and
    ``"filenames"``, as in the real files; ``batches.meta`` holds ``"label_names"``.
    torchvision reads them with ``pickle.load(f, encoding="latin1")``, under which the real
    (Python 2) files have ``str`` keys, so these use ``str`` keys too.

    Args:
        root: The ``root`` torchvision's ``CIFAR10`` is given.
        n_per_batch: Images in each of the five training batches.
        n_test: Images in ``test_batch``.
        seed: Seed for labels and noise; the same seed writes the same bytes.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    batches = [(f"data_batch_{i}", f"training batch {i} of 5", n_per_batch) for i in range(1, 6)]
    for filename, batch_label, n in [*batches, ("test_batch", "testing batch 1 of 1", n_test)]:
        x, y = _cifar_images(rng, n)
        entry = {
            "batch_label": batch_label,
            "labels": [int(v) for v in y],
            "data": x.reshape(n, 3 * 32 * 32),
            "filenames": [
                f"{CIFAR10_LABEL_NAMES[v]}_{filename}_{i:05d}.png" for i, v in enumerate(y)
            ],
        }
        _write_pickle(folder / filename, entry)
        xs.append(x)
        ys.append(y)
    meta = {
        "num_cases_per_batch": n_per_batch,
        "label_names": list(CIFAR10_LABEL_NAMES),
        "num_vis": 3 * 32 * 32,
    }
    _write_pickle(folder / "batches.meta", meta)
    return FixtureArrays(np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5])


def write_emnist_like(
    root: str | os.PathLike[str],
    split: str = "balanced",
    n_train: int = 200,
    n_test: int = 50,
    seed: int = 0,
) -> FixtureArrays:
    """Write EMNIST IDX files ``root/EMNIST/raw/emnist-<split>-{train,test}-*-ubyte``."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _mnist_images(rng, n_train)
    x_test, y_test = _mnist_images(rng, n_test)
    raw = Path(root) / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        prefix = f"emnist-{split}-{part}"
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", _IDX_UBYTE_RANK3, x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", _IDX_UBYTE_RANK1, y.astype(np.uint8))
    return FixtureArrays(x_train, y_train, x_test, y_test)


def write_cifar100_like(
    root: str | os.PathLike[str], n_train: int = 100, n_test: int = 50, seed: int = 0
) -> FixtureArrays:
    """Write CIFAR-100 python-version pickles ``root/cifar-100-python/{train,test,meta}``.

    As in the real files, entries hold ``"fine_labels"`` and ``"coarse_labels"``, and
    ``meta`` holds ``"fine_label_names"`` (100 of them; the fixture uses the first ten).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for filename, n in (("train", n_train), ("test", n_test)):
        x, y = _cifar_images(rng, n)
        entry = {
            "filenames": [f"{filename}_{i:05d}.png" for i in range(n)],
            "batch_label": f"{filename}ing batch 1 of 1",
            "fine_labels": [int(v) for v in y],
            "coarse_labels": [int(v) // 5 for v in y],
            "data": x.reshape(n, 3 * 32 * 32),
        }
        _write_pickle(folder / filename, entry)
        out += [x, y]
    meta = {
        "fine_label_names": [f"class_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"super_{i:02d}" for i in range(20)],
    }
    _write_pickle(folder / "meta", meta)
    return FixtureArrays(*out)


def write_svhn_like(
    root: str | os.PathLike[str], n_train: int = 100, n_test: int = 50, seed: int = 0
) -> FixtureArrays:
    """Write SVHN's cropped-digits MATLAB files ``root/{train,test}_32x32.mat``.

    As in the real files, ``X`` is uint8 ``(32, 32, 3, N)`` and ``y`` is ``(N, 1)`` with
    the digit 0 stored as label 10. The returned ``x_*`` are ``(N, 3, 32, 32)``.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    out = []
    for filename, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x, y = _cifar_images(rng, n)
        stored_y = np.where(y == 0, 10, y).astype(np.uint8).reshape(n, 1)
        savemat(str(Path(root) / filename), {"X": x.transpose(2, 3, 1, 0), "y": stored_y})
        out += [x, y]
    return FixtureArrays(*out)


def write_image_folder(
    root: str | os.PathLike[str],
    classes: tuple[str, ...] = ("cat", "dog", "owl"),
    n_per_class: int = 8,
    size: tuple[int, int] = (12, 10),
    mode: Literal["RGB", "L"] = "RGB",
    suffix: Literal[".png", ".jpg"] = ".png",
    seed: int = 0,
) -> Path:
    """Write ``root/<class>/<i><suffix>`` images (``size`` is (height, width)); returns ``root``.

    Each class is a different brightness, so a model trained on them learns something.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    for c, name in enumerate(classes):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            base = 40 + 160 * c // max(1, len(classes) - 1)
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            pixels = np.clip(base + rng.integers(-20, 20, size=shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / f"{i:03d}{suffix}")
    return Path(root)


def separable_table(
    n: int = 60, n_features: int = 4, n_classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, n_features)`` float32 and balanced labels ``(n,)`` in ``[0, n_classes)``."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    x[:, 0] += 3.0 * y  # the first feature separates the classes
    return x, y


def write_table(
    path: str | os.PathLike[str],
    x: np.ndarray,
    y: np.ndarray,
    *,
    label: str = "target",
    **extra: np.ndarray,
) -> Path:
    """Write ``x``/``y`` (and ``extra`` arrays such as ``x_test``) to ``.npz``, ``.pt`` or ``.csv``.

    A CSV gets a header ``f0, f1, ..., <label>``; ``y`` may hold strings there.
    """
    import csv

    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".npz":
        np.savez(p, **{"x": x, "y": y, **extra})  # type: ignore[arg-type]
    elif p.suffix == ".pt":
        arrays = {"x": x, "y": y, **extra}
        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}, p)
    elif p.suffix == ".csv":
        with p.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*(f"f{j}" for j in range(x.shape[1])), label])
            for row, target in zip(x.tolist(), y.tolist(), strict=True):
                writer.writerow([*row, target])
    else:
        raise ValueError(f"unknown suffix {p.suffix!r}")
    return p


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    # Balanced classes, shuffled: every class appears once n >= 10.
    return rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int64)


def _mnist_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(rng, n)
    x = rng.integers(0, 96, size=(n, 28, 28), dtype=np.uint8)
    # A bright 6x8 patch in one of ten class-specific cells of a 4x3 grid.
    for c in range(NUM_CLASSES):
        r0, c0 = 2 + 6 * (c // 3), 2 + 8 * (c % 3)
        x[y == c, r0 : r0 + 6, c0 : c0 + 8] = rng.integers(
            160, 256, size=(int((y == c).sum()), 6, 8), dtype=np.uint8
        )
    return x, y


def _cifar_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(rng, n)
    x = rng.integers(0, 96, size=(n, 3, 32, 32), dtype=np.uint8)
    # A bright 10x6 patch whose cell (2 rows x 5 columns) and colour depend on the class.
    for c in range(NUM_CLASSES):
        r0, c0 = 4 + 14 * (c // 5), 1 + 6 * (c % 5)
        x[y == c, c % 3, r0 : r0 + 10, c0 : c0 + 6] = rng.integers(
            160, 256, size=(int((y == c).sum()), 10, 6), dtype=np.uint8
        )
    return x, y


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    if array.dtype != np.uint8 or magic & 0xFF != array.ndim:
        raise ValueError(
            f"IDX magic {magic:#010x} does not fit a {array.dtype} {array.ndim}-d array"
        )
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)  # big-endian, as IDX is
    path.write_bytes(header + np.ascontiguousarray(array).tobytes())


def _write_pickle(path: Path, obj: object) -> None:
    # Protocol 2, like the real files (written by Python 2's cPickle).
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)
