"""Helpers for testing code that reads datasets, shipped as :mod:`optuna.testing` is.

Small datasets written in each format's real on-disk layout, so the code under test reads
them through the real readers with no download and no mock. The project's tests and its
benchmarks both use them (neither imports the other); a user's plug-in family or data
reader can test itself against the same files.

Example:
    >>> import tempfile
    >>> from nas_objectives.testing import separable_table, write_table
    >>> x, y = separable_table(n=30, n_features=3)
    >>> path = write_table(f"{tempfile.mkdtemp()}/data.npz", x, y)
    >>> path.suffix
    '.npz'
"""

from __future__ import annotations

from nas_objectives.testing._dataset_files import (
    CIFAR10_LABEL_NAMES,
    NUM_CLASSES,
    FixtureArrays,
    separable_table,
    write_cifar10_like,
    write_cifar100_like,
    write_emnist_like,
    write_image_folder,
    write_mnist_like,
    write_svhn_like,
    write_table,
)

__all__ = [
    "CIFAR10_LABEL_NAMES",
    "NUM_CLASSES",
    "FixtureArrays",
    "separable_table",
    "write_cifar10_like",
    "write_cifar100_like",
    "write_emnist_like",
    "write_image_folder",
    "write_mnist_like",
    "write_svhn_like",
    "write_table",
]
