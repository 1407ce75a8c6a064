"""What a trial measures: size, compute, speed and quality. Plain tensors in, numbers out."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas_objectives.record import OBJECTIVES, Direction

__all__ = [
    "OBJECTIVES",
    "Direction",
    "accuracy",
    "count_flops",
    "count_params",
    "macro_f1",
    "measure_latency_ms",
]


def count_params(model: nn.Module) -> int:
    """Exactly ``sum(p.numel() for p in model.parameters())``."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of one sample, as counted by PyTorch's ``FlopCounterMode``.

    A multiply-add counts as two FLOPs; matrix products and convolutions are counted,
    element-wise operations are not (the usual convention).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def measure_latency_ms(
    model: nn.Module, input_shape: tuple[int, ...], *, warmup: int = 10, repeats: int = 50
) -> float:
    """Median wall time in milliseconds of a batch-1 inference on the model's device."""
    device = next(model.parameters()).device
    x = torch.zeros((1, *input_shape), device=device)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000.0


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Share of ``pred == target``."""
    return float((pred == target).float().mean().item())


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``target`` or ``pred``."""
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    tp = cm.diag().double()
    fp = cm.sum(0).double() - tp
    fn = cm.sum(1).double() - tp
    present = (tp + fp + fn) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return float(f1[present].mean().item()) if bool(present.any()) else 0.0
