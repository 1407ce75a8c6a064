"""Tests of the user's own data and the added torchvision datasets in ``load_dataset``.

Every file is written by the test in its real format (PNG/JPEG folders with PIL, ``.npz``
with numpy, ``.pt`` with torch, CSV with ``csv``; torchvision's formats by
:mod:`nas_objectives.testing`) and read through the path a study takes: the study file's
``[dataset]`` table parsed into a ``DatasetSpec``, then ``load_dataset`` with its fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas_objectives import DatasetError, TensorData, load_dataset
from nas_objectives.testing import (
    separable_table,
    write_cifar100_like,
    write_emnist_like,
    write_image_folder,
    write_mnist_like,
    write_svhn_like,
    write_table,
)
from studies.errors import StudySpecError
from studies.spec import load_spec, parse_spec


def _study(folder: Path, dataset: str, model: str = "mlp") -> Path:
    path = folder / "study.toml"
    path.write_text(f'name = "u"\nseed = 3\n[dataset]\n{dataset}\n[model]\nfamily = "{model}"\n')
    return path


def _load(study: Path, **kwargs: object) -> TensorData:
    spec = load_spec(study)
    return load_dataset(
        spec.dataset.name,
        data_dir=spec.dataset.data_dir,
        val_fraction=spec.dataset.val_fraction,
        seed=spec.seed,
        family=spec.objective.space.model.family,
        **spec.dataset.reader_options(),
        **kwargs,  # type: ignore[arg-type]
    )


def _sizes(d: TensorData) -> tuple[int, int, int]:
    return len(d.y_train), len(d.y_val), len(d.y_test)


def _assert_train_normalised(d: TensorData) -> None:
    x = d.normalize(d.x_train)
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)


# Image folders.


def test_png_folder_reads_classes_from_folder_names_and_splits_stratified(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "data" / "pets", n_per_class=10, size=(12, 10))
    d = _load(_study(tmp_path, 'name = "image_folder"\npath = "data/pets"\nval_fraction = 0.25'))
    assert d.input_shape == (3, 12, 10)
    assert (d.num_classes, d.classes) == (3, ("cat", "dog", "owl"))
    assert _sizes(d) == (18, 6, 6)  # 20% of 30 for test, then 25% of 24 for validation
    for y in (d.y_train, d.y_val, d.y_test):  # stratified: every class in every split
        assert torch.bincount(y, minlength=3).min() >= 2
    _assert_train_normalised(d)
    assert len(d.mean) == 3 and all(0 < m < 1 for m in d.mean)
    # Class brightness survives the pipeline: classes are ordered by mean pixel value.
    assert d.x_train.dtype == torch.uint8  # decoded once, kept as bytes
    means = [d.x_train[d.y_train == c].float().mean().item() for c in range(3)]
    assert means == sorted(means)


def test_grayscale_jpeg_folder_is_one_channel_and_resized(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "g", classes=("a", "b"), mode="L", suffix=".jpg", size=(9, 7))
    study = _study(tmp_path, 'name = "image_folder"\npath = "g"\nimage_size = [16, 20]')
    assert _load(study).input_shape == (1, 16, 20)
    study = _study(tmp_path, 'name = "image_folder"\npath = "g"\nchannels = 3')
    assert _load(study).input_shape == (3, 9, 7)


def test_separate_test_folder_is_the_test_split_mapped_by_class_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", n_per_class=6)
    write_image_folder(tmp_path / "test", classes=("dog", "owl"), n_per_class=3, seed=1)
    d = _load(_study(tmp_path, 'name = "image_folder"\npath = "train"\ntest_path = "test"'))
    assert _sizes(d) == (14, 4, 6)  # nothing held out of train for test
    assert d.y_test.tolist() == [1, 1, 1, 2, 2, 2]  # dog and owl in the training order


def test_study_from_text_resolves_paths_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_image_folder(tmp_path / "imgs", n_per_class=5)
    monkeypatch.chdir(tmp_path)
    spec = parse_spec('name = "u"\n[dataset]\nname = "image_folder"\npath = "imgs"\n')
    assert spec.dataset.path == str(tmp_path / "imgs")
    assert spec.source["dataset"]["path"] == str(tmp_path / "imgs")  # what the study stores
    d = load_dataset("image_folder", **spec.dataset.reader_options())
    assert d.num_classes == 3


# Tensor files.


def test_npz_with_its_own_validation_and_test_splits_uses_them_as_given(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 2, 5, 5), dtype=np.float32), np.arange(20) % 4
    x_val, y_val = rng.random((6, 2, 5, 5), dtype=np.float32), np.array([0, 1, 2, 3, 0, 1])
    x_test, y_test = rng.random((5, 2, 5, 5), dtype=np.float32), np.array([3, 2, 1, 0, 3])
    write_table(tmp_path / "d.npz", x, y, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
    d = _load(_study(tmp_path, 'name = "tensors"\npath = "d.npz"'))
    assert d.input_shape == (2, 5, 5) and d.num_classes == 4
    assert _sizes(d) == (20, 6, 5)
    assert d.y_val.tolist() == y_val.tolist() and d.y_test.tolist() == y_test.tolist()
    # float files are stored as given and normalised per batch with the training statistics
    torch.testing.assert_close(d.x_test, torch.from_numpy(x_test), atol=0, rtol=0)
    mean, std = torch.tensor(d.mean).view(1, -1, 1, 1), torch.tensor(d.std).view(1, -1, 1, 1)
    raw = d.normalize(d.x_test) * std + mean
    torch.testing.assert_close(raw, torch.from_numpy(x_test), atol=1e-5, rtol=0)
    _assert_train_normalised(d)


def test_pt_tabular_features_feed_an_mlp_and_labels_are_mapped(tmp_path: Path) -> None:
    x, y = separable_table(n=50, n_features=6)
    write_table(tmp_path / "t.pt", x, np.array([3, 7, 9])[y])
    d = _load(_study(tmp_path, 'name = "tensors"\npath = "t.pt"'))
    assert d.input_shape == (6, 1, 1)
    assert (d.num_classes, d.classes) == (3, ("3", "7", "9"))
    assert _sizes(d) == (32, 8, 10)
    assert sorted(torch.cat([d.y_train, d.y_val, d.y_test]).tolist()) == sorted(y.tolist())


def test_seeded_split_is_reproducible_and_follows_the_seed(tmp_path: Path) -> None:
    x, y = separable_table(n=40)
    write_table(tmp_path / "t.npz", x, y)
    a = load_dataset("tensors", path=tmp_path / "t.npz", seed=0)
    # Another process (a copy of the file, so no cache hit) reads the same split.
    (tmp_path / "copy.npz").write_bytes((tmp_path / "t.npz").read_bytes())
    b = load_dataset("tensors", path=tmp_path / "copy.npz", seed=0)
    c = load_dataset("tensors", path=tmp_path / "t.npz", seed=1)
    assert torch.equal(a.x_test, b.x_test) and a is not b
    assert not torch.equal(a.x_test, c.x_test)


def test_safetensors_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    x, y = separable_table(n=30)
    save_file({"x": x, "y": y}, str(tmp_path / "t.safetensors"))
    d = load_dataset("tensors", path=tmp_path / "t.safetensors")
    assert (d.num_classes, d.input_shape) == (3, (x.shape[1], 1, 1))
    assert _sizes(d) == (19, 5, 6)
    stored = torch.cat([d.x_train, d.x_val, d.x_test]).flatten(1)
    assert torch.equal(
        torch.sort(stored, dim=0).values, torch.sort(torch.from_numpy(x), dim=0).values
    )
    # A file that is not safetensors is one line naming it.
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(DatasetError, match=r"bad\.safetensors: dataset\.path: unreadable file"):
        load_dataset("tensors", path=tmp_path / "bad.safetensors")


# CSV.


def test_csv_with_string_labels_maps_sorted_names(tmp_path: Path) -> None:
    x, y = separable_table(n=45, n_features=3)
    names = np.array(["setosa", "virginica", "versicolor"])[y]
    write_table(tmp_path / "iris.csv", x, names, label="species")
    d = _load(_study(tmp_path, 'name = "csv"\npath = "iris.csv"\nlabel = "species"'))
    assert d.input_shape == (3, 1, 1)
    assert d.classes == ("setosa", "versicolor", "virginica")
    assert _sizes(d) == (29, 7, 9)
    # The separating feature rises with the original label order 0, 1, 2 = setosa,
    # virginica, versicolor; mapped: setosa=0, versicolor=2, virginica=1 by that feature.
    f0 = [d.x_train[d.y_train == c, 0].mean().item() for c in range(3)]
    assert f0[0] < f0[2] < f0[1]


def test_csv_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    x, y = separable_table(n=30)
    write_table(tmp_path / "t.csv", x, np.array([2, 10, 30])[y])
    assert load_dataset("csv", path=tmp_path / "t.csv", label="target").classes == ("2", "10", "30")


# The added torchvision datasets, from their real on-disk formats.


@pytest.mark.parametrize(
    ("dataset", "write", "shape", "num_classes"),
    [
        ('name = "kmnist"', lambda r: write_mnist_like(r, "KMNIST", 30, 10), (1, 28, 28), 10),
        ('name = "emnist"', lambda r: write_emnist_like(r, "balanced", 30, 10), (1, 28, 28), 47),
        (
            'name = "emnist"\nsplit = "letters"',
            lambda r: write_emnist_like(r, "letters", 30, 10),
            (1, 28, 28),
            27,
        ),
        ('name = "cifar100"', lambda r: write_cifar100_like(r, 30, 10), (3, 32, 32), 100),
        ('name = "svhn"', lambda r: write_svhn_like(r, 30, 10), (3, 32, 32), 10),
    ],
)
def test_torchvision_datasets_read_their_real_formats(
    tmp_path: Path, dataset: str, write: object, shape: tuple[int, ...], num_classes: int
) -> None:
    arrays = write(tmp_path)  # type: ignore[operator]
    d = _load(_study(tmp_path, f'{dataset}\ndata_dir = "{tmp_path}"'), download=False)
    assert (d.input_shape, d.num_classes, _sizes(d)) == (shape, num_classes, (24, 6, 10))
    assert d.y_test.tolist() == arrays.y_test.tolist()
    assert len(d.classes) == num_classes


@pytest.mark.parametrize(
    ("name", "where"),
    [("kmnist", "KMNIST/raw"), ("emnist", "EMNIST/raw/emnist-balanced"), ("svhn", "_32x32.mat")],
)
def test_missing_torchvision_files_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, where: str
) -> None:
    monkeypatch.setenv("NAS_STUDY_OFFLINE", "1")
    with pytest.raises(DatasetError, match=rf"not found under .*{where}"):
        load_dataset(name, data_dir=tmp_path)


# Spec-level problems.


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ('name = "image_folder"\nlabel = "y"\npath = "x"', r"dataset\.label: not a field of"),
        ('name = "mnist"\nsplit = "balanced"', r"dataset\.split: not a field of 'mnist'"),
        ('name = "csv"\npath = "t.csv"', r"dataset\.label: is required for 'csv'"),
        ('name = "tensors"', r"dataset\.path: is required"),
        ('name = "emnist"\nsplit = "all"', r"dataset\.split: unknown EMNIST split"),
        ('name = "image_folder"\npath = "x"\nimage_size = 64', r"dataset\.image_size: must be"),
        ('name = "image_folder"\npath = "x"\nchannels = 2', r"dataset\.channels: must be 1"),
        ('name = "tensors"\npath = "x.npz"\ndata_dir = "d"', r"dataset\.data_dir: not a field"),
    ],
)
def test_spec_rejects_fields_that_do_not_fit_the_kind(
    tmp_path: Path, dataset: str, message: str
) -> None:
    with pytest.raises(StudySpecError, match=rf"study\.toml: {message}"):
        load_spec(_study(tmp_path, dataset))


# Bad data: one line naming the file, the field and the value.


def _bad(tmp_path: Path, dataset: str, match: str, model: str = "mlp") -> str:
    with pytest.raises(DatasetError, match=match) as info:
        _load(_study(tmp_path, dataset, model))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path: Path) -> None:
    _bad(tmp_path, 'name = "image_folder"\npath = "nope"', r"nope: dataset\.path: no such folder")


def test_class_folder_without_images(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f", n_per_class=3)
    (tmp_path / "f" / "empty").mkdir()
    (tmp_path / "f" / "empty" / "notes.txt").write_text("not an image")
    _bad(tmp_path, 'name = "image_folder"\npath = "f"', r"f: dataset\.path: .*empty")


def test_truncated_image(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f", n_per_class=3)
    good = (tmp_path / "f" / "dog" / "001.png").read_bytes()
    (tmp_path / "f" / "dog" / "001.png").write_bytes(good[: len(good) // 2])
    _bad(tmp_path, 'name = "image_folder"\npath = "f"', r"dog/001\.png: dataset\.path: unreadable")


def test_images_of_different_sizes_need_image_size(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f", n_per_class=3)
    Image.new("RGB", (5, 5)).save(tmp_path / "f" / "owl" / "big.png")
    _bad(tmp_path, 'name = "image_folder"\npath = "f"', r"big\.png: dataset\.image_size: .*differ")
    d = _load(_study(tmp_path, 'name = "image_folder"\npath = "f"\nimage_size = [8, 8]'))
    assert d.input_shape == (3, 8, 8)


def test_x_and_y_of_different_lengths(tmp_path: Path) -> None:
    x, y = separable_table(n=20)
    np.savez(tmp_path / "t.npz", x=x, y=y[:-1])
    match = r"t\.npz: dataset\.path: x has 20 rows but y has 19"
    _bad(tmp_path, 'name = "tensors"\npath = "t.npz"', match)


def test_labels_that_are_not_whole_numbers(tmp_path: Path) -> None:
    x, y = separable_table(n=20)
    write_table(tmp_path / "t.pt", x, y + 0.5)
    match = r"t\.pt: dataset\.path: y: labels must be whole numbers \(got \d\.5\)"
    _bad(tmp_path, 'name = "tensors"\npath = "t.pt"', match)


def test_csv_with_a_non_numeric_feature_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("size,colour,target\n1.0,2,a\n2.0,red,b\n")
    message = _bad(
        tmp_path, 'name = "csv"\npath = "t.csv"\nlabel = "target"', r"t\.csv: column 'colour'"
    )
    assert "line 3" in message and "'red'" in message


def test_csv_without_the_label_column(tmp_path: Path) -> None:
    x, y = separable_table(n=20)
    write_table(tmp_path / "t.csv", x, y, label="class")
    _bad(tmp_path, 'name = "csv"\npath = "t.csv"\nlabel = "target"', r"dataset\.label: no such .*")


def test_single_class(tmp_path: Path) -> None:
    x, _ = separable_table(n=20)
    write_table(tmp_path / "t.npz", x, np.zeros(20, dtype=np.int64))
    _bad(tmp_path, 'name = "tensors"\npath = "t.npz"', r"at least 2 classes \(got \['0'\]\)")


def test_a_cnn_on_tabular_data_names_model_family(tmp_path: Path) -> None:
    x, y = separable_table(n=20)
    write_table(tmp_path / "t.csv", x, y)
    dataset = 'name = "csv"\npath = "t.csv"\nlabel = "target"'
    _bad(tmp_path, dataset, r"t\.csv: model\.family: a cnn needs images.*'cnn'", model="cnn")
