"""Writers of small datasets in their real on-disk formats, for tests and benchmarks.

The files are byte-for-byte the formats torchvision's own dataset classes read, so code
under test goes through the real reading path with no download and no mock:

- :func:`write_mnist_like` writes MNIST / Fashion-MNIST IDX files
  (``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``);
- :func:`write_cifar10_like` writes the CIFAR-10 "python version" pickles
  (``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``).

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
    folder: Literal["MNIST", "FashionMNIST"] = "MNIST",
    n_train: int = 200,
    n_test: int = 50,
    seed: int = 0,
) -> FixtureArrays:
    """Write MNIST-format IDX files under ``root/<folder>/raw`` and return what was written.

    Args:
        root: The ``root`` torchvision's ``MNIST`` / ``FashionMNIST`` is given.
        folder: ``"MNIST"`` or ``"FashionMNIST"`` (the dataset class's name).
        n_train: Number of training images (``train-*`` files).
        n_test: Number of test images (``t10k-*`` files).
        seed: Seed for labels and noise; the same seed writes the same bytes.
    """
    if folder not in ("MNIST", "FashionMNIST"):
        raise ValueError(f"folder must be 'MNIST' or 'FashionMNIST', not {folder!r}")
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
