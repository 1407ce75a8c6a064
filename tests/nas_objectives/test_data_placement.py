"""How datasets are kept for training: uint8 on the device, the on-disk decode cache, and
host-resident features copied in per batch (the path for data bigger than the device).

Image folders are written with PIL and read through torchvision's ``ImageFolder``, as a
user's would be.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_objectives import DatasetError, build_model, load_dataset, tensor_data_from_arrays
from nas_objectives._data_files import read_image_folder
from nas_objectives._feed import BatchFeeder
from nas_objectives._tensor_data import channel_stats, fits
from nas_objectives.space import Layout, OptimizerSettings
from nas_objectives.testing import write_image_folder, write_table
from nas_objectives.train import predict, train

# -- uint8 storage, normalised per batch -------------------------------------------------


def test_images_are_stored_as_uint8_and_normalised_per_batch(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=6, size=(9, 7))
    d = load_dataset("image_folder", path=root, cache_dir=tmp_path / "cache")
    assert d.x_train.dtype == torch.uint8
    # A quarter of what the same splits take as float32.
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert d.nbytes == n * 3 * 9 * 7
    x = d.normalize(d.x_train)
    assert x.dtype == torch.float32
    # The batch map is (x / 255 - mean) / std with the stored statistics.
    mean = torch.tensor(d.mean).view(1, 3, 1, 1)
    std = torch.tensor(d.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (d.x_train.float() / 255 - mean) / std, atol=1e-5, rtol=0)


def test_channel_stats_match_torch_on_the_float_tensor() -> None:
    x = torch.randint(0, 256, (5000, 3, 4, 4), dtype=torch.uint8)  # more than one chunk
    mean, std = channel_stats(x, 1 / 255)
    f = x.float() / 255
    # float64 sums against float32 torch: equal to float32's precision
    torch.testing.assert_close(torch.tensor(mean), f.mean(dim=(0, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(std), f.std(dim=(0, 2, 3)), atol=1e-5, rtol=0)


def test_uint8_tensor_files_stay_uint8_float_files_stay_float(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    write_table(tmp_path / "u8.npz", rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8), y)
    write_table(tmp_path / "f32.npz", rng.random((40, 1, 4, 4), dtype=np.float32), y)
    assert load_dataset("tensors", path=tmp_path / "u8.npz").x_train.dtype == torch.uint8
    assert load_dataset("tensors", path=tmp_path / "f32.npz").x_train.dtype == torch.float32
    arrays = tensor_data_from_arrays(rng.integers(0, 256, (40, 3, 2, 2), dtype=np.uint8), y)
    assert arrays.x_train.dtype == torch.uint8


# -- the on-disk decode cache ------------------------------------------------------------


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npz"))


def test_a_decoded_folder_is_cached_on_disk_and_read_back(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=4, size=(6, 6))
    cache = tmp_path / "cache"
    first = read_image_folder(root, cache_dir=cache)
    [entry] = _entries(cache)
    # Plant different pixels of the same shape in the entry: a second read returns them,
    # so it read the cache and decoded nothing.
    planted = np.full(first.x_train.shape, 7, dtype=np.uint8)
    np.savez(entry, x=planted)
    second = read_image_folder(root, cache_dir=cache)
    assert torch.equal(second.x_train, torch.from_numpy(planted))
    assert torch.equal(second.y_train, first.y_train) and second.classes == first.classes


def test_changing_an_image_changes_the_key(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=4, size=(6, 6))
    cache = tmp_path / "cache"
    before = read_image_folder(root, cache_dir=cache)
    image = root / "dog" / "000.png"
    from PIL import Image

    Image.new("RGB", (6, 6), (255, 0, 0)).save(image)
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = read_image_folder(root, cache_dir=cache)
    assert len(_entries(cache)) == 2  # a new entry; the stale one is never read
    changed = int((before.y_train == before.classes.index("dog")).nonzero()[0])
    assert not torch.equal(after.x_train[changed], before.x_train[changed])
    assert after.x_train[changed, 0].min().item() == 255


def test_the_resize_is_part_of_the_key(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=3, size=(6, 6))
    cache = tmp_path / "cache"
    assert read_image_folder(root, cache_dir=cache).x_train.shape[2:] == (6, 6)
    assert read_image_folder(root, cache_dir=cache, image_size=(4, 5)).x_train.shape[2:] == (4, 5)
    assert len(_entries(cache)) == 2


def test_a_damaged_entry_is_decoded_again(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=3, size=(6, 6))
    cache = tmp_path / "cache"
    good = read_image_folder(root, cache_dir=cache)
    [entry] = _entries(cache)
    entry.write_bytes(b"not an npz")
    again = read_image_folder(root, cache_dir=cache)
    assert torch.equal(again.x_train, good.x_train)
    with np.load(entry) as f:  # and the entry was rewritten
        assert f["x"].shape == tuple(good.x_train.shape)


def test_an_unwritable_cache_is_skipped(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=3, size=(6, 6))
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    assert read_image_folder(root, cache_dir=blocker / "cache").x_train.shape[0] == 9


# -- host-resident data, copied per batch ------------------------------------------------


def test_a_zero_budget_keeps_features_on_the_host_and_trains_identically() -> None:
    on_device = load_dataset("digits")
    on_host = load_dataset("digits", memory_budget=0)
    assert (on_device.placement, on_host.placement) == ("device", "host")
    assert torch.equal(on_host.x_train, on_device.x_train)
    layout = Layout("mlp", on_device.input_shape, 10, widths=(32,))
    settings = OptimizerSettings("adamw", lr=3e-3, batch_size=64)
    results = []
    for data in (on_device, on_host):
        torch.manual_seed(0)
        model = build_model(layout)
        result = train(model, settings, data, epochs=3, seed=5)
        results.append(([e.train_loss for e in result.history], model))
    assert results[0][0] == results[1][0]
    x = on_host.x_test
    assert torch.equal(
        predict(results[0][1], x, prepare=on_host.normalize),
        predict(results[1][1], x, prepare=on_device.normalize),
    )


def test_the_host_feeder_yields_each_sample_once_per_epoch() -> None:
    data = load_dataset("digits", memory_budget=0)
    feeder = BatchFeeder(data, batch_size=100, seed=1)
    seen = []
    for xb, yb in feeder.epoch():
        # 1,150 samples in 12 batches: ten of 96, two of 95.
        assert xb.shape[1:] == (1, 8, 8) and xb.dtype == torch.float32
        assert len(xb) == len(yb) in (95, 96)
        seen.append(xb.flatten(1))
    assert len(seen) == -(-len(data.y_train) // 100)
    assert sum(len(b) for b in seen) == len(data.y_train)
    # Alternating buffers never hand out the same storage twice in a row, and batches
    # hold distinct samples.
    rows = torch.unique(torch.cat(seen), dim=0)
    assert len(rows) > 0.95 * len(data.y_train)


def test_budgets_in_bytes_and_shares() -> None:
    cpu = torch.device("cpu")
    assert fits(10**12, cpu, None) and fits(10**12, cpu, 0.5)
    assert not fits(1, cpu, 0)


# -- splits that leave a class out of training --------------------------------------------


def test_a_class_too_small_to_split_is_one_line_naming_it(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", n_per_class=6, size=(5, 5))
    for extra in sorted((root / "owl").iterdir())[1:]:
        extra.unlink()  # owl keeps one image: it cannot be in train, validation and test
    with pytest.raises(DatasetError) as info:
        load_dataset("image_folder", path=root, cache_dir=tmp_path / "c")
    message = str(info.value)
    assert message.startswith(f"{root}: dataset.path: the split leaves 1 class(es) out of training")
    assert "'owl'" in message and "\n" not in message


def test_a_test_split_with_a_class_training_lacks_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 4), dtype=np.float32)
    y, y_test = np.arange(30) % 2, np.array([0, 1, 2, 2])
    write_table(
        tmp_path / "t.npz", x, y, x_test=rng.random((4, 4), dtype=np.float32), y_test=y_test
    )
    with pytest.raises(DatasetError, match=r"t\.npz: dataset\.path: the split leaves .*\['2'\]"):
        load_dataset("tensors", path=tmp_path / "t.npz")
    with pytest.raises(DatasetError, match=r"^arrays: y: the split leaves .*\['2'\]"):
        tensor_data_from_arrays(x, y, x_test=x[:4], y_test=y_test)
