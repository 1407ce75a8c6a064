"""Batched augmentation: flips and crops against per-sample references, seeding, the spec."""

from __future__ import annotations

import math

import pytest
import torch

from nas_objectives import (
    DatasetError,
    Layout,
    Objective,
    ObjectiveConfig,
    OptimizerSettings,
    TensorData,
    build_model,
    load_dataset,
    retrain,
    train,
)
from nas_objectives._augment import (
    augment_batch,
    batch_crop,
    batch_flip_lr,
    check_augment,
    crop_pad,
)
from studies.errors import StudySpecError
from studies.spec import parse_spec


def _batch(n: int = 16, c: int = 3, h: int = 8, w: int = 10) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(1))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flip_mirrors_exactly_the_masked_samples() -> None:
    x = _batch(64)
    out = batch_flip_lr(x, _gen(0))
    # The same draw the function makes: its mask, reproduced from the same seed.
    mask = torch.rand(len(x), generator=_gen(0)) < 0.5
    assert 0 < int(mask.sum()) < len(x)
    for i in range(len(x)):
        want = torch.flip(x[i], dims=(2,)) if mask[i] else x[i]
        assert torch.equal(out[i], want)


def _reference_crop(img: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """One image, reflect-padded and cropped in plain Python, pixel by pixel."""
    c, h, w = img.shape

    def reflect(i: int, n: int) -> int:
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    out = torch.empty_like(img)
    for ch in range(c):
        for r in range(h):
            for q in range(w):
                out[ch, r, q] = img[ch, reflect(r + dy - pad, h), reflect(q + dx - pad, w)]
    return out


@pytest.mark.parametrize("pad", [1, 2])
def test_crop_equals_a_per_sample_reference_crop_of_the_padded_image(pad: int) -> None:
    x = _batch(12, c=2, h=6, w=7)
    out = batch_crop(x, pad, _gen(3))
    g = _gen(3)
    dy = torch.randint(0, 2 * pad + 1, (len(x),), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (len(x),), generator=g)
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 1
    for i in range(len(x)):
        assert torch.equal(out[i], _reference_crop(x[i], pad, int(dy[i]), int(dx[i])))


def test_same_seed_same_result_and_different_seed_differs() -> None:
    x = _batch(32)
    names = ("flip", "crop")
    a, b = augment_batch(x, names, _gen(5)), augment_batch(x, names, _gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, names, _gen(6)))


@pytest.mark.parametrize("names", [("flip",), ("crop",), ("flip", "crop")])
def test_shape_dtype_and_device_are_kept(names: tuple[str, ...]) -> None:
    for dtype in (torch.float32, torch.float64):
        x = _batch().to(dtype)
        out = augment_batch(x, names, _gen(0))
        assert (out.shape, out.dtype, out.device) == (x.shape, x.dtype, x.device)


def test_crop_pad_follows_the_image_size() -> None:
    assert [crop_pad(s, s) for s in (8, 27, 28, 31, 32, 64)] == [1, 1, 2, 2, 4, 4]


def test_check_augment_orders_names_and_refuses_tabular_and_unknown() -> None:
    assert check_augment(["crop", "flip"], (1, 8, 8)) == ("flip", "crop")
    assert check_augment([], (5, 1, 1)) == ()
    with pytest.raises(DatasetError, match=r"^dataset\.augment: .*tabular features \(5,\)"):
        check_augment(["flip"], (5, 1, 1))
    with pytest.raises(DatasetError, match=r"^dataset\.augment: unknown augmentation"):
        check_augment(["rotate"], (1, 8, 8))


_STUDY = 'name = "s"\n[dataset]\nname = "{name}"\n{extra}\n'


def test_spec_accepts_flip_and_crop_on_an_image_dataset() -> None:
    spec = parse_spec(_STUDY.format(name="digits", extra='augment = ["flip", "crop"]'))
    assert spec.objective.augment == ("flip", "crop")
    assert parse_spec(_STUDY.format(name="cifar10", extra="")).objective.augment == ()


@pytest.mark.parametrize(
    ("name", "extra", "pattern"),
    [
        ("digits", 'augment = ["flip", "rotate"]', r"dataset\.augment: unknown .*'rotate'"),
        ("digits", 'augment = "flip"', r"dataset\.augment: must be a list"),
        ("digits", 'augment = ["flip", "flip"]', r"dataset\.augment: .*distinct"),
        (
            "csv",
            'path = "t.csv"\nlabel = "y"\naugment = ["flip"]',
            r"dataset\.augment: not a field of 'csv'",
        ),
    ],
)
def test_spec_refuses_bad_augment_in_one_line(name: str, extra: str, pattern: str) -> None:
    with pytest.raises(StudySpecError, match=pattern) as info:
        parse_spec(_STUDY.format(name=name, extra=extra))
    assert "\n" not in str(info.value)


def _tabular() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, 1, 1, generator=g), torch.arange(40) % 2
    return TensorData("tensors", x, y, x[:8], y[:8], x[:8], y[:8], num_classes=2)


def test_tabular_data_with_augment_is_refused_before_training() -> None:
    data = _tabular()
    with pytest.raises(DatasetError, match=r"^dataset\.augment: ") as info:
        Objective(ObjectiveConfig(epochs=1, augment=("flip",)), data)
    assert "\n" not in str(info.value)
    model = build_model(Layout("mlp", data.input_shape, 2, widths=(4,)))
    with pytest.raises(DatasetError, match=r"^dataset\.augment: "):
        train(model, OptimizerSettings("adamw", lr=1e-3), data, epochs=1, augment=("crop",))


def test_one_epoch_of_a_tiny_cnn_on_digits_with_augment() -> None:
    data = load_dataset("digits")
    layout = Layout("cnn", data.input_shape, data.num_classes, widths=(8,), kernel_sizes=(3,))
    settings = OptimizerSettings("adamw", lr=3e-3, batch_size=64)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(layout)
        result = train(model, settings, data, epochs=1, seed=0, augment=("flip", "crop"))
        runs.append(result.history[-1])
    acc = runs[0].val_accuracy
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0
    assert math.isfinite(runs[0].train_loss)
    assert runs[0] == runs[1]  # seeded: the flips and crops repeat


def test_retrain_passes_the_augmentation_to_train() -> None:
    data = load_dataset("digits")
    layout = Layout("mlp", data.input_shape, data.num_classes, widths=(16,))
    settings = OptimizerSettings("adamw", lr=3e-3, batch_size=128)
    plain = retrain(layout, settings, data, epochs=1, seed=0)[1].history
    flipped = [
        retrain(layout, settings, data, epochs=1, seed=0, augment=("flip",))[1].history
        for _ in range(2)
    ]
    assert flipped[0] == flipped[1] != plain
