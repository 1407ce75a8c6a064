"""The user's own data: decode, cache and train, against torchvision's ImageFolder loop.

What is measured, in one run, on one generated image folder (``--images`` PNGs, 32x32 RGB,
10 class folders, class-dependent colours plus noise, written with PIL into a temporary
directory; generating them is not timed):

Decode (seconds, the whole folder):
    (a) **decode_cold**: :func:`nas_objectives._data_files.read_image_folder` with an
        empty cache: torchvision finds the files, PIL decodes them on threads over every
        core, and the uint8 tensor is written to the cache.
    (b) **decode_cached**: the same call again: the folder is listed and stat'ed, and the
        cached tensor read back.
    (c) **tensors_load**: the same images as one uint8 ``.npz`` read as ``name = "tensors"``.

Training (samples per second, the same model from the same weights, AdamW, same batch
size; ``--model cnn`` or ``mlp``):
    (d) **dataloader**: the usual loop: ``torchvision.datasets.ImageFolder`` with
        ``ToTensor()`` + ``Normalize`` per sample, ``DataLoader(shuffle=True,
        num_workers=<cores>, pin_memory=<on CUDA>, persistent_workers=True)``, each batch
        moved to the device, ``loss.item()`` every step. Its first epoch (worker start-up,
        every image decoded by PIL) and the rest are reported apart.
    (e) **device**: :func:`nas_objectives.train` on the folder as a study reads it: uint8
        on the device, normalised per batch.
    (f) **host**: (e) with ``memory_budget=0``: the images stay in (pinned, on CUDA) host
        memory and each batch is copied over one batch ahead.
    (g) **augmented**: (e) with ``augment=("flip", "crop")`` on the device.

Every figure is also given as a ratio against its baseline in the same run: (e)/(d),
(f)/(e), (g)/(e), (a)/(b). On the CPU "host" and "device" are the same memory, so (f)/(e)
there measures only the gather-into-a-buffer path; the copy's cost shows on a GPU.

Run:
    python -m benchmarks.user_data                         # 10,000 images, CPU or CUDA
    python -m benchmarks.user_data --images 20000 --epochs 3 --device cuda

The JSON result is printed and written to ``--out``
(default ``benchmarks/results/user_data.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks._common import positive_int, write_report
from nas_objectives import (
    EpochResult,
    Layout,
    OptimizerSettings,
    build_model,
    load_dataset,
    train,
)
from nas_objectives._data_files import read_image_folder

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "user_data.json"
SIZE = 32
CLASSES = 10
LR = 1e-3


def write_folder(root: Path, n: int, seed: int) -> None:
    """``n`` PNGs in ``root/class_<k>/``, each class a colour plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 226, size=(CLASSES, 3))
    for i in range(n):
        k = i % CLASSES
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(-30, 30, size=(SIZE, SIZE, 3))
        pixels = np.clip(palette[k] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="RGB").save(folder / f"{i:06d}.png")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MODEL = "cnn"


def _model(seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    if MODEL == "mlp":
        return build_model(Layout("mlp", (3, SIZE, SIZE), CLASSES, widths=(256, 128))).to(device)
    layout = Layout(
        "cnn",
        (3, SIZE, SIZE),
        CLASSES,
        widths=(16, 32),
        kernel_sizes=(3, 3),
        norm="batch",
        pooling="max",
    )
    return build_model(layout).to(device)


def bench_decode(root: Path, cache: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    cold = read_image_folder(root, cache_dir=cache)
    t1 = time.perf_counter()
    cached = read_image_folder(root, cache_dir=cache)
    t2 = time.perf_counter()
    assert torch.equal(cold.x_train, cached.x_train)
    return {
        "images": len(cold.y_train),
        "decoded_bytes": cold.x_train.numel(),
        "cold_seconds": t1 - t0,
        "cached_seconds": t2 - t1,
        "cold_over_cached": (t1 - t0) / (t2 - t1),
    }


def bench_tensors(root: Path, tmp: Path, cache: Path) -> dict[str, Any]:
    raw = read_image_folder(root, cache_dir=cache)
    path = tmp / "images.npz"
    np.savez(path, x=raw.x_train.numpy(), y=raw.y_train.numpy())
    t0 = time.perf_counter()
    data = load_dataset("tensors", path=path)
    return {"load_seconds": time.perf_counter() - t0, "dtype": str(data.x_train.dtype)}


def bench_trainer(
    root: Path,
    cache: Path,
    device: torch.device,
    batch_size: int,
    epochs: int,
    seed: int,
    *,
    memory_budget: float | None = None,
    augment: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Time :func:`nas_objectives.train` on the image folder, read as a study reads it."""
    data = load_dataset(
        "image_folder",
        path=root,
        device=device,
        cache_dir=cache,
        memory_budget=memory_budget,
        seed=seed,
    )
    model = _model(seed, device)
    stamps: list[float] = []

    def on_epoch(_: EpochResult) -> None:
        stamps.append(time.perf_counter())  # train() has just synced (.item())

    settings = OptimizerSettings("adamw", lr=LR, batch_size=batch_size)
    start = time.perf_counter()
    result = train(
        model, settings, data, epochs=epochs, seed=seed, on_epoch=on_epoch, augment=augment
    )
    n = len(data.y_train)
    samples = n * epochs  # train() sees every training sample every epoch
    return {
        "placement": data.placement,
        "train_split_size": n,
        "samples_trained": samples,
        "train_seconds": result.train_seconds,
        "epoch_seconds": [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)],
        "samples_per_s": samples / result.train_seconds,
        "augment": list(augment),
        "final_val_accuracy": result.history[-1].val_accuracy,
        "timed": "train() wall time, incl. a validation pass per epoch",
    }


def bench_dataloader(
    root: Path, device: torch.device, batch_size: int, epochs: int, seed: int
) -> dict[str, Any]:
    """The tutorial loop over torchvision's ImageFolder, on all of the folder's images."""
    from torchvision import datasets, transforms

    cores = os.cpu_count() or 1
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.25,) * 3)])
    ds = datasets.ImageFolder(str(root), transform=tf)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=cores,
        pin_memory=device.type == "cuda",
        persistent_workers=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = _model(seed, device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    epoch_seconds, samples = [], 0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            float(loss.item())
            samples += len(yb)
        _sync(device)
        epoch_seconds.append(time.perf_counter() - t0)
    per_epoch = samples // epochs
    later = epoch_seconds[1:]
    return {
        "num_workers": cores,
        "samples_trained": samples,
        "epoch_seconds": epoch_seconds,
        "samples_per_s": samples / sum(epoch_seconds),
        "first_epoch_samples_per_s": per_epoch / epoch_seconds[0],
        "later_epochs_samples_per_s": per_epoch * len(later) / sum(later) if later else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=10_000)
    p.add_argument("--epochs", type=positive_int, default=2)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model",
        choices=("cnn", "mlp"),
        default="cnn",
        help="cnn: conv 16-32 with BN and max pooling; mlp: 3072-256-128-10, where the input "
        "pipeline, not the model, is the larger cost",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    global MODEL
    MODEL = args.model
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root, cache = tmp / "images", tmp / "cache"
        t0 = time.perf_counter()
        write_folder(root, args.images, args.seed)
        generated = time.perf_counter() - t0
        decode = bench_decode(root, cache)
        load_dataset("digits")  # warm-up of the split code's imports, not reported
        tensors = bench_tensors(root, tmp, cache)
        run = (root, cache, device, args.batch_size, args.epochs, args.seed)
        # Warm-up, not reported: the first conv kernels, allocator and imports.
        bench_trainer(root, cache, device, args.batch_size, 1, args.seed)
        on_device = bench_trainer(*run)
        on_host = bench_trainer(*run, memory_budget=0)
        augmented = bench_trainer(*run, augment=("flip", "crop"))
        loader = bench_dataloader(root, device, args.batch_size, args.epochs, args.seed)
    report = {
        "benchmark": "user_data",
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "images": args.images,
        "image_shape": [3, SIZE, SIZE],
        "model": MODEL,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "generate_seconds": generated,
        "decode": decode,
        "tensors_file": tensors,
        "trainer_device": on_device,
        "trainer_host": on_host,
        "trainer_augmented": augmented,
        "dataloader": loader,
        "ratios": {
            "decode_cold_over_cached": decode["cold_over_cached"],
            "device_over_dataloader": on_device["samples_per_s"] / loader["samples_per_s"],
            "device_over_dataloader_later_epochs": (
                on_device["samples_per_s"] / loader["later_epochs_samples_per_s"]
                if loader["later_epochs_samples_per_s"]
                else None
            ),
            "host_over_device": on_host["samples_per_s"] / on_device["samples_per_s"],
            "augmented_over_device": augmented["samples_per_s"] / on_device["samples_per_s"],
        },
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
