"""Tests of :func:`nas_objectives.load_dataset`.

The torchvision datasets are read from small files in their real on-disk formats, written
into ``tmp_path`` by :mod:`nas_objectives.testing`, so the real torchvision readers run. The
cache is per (name, device, root, val_fraction), so every test uses its own ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nas_objectives import DATASETS, DatasetError, TensorData, load_dataset
from nas_objectives.testing import FixtureArrays, write_cifar10_like, write_mnist_like

DIGITS_TOTAL = 1797
DIGITS_TEST = DIGITS_TOTAL // 5  # 359: the fixed held-out share
DIGITS_TRAIN_VAL = DIGITS_TOTAL - DIGITS_TEST  # 1438


def _rows(*xs: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.flatten(1) for x in xs])


def _assert_affine_per_channel(normalised: torch.Tensor, raw_uint8: np.ndarray) -> None:
    """``normalised`` is ``raw / 255`` up to one positive scale and shift per channel.

    So the pixels are the written ones, in the written order and layout.
    """
    raw = torch.from_numpy(raw_uint8).float() / 255.0
    assert normalised.shape == raw.shape
    for c in range(raw.shape[1]):
        r, n = raw[:, c].flatten(), normalised[:, c].flatten()
        scale = (n.max() - n.min()) / (r.max() - r.min())
        assert scale > 0
        torch.testing.assert_close(n, scale * (r - r.min()) + n.min(), atol=1e-4, rtol=0)


def _assert_train_normalised(data: TensorData) -> None:
    channels = data.x_train.shape[1]
    x = data.normalize(data.x_train)
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(channels), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones(channels), atol=1e-4, rtol=0)


def _assert_split_sizes(data: TensorData, n_train_val: int, n_test: int, val: float) -> None:
    n_val = round(n_train_val * val)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (
        n_train_val - n_val,
        n_val,
        n_test,
    )
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        assert len(x) == len(y)


# digits: bundled with scikit-learn, no files needed.


def test_digits_shapes_dtypes_and_split_sizes(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir=tmp_path)
    assert data.name == "digits"
    assert data.num_classes == 10
    assert data.input_shape == (1, 8, 8)
    assert data.device == torch.device("cpu")
    _assert_split_sizes(data, DIGITS_TRAIN_VAL, DIGITS_TEST, 0.2)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == DIGITS_TOTAL
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        # Stored as uint8 (digits' pixels are whole numbers 0 to 16), normalised per batch.
        assert x.dtype == torch.uint8 and x.is_contiguous()
        assert int(x.max()) == 16
        assert data.normalize(x).dtype == torch.float32
        assert y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) <= 9
    # Every class is present in every split.
    for y in (data.y_train, data.y_val, data.y_test):
        assert set(y.tolist()) == set(range(10))


def test_digits_splits_are_disjoint_and_cover_the_dataset(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir=tmp_path)
    # The 1797 digits images are pairwise distinct, so rows identify samples.
    # So 1797 distinct rows across splits of 1797 in all means no sample is in two splits.
    rows = _rows(data.x_train, data.x_val, data.x_test)
    assert len(rows) == DIGITS_TOTAL
    assert len(torch.unique(rows, dim=0)) == DIGITS_TOTAL
    # Labels as a whole are the dataset's own.
    all_y = torch.cat([data.y_train, data.y_val, data.y_test])
    expected = torch.from_numpy(load_digits().target).long()
    assert torch.equal(torch.bincount(all_y, minlength=10), torch.bincount(expected, minlength=10))


def test_digits_splits_are_fixed_across_uncached_loads(tmp_path: Path) -> None:
    # Distinct data_dirs are distinct cache keys, so both loads read and split afresh.
    a = load_dataset("digits", data_dir=tmp_path / "a")
    b = load_dataset("digits", data_dir=tmp_path / "b")
    assert a is not b
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_digits_train_split_is_normalised_per_channel(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir=tmp_path)
    _assert_train_normalised(data)
    # Validation and test go through the training split's map, not their own: the raw
    # pixels take 17 values (k/16), and so do the normalised pixels of all splits together.
    splits = (data.x_train, data.x_val, data.x_test)
    values = torch.unique(torch.cat([data.normalize(x).flatten() for x in splits]))
    assert len(values) == 17
    assert len(torch.unique(data.normalize(data.x_train))) == 17


def test_second_call_returns_the_cached_object(tmp_path: Path) -> None:
    first = load_dataset("digits", data_dir=tmp_path)
    assert load_dataset("digits", data_dir=str(tmp_path), device="cpu") is first
    assert load_dataset("digits", data_dir=tmp_path, val_fraction=0.3) is not first


@pytest.mark.parametrize("val_fraction", [0.1, 0.5])
def test_val_fraction_sets_the_validation_share(tmp_path: Path, val_fraction: float) -> None:
    data = load_dataset("digits", data_dir=tmp_path, val_fraction=val_fraction)
    _assert_split_sizes(data, DIGITS_TRAIN_VAL, DIGITS_TEST, val_fraction)
    # The test split does not depend on the validation share.
    default = load_dataset("digits", data_dir=tmp_path)
    assert torch.equal(data.y_test, default.y_test)


# torchvision datasets, from fixture files in the real formats.


def _check_torchvision_load(
    data: TensorData, written: FixtureArrays, shape: tuple[int, int, int], val: float
) -> None:
    assert data.num_classes == 10
    assert data.input_shape == shape
    n_train_val, n_test = len(written.y_train), len(written.y_test)
    _assert_split_sizes(data, n_train_val, n_test, val)
    _assert_train_normalised(data)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    # The test split keeps the file's order: labels and pixels are exactly the written ones.
    assert torch.equal(data.y_test, torch.from_numpy(written.y_test))
    x_test_raw = written.x_test if written.x_test.ndim == 4 else written.x_test[:, None]
    assert torch.equal(data.x_test, torch.from_numpy(x_test_raw))
    _assert_affine_per_channel(data.normalize(data.x_test), x_test_raw)
    # Train and validation together hold the written training labels, each sample once.
    train_val_y = torch.cat([data.y_train, data.y_val])
    assert torch.equal(
        torch.sort(train_val_y).values, torch.sort(torch.from_numpy(written.y_train)).values
    )
    rows = _rows(data.x_train, data.x_val)
    assert len(torch.unique(rows, dim=0)) == n_train_val


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_like_loads_from_idx_files(
    tmp_path: Path, name: str, folder: Literal["MNIST", "FashionMNIST"]
) -> None:
    written = write_mnist_like(tmp_path, folder, n_train=200, n_test=50, seed=1)
    data = load_dataset(name, data_dir=tmp_path, download=False)
    assert data.name == name
    _check_torchvision_load(data, written, (1, 28, 28), 0.2)


def test_cifar10_loads_from_python_pickles(tmp_path: Path) -> None:
    written = write_cifar10_like(tmp_path, n_per_batch=24, n_test=40, seed=2)
    data = load_dataset("cifar10", data_dir=tmp_path, download=False, val_fraction=0.25)
    assert data.name == "cifar10"
    _check_torchvision_load(data, written, (3, 32, 32), 0.25)


def test_fixture_images_carry_a_learnable_class_signal(tmp_path: Path) -> None:
    # Nearest class mean, fit on train, scores far above chance (10%) on test: the
    # benchmark and training tests rely on the fixture being learnable.
    write_mnist_like(tmp_path, "FashionMNIST", n_train=200, n_test=100, seed=3)
    data = load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
    x, y = data.normalize(data.x_train).flatten(1), data.y_train
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(data.normalize(data.x_test).flatten(1), means).argmin(1)
    assert (predicted == data.y_test).float().mean() > 0.9


# Errors.


def test_unknown_dataset_name_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'") as info:
        load_dataset("imagenet", data_dir=tmp_path)
    assert all(name in str(info.value) for name in DATASETS)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
    ],
)
def test_missing_files_without_download_say_where_to_put_them(
    tmp_path: Path, name: str, where: str
) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(name, data_dir=tmp_path, download=False)
    message = str(info.value)
    assert f"{tmp_path}/{where}" in message
    assert "--data-dir" in message
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or created


def test_offline_environment_refuses_to_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NAS_STUDY_OFFLINE is the switch that keeps download=True from touching the network.
    monkeypatch.setenv("NAS_STUDY_OFFLINE", "1")
    with pytest.raises(DatasetError, match="MNIST/raw") as info:
        load_dataset("mnist", data_dir=tmp_path, download=True)
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_files_of_another_dataset_do_not_count(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, "FashionMNIST", n_train=20, n_test=10)
    with pytest.raises(DatasetError, match="MNIST/raw"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_truncated_pickle_raises_dataset_error(tmp_path: Path) -> None:
    write_cifar10_like(tmp_path, n_per_batch=10, n_test=10)
    test_batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    test_batch.write_bytes(test_batch.read_bytes()[:100])  # a download cut short
    with pytest.raises(DatasetError, match="unreadable") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert f"{tmp_path}/cifar-10-batches-py" in str(info.value)


def test_truncated_idx_header_raises_dataset_error(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, "MNIST", n_train=20, n_test=10)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:10])
    with pytest.raises(DatasetError, match="unreadable"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
