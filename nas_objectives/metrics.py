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
    "count_flops_by_dispatch",
    "count_params",
    "macro_f1",
    "measure_latency_ms",
]


def count_params(model: nn.Module) -> int:
    """Exactly ``sum(p.numel() for p in model.parameters())``."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of one sample, counted from the layers' shapes.

    A multiply-add counts as two FLOPs; matrix products and convolutions are counted,
    element-wise operations are not (the usual convention, and PyTorch's
    ``FlopCounterMode``'s, which :func:`count_flops_by_dispatch` uses and a test checks
    this against). Every family we build does its products in ``nn.Linear`` and
    ``nn.Conv2d``, so forward hooks on those see each product with its real shapes in one
    plain forward pass: about 1 ms, where ``FlopCounterMode`` intercepts every op in
    Python (about 50 ms a trial, 20% of a ``digits-mlp`` trial's time).
    """
    total = 0

    def linear(m: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Linear)
        total += 2 * m.in_features * out.numel()

    def conv(m: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        total += 2 * (m.in_channels // m.groups) * kh * kw * out.numel()

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif type(m) in _UNHOOKED_PRODUCTS:
            # A layer that multiplies outside Linear/Conv2d: count the slow, general way.
            for h in hooks:
                h.remove()
            return count_flops_by_dispatch(model, input_shape)
    try:
        _forward_one(model, input_shape)
    finally:
        for h in hooks:
            h.remove()
    return total


#: Layers with matrix products of their own that the hooks above do not see.
_UNHOOKED_PRODUCTS = (nn.Bilinear, nn.MultiheadAttention, nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d)


def count_flops_by_dispatch(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """:func:`count_flops` by PyTorch's ``FlopCounterMode``: every op, any module."""
    with FlopCounterMode(display=False) as counter:
        _forward_one(model, input_shape)
    return int(counter.get_total_flops())


def _forward_one(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)


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
