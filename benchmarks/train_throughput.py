"""Training throughput: the project's trainer against the usual ``DataLoader`` loop.

What is measured, in one run, on the same data, model and optimizer:

(a) **trainer**: :func:`nas_objectives.load_dataset` reads the dataset once into normalised
    tensors on the device, then :func:`nas_objectives.train` batches by slicing a
    per-epoch ``randperm`` (fused AdamW, one host sync per epoch, bf16 autocast on CUDA).
(b) **dataloader**: the loop most tutorials show: ``torchvision.datasets.FashionMNIST``
    with ``ToTensor()`` + ``Normalize`` per sample, ``DataLoader(shuffle=True)`` with the
    default ``num_workers=0``, each batch moved to the device, ``AdamW``,
    ``optimizer.zero_grad()`` and ``loss.item()`` accumulated every step, in fp32.
(c) **trainer_augmented**: (a) again, with ``augment=("flip", "crop")`` (batched on the
    device, see ``nas_objectives/_augment.py``), as a ratio against (a) in the same run.

Both train an MLP 784-256-128-10 (ReLU) from the same initial weights with AdamW, lr 1e-3,
weight decay 0, at the same batch size. The data are synthetic but in the real format:
60,000 class-dependent 28x28 training images (and a small test set) written as
Fashion-MNIST IDX files into a temporary directory, so both paths run the real torchvision
reader and no download happens.

Throughput is samples trained per second of training wall time (``torch.cuda.synchronize``
before every timer read on CUDA). Both run ``--epochs`` epochs (2) by default;
``--baseline-epochs`` runs the slow ``DataLoader`` loop for fewer. samples/s is a rate,
both include their first epoch's warm-up, and the JSON says how many epochs and samples
each rate comes from, with per-epoch times. Dataset loading is timed separately and
not counted. The trainer's time includes its per-epoch validation pass over its 20%
validation split (which it trains without); the loop's includes no evaluation. The final
test accuracy of both is reported, to show both runs actually learned. The machine's load
average is recorded: other processes on the CPU slow both loops, and on a busy CPU torch's
multi-threaded kernels can slow down many times over (threads wait on each other), so
compare runs at similar load, or pass ``--threads 1`` there.

Run:
    python -m benchmarks.train_throughput                      # batch 64, CPU or CUDA
    python -m benchmarks.train_throughput --batch-size 256 --out /tmp/bs256.json
    python -m benchmarks.train_throughput --epochs 3 --baseline-epochs 1 --device cuda

The JSON result is printed and written to ``--out``
(default ``benchmarks/results/train_throughput.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from benchmarks._common import positive_int, write_report
from nas_objectives import (
    EpochResult,
    Layout,
    OptimizerSettings,
    build_model,
    load_dataset,
    predict,
    train,
)
from nas_objectives.testing import write_mnist_like

REPO_ROOT = Path(__file__).resolve().parents[1]

WIDTHS = (256, 128)
LR = 1e-3
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "train_throughput.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(Layout("mlp", (1, 28, 28), 10, widths=WIDTHS, activation="relu"))


def bench_trainer(
    root: Path,
    device: torch.device,
    batch_size: int,
    epochs: int,
    seed: int,
    augment: tuple[str, ...] = (),
    *,
    model_fn: Callable[[int], nn.Module] = _model,
    train_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Time :func:`nas_objectives.train` on ``root``'s Fashion-MNIST files.

    ``model_fn(seed)`` builds the model (default: the MLP 784-256-128-10); ``train_options``
    are more keywords for ``train`` (``benchmarks/gpu_checks.py`` passes ``cuda_graphs`` and
    ``channels_last``).
    """
    _sync(device)
    t0 = time.perf_counter()
    data = load_dataset("fashion_mnist", data_dir=root, device=device, download=False)
    _sync(device)
    load_seconds = time.perf_counter() - t0

    model = model_fn(seed)
    stamps: list[float] = []

    def on_epoch(_: EpochResult) -> None:
        # train() has just synced with the host (.item()) to produce this epoch's result.
        stamps.append(time.perf_counter())

    settings = OptimizerSettings("adamw", lr=LR, batch_size=batch_size)
    options = dict(train_options or {})
    start = time.perf_counter()
    result = train(
        model,
        settings,
        data,
        epochs=epochs,
        seed=seed,
        on_epoch=on_epoch,
        augment=augment,
        **options,
    )
    _sync(device)
    n = len(data.x_train)
    samples = n * epochs  # train() sees every training sample every epoch
    accuracy = (
        (predict(model, data.x_test, prepare=data.normalize) == data.y_test).float().mean().item()
    )
    return {
        "epochs": epochs,
        "train_split_size": n,
        "val_split_size": len(data.x_val),
        "samples_trained": samples,
        "train_seconds": result.train_seconds,
        "epoch_seconds": [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)],
        "samples_per_s": samples / result.train_seconds,
        "load_seconds": load_seconds,
        "augment": list(augment),
        "train_options": options,
        # How the steps ran (a trainer without CUDA-graph capture has no such field).
        "train_step": getattr(result, "train_step", "eager"),
        "final_train_loss": result.history[-1].train_loss,
        "final_val_accuracy": result.history[-1].val_accuracy,
        "test_accuracy": accuracy,
        "timed": "train() wall time, incl. a validation pass over val_split_size images per "
        "epoch; samples_trained = full batches per epoch x batch size x epochs",
    }


def bench_dataloader(
    root: Path, device: torch.device, batch_size: int, epochs: int, seed: int
) -> dict[str, Any]:
    """Time the tutorial ``DataLoader`` loop on ``root``'s Fashion-MNIST files."""
    t0 = time.perf_counter()
    # A tutorial normalises with the dataset's own mean and std (0.2860/0.3530 for the
    # real Fashion-MNIST); these synthetic images have their own.
    raw = torchvision.datasets.FashionMNIST(str(root), train=True, download=False)
    pixels = raw.data.float() / 255.0
    mean, std = pixels.mean().item(), pixels.std().item()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    train_set = torchvision.datasets.FashionMNIST(
        str(root), train=True, download=False, transform=transform
    )
    test_set = torchvision.datasets.FashionMNIST(
        str(root), train=False, download=False, transform=transform
    )
    load_seconds = time.perf_counter() - t0

    torch.manual_seed(seed)  # the shuffle order
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    model = _model(seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()

    epoch_seconds: list[float] = []
    running_loss = 0.0
    _sync(device)
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        running_loss = 0.0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        _sync(device)
        epoch_seconds.append(time.perf_counter() - start)
    train_seconds = sum(epoch_seconds)
    samples = len(train_set) * epochs

    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test_set, batch_size=1024):
            correct += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
    return {
        "epochs": epochs,
        "train_split_size": len(train_set),
        "samples_trained": samples,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "samples_per_s": samples / train_seconds,
        "load_seconds": load_seconds,
        "final_train_loss": running_loss / len(loader),
        "test_accuracy": correct / len(test_set),
        "timed": "the epoch loops only (decode + transform + collate + copy + step); "
        "samples_trained = every sample of the training file x epochs",
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device(name)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both benchmarks, print the JSON result and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--epochs", type=positive_int, default=2, help="epochs, both loops (2)")
    parser.add_argument(
        "--baseline-epochs",
        type=positive_int,
        default=None,
        help="DataLoader-loop epochs (default: --epochs); fewer keeps a slow run short",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="both loops (64)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    parser.add_argument("--n-train", type=positive_int, default=60_000, help="training images")
    parser.add_argument("--n-test", type=positive_int, default=2_000, help="test images")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads (torch's default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = _pick_device(args.device)
    if args.baseline_epochs is None:
        args.baseline_epochs = args.epochs
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_mnist_like(root, "FashionMNIST", n_train=args.n_train, n_test=args.n_test, seed=0)
        write_seconds = time.perf_counter() - t0
        runs: list[tuple[str, Callable[..., dict[str, Any]], int]] = [
            ("trainer", bench_trainer, args.epochs),
            ("dataloader", bench_dataloader, args.baseline_epochs),
        ]
        results = {
            label: bench(root, device, args.batch_size, epochs, args.seed)
            for label, bench, epochs in runs
        }
        results["trainer_augmented"] = bench_trainer(
            root, device, args.batch_size, args.epochs, args.seed, augment=("flip", "crop")
        )

    trainer, loader = results["trainer"], results["dataloader"]
    augmented = results["trainer_augmented"]
    report: dict[str, Any] = {
        "benchmark": "train_throughput",
        "device": str(device),
        "device_name": _device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Other processes on the machine slow both loops: compare runs at similar load.
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "batch_size": args.batch_size,
        "model": "mlp 784-256-128-10 relu",
        "optimizer": f"adamw lr={LR:g} weight_decay=0",
        "data": (
            f"synthetic Fashion-MNIST IDX files: {args.n_train} train / {args.n_test} test "
            f"28x28 images (written in {write_seconds:.1f} s)"
        ),
        "trainer_samples_per_s": trainer["samples_per_s"],
        "dataloader_samples_per_s": loader["samples_per_s"],
        "ratio_trainer_over_dataloader": trainer["samples_per_s"] / loader["samples_per_s"],
        "epochs": {"trainer": args.epochs, "dataloader": args.baseline_epochs},
        "trainer": trainer,
        "dataloader": loader,
        # Batched flip + crop on the device, against the same trainer without it.
        "trainer_augmented_samples_per_s": augmented["samples_per_s"],
        "ratio_augmented_over_trainer": augmented["samples_per_s"] / trainer["samples_per_s"],
        "trainer_augmented": augmented,
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
