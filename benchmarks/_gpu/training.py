"""The trainer's checks: MLP and CNN throughput, and eager against captured losses.

Each runs in a child process of its own (``benchmarks/gpu_checks.py``), so a CUDA error
that poisons the process's context costs one check, not the rest. Each measurement within
a check is guarded too: a variant that fails records its error and the others still run.
"""

from __future__ import annotations

import functools
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks._gpu.settings import Settings
from benchmarks.train_throughput import _model, bench_dataloader, bench_trainer
from nas_objectives import (
    Layout,
    OptimizerSettings,
    TensorData,
    build_model,
    load_dataset,
    train,
)

#: Issue 14's targets for the captured MLP trainer at batch 256.
TARGET_SAMPLES_PER_S = 1_000_000
TARGET_RATIO_OVER_DATALOADER = 30.0
#: Eager and captured per-epoch losses agree within this relative tolerance.
LOSS_RTOL = 1e-3


def guarded(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``, or its error as ``{"error": ..., "traceback": ...}``."""
    try:
        return run()
    except Exception as exc:
        lines = traceback.format_exc().strip().splitlines()
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": lines[-12:]}


def warm_up(
    s: Settings, model_fn: Callable[[int], nn.Module], variants: list[dict[str, Any]]
) -> float:
    """One untimed epoch per variant, so the first timed run does not pay the process's
    one-time costs (CUDA context, cuBLAS/cuDNN handles, lazily loaded kernels, the
    ``torch._dynamo`` import of the first optimizer step). Returns its seconds."""
    began = time.perf_counter()
    data = load_dataset(
        "fashion_mnist", data_dir=s.data_dir, device=torch.device(s.device), download=False
    )
    settings = OptimizerSettings("adamw", lr=1e-3, batch_size=s.batch_size)
    for options in variants:
        train(model_fn(s.seed), settings, data, epochs=1, seed=s.seed, **options)
    return time.perf_counter() - began


def steady_samples_per_s(run: dict[str, Any]) -> float | None:
    """Samples/s over the epochs after the first (warm-up, capture), when there are any."""
    later = run.get("epoch_seconds", [])[1:]
    if not later:
        return None
    return run["train_split_size"] * len(later) / sum(later)


def _rate(run: dict[str, Any]) -> float | None:
    return run.get("samples_per_s")


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    ra, rb = _rate(a), _rate(b)
    return ra / rb if ra is not None and rb else None


def _nothing(partial: dict[str, Any]) -> None:
    """The default ``save``: keep no partial result."""


Save = Callable[[dict[str, Any]], None]


def mlp_throughput(s: Settings, save: Save = _nothing) -> dict[str, Any]:
    """(a) the trainer eager, (b) captured, (c) the ``DataLoader`` loop, on one MLP.

    ``save`` gets the report so far after each run (capture, the new path, runs last).
    """
    root, device = Path(s.data_dir), torch.device(s.device)

    def trainer(options: dict[str, Any]) -> dict[str, Any]:
        run = bench_trainer(
            root, device, s.batch_size, s.throughput_epochs, s.seed, train_options=options
        )
        run["steady_samples_per_s"] = steady_samples_per_s(run)
        return run

    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "warm_up": lambda: {"seconds": warm_up(s, _model, [{}])},
        "trainer_eager": lambda: trainer({}),
        "dataloader": lambda: bench_dataloader(
            root, device, s.batch_size, s.baseline_epochs, s.seed
        ),
        "trainer_cuda_graphs": lambda: trainer({"cuda_graphs": True}),
    }
    runs: dict[str, dict[str, Any]] = {}
    for name, step in steps.items():
        runs[name] = guarded(step)
        save(_mlp_report(s, runs))
    return _mlp_report(s, runs)


def _mlp_report(s: Settings, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    eager, loader = runs.get("trainer_eager", {}), runs.get("dataloader", {})
    graphed = runs.get("trainer_cuda_graphs", {})
    b_over_c = _ratio(graphed, loader)
    return {
        "model": "mlp 784-256-128-10 relu, adamw lr=1e-3",
        "batch_size": s.batch_size,
        "epochs": {"trainer": s.throughput_epochs, "dataloader": s.baseline_epochs},
        "trainer_eager_samples_per_s": _rate(eager),
        "trainer_cuda_graphs_samples_per_s": _rate(graphed),
        "dataloader_samples_per_s": _rate(loader),
        "ratio_graphs_over_dataloader": b_over_c,
        "ratio_eager_over_dataloader": _ratio(eager, loader),
        "ratio_graphs_over_eager": _ratio(graphed, eager),
        "cuda_graphs_train_step": graphed.get("train_step"),
        # samples/s over every epoch, warm-up and capture included (as train_throughput).
        "meets_1m": _meets(_rate(graphed), TARGET_SAMPLES_PER_S),
        "meets_30x": _meets(b_over_c, TARGET_RATIO_OVER_DATALOADER),
        # The same without the first epoch.
        "meets_1m_steady": _meets(graphed.get("steady_samples_per_s"), TARGET_SAMPLES_PER_S),
        **runs,
    }


def _meets(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def cnn_layout(widths: tuple[int, ...]) -> Layout:
    """A fashion-cnn-sized CNN: 3x3 conv, batch norm, ReLU and 2x2 max-pool per block."""
    return Layout(
        "cnn",
        (1, 28, 28),
        10,
        widths=widths,
        kernel_sizes=(3,) * len(widths),
        norm="batch",
        pooling="max",
        activation="relu",
    )


#: The CNN's runs, in order (captured last): name, ``cuda_graphs``, ``channels_last``.
CNN_VARIANTS = (
    ("eager_nchw", False, False),
    ("eager_channels_last", False, True),
    ("cuda_graphs_nchw", True, False),
    ("cuda_graphs_channels_last", True, True),
)


def cnn_throughput(s: Settings, save: Save = _nothing) -> dict[str, Any]:
    """The CNN's samples/s, eager and captured, each in NCHW and in channels_last."""
    root, device = Path(s.data_dir), torch.device(s.device)
    layout = cnn_layout(s.cnn_widths)

    def model_fn(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(layout)

    formats = [{"channels_last": False}, {"channels_last": True}]
    warm = guarded(lambda: {"seconds": warm_up(s, model_fn, formats)})
    runs: dict[str, dict[str, Any]] = {}
    for name, graphs, channels_last in CNN_VARIANTS:
        options = {"cuda_graphs": graphs, "channels_last": channels_last}

        def run(options: dict[str, Any] = options) -> dict[str, Any]:
            out = bench_trainer(
                root,
                device,
                s.batch_size,
                s.cnn_epochs,
                s.seed,
                model_fn=model_fn,
                train_options=options,
            )
            out["steady_samples_per_s"] = steady_samples_per_s(out)
            return out

        runs[name] = guarded(run)
        save(_cnn_report(s, layout, warm, runs))
    return _cnn_report(s, layout, warm, runs)


def _cnn_report(
    s: Settings, layout: Layout, warm: dict[str, Any], runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    rates = {name: _rate(r) for name, r in runs.items()}
    known = {name: rate for name, rate in rates.items() if rate is not None}
    fastest = max(known, key=known.__getitem__) if known else None
    get = lambda name: runs.get(name, {})  # noqa: E731
    return {
        "model": layout.summary(),
        "batch_size": s.batch_size,
        "epochs": s.cnn_epochs,
        "autocast": "bf16" if s.cuda else "none (CPU)",
        "samples_per_s": rates,
        "ratio_cuda_graphs_over_eager_nchw": _ratio(get("cuda_graphs_nchw"), get("eager_nchw")),
        "ratio_channels_last_over_nchw_eager": _ratio(
            get("eager_channels_last"), get("eager_nchw")
        ),
        "ratio_channels_last_over_nchw_cuda_graphs": _ratio(
            get("cuda_graphs_channels_last"), get("cuda_graphs_nchw")
        ),
        "ratio_fastest_over_eager_nchw": _ratio(get(fastest), get("eager_nchw"))
        if fastest
        else None,
        "fastest": fastest,
        "train_steps": {name: r.get("train_step") for name, r in runs.items()},
        "warm_up": warm,
        "runs": runs,
    }


def _equality_case(
    s: Settings, data: TensorData, dropout: float, schedule: str, optimizer: str
) -> dict[str, Any]:
    settings = OptimizerSettings(
        optimizer,
        lr=1e-3 if optimizer == "adamw" else 0.05,
        momentum=0.9 if optimizer == "sgd" else 0.0,
        batch_size=s.batch_size,
        schedule=schedule,
    )
    layout = Layout("mlp", data.input_shape, data.num_classes, s.equality_widths, dropout=dropout)
    runs = {}
    for label, graphs in (("eager", False), ("cuda_graphs", True)):
        torch.manual_seed(s.seed)  # the same initial weights for both
        model = build_model(layout)
        options: dict[str, Any] = {"cuda_graphs": True} if graphs else {}
        result = train(model, settings, data, epochs=s.equality_epochs, seed=s.seed, **options)
        runs[label] = result
    eager = [e.train_loss for e in runs["eager"].history]
    graphed = [e.train_loss for e in runs["cuda_graphs"].history]
    rel = [
        abs(a - b) / abs(a) if a else (0.0 if a == b else math.inf)
        for a, b in zip(eager, graphed, strict=True)
    ]
    step = str(getattr(runs["cuda_graphs"], "train_step", "eager (no train_step field)"))
    return {
        "model": layout.summary(),
        "optimizer": settings.summary(),
        "eager_train_loss": eager,
        "cuda_graphs_train_loss": graphed,
        "eager_val_accuracy": [e.val_accuracy for e in runs["eager"].history],
        "cuda_graphs_val_accuracy": [e.val_accuracy for e in runs["cuda_graphs"].history],
        "max_rel_diff": max(rel),
        "agree": max(rel) <= LOSS_RTOL,
        "eager_train_step": getattr(runs["eager"], "train_step", None),
        "train_step": step,
        # On CUDA the step must have been captured; elsewhere capture falls back, and says so.
        "train_step_ok": step == "cuda_graph" if s.cuda else step.startswith("eager"),
    }


def capture_equality(s: Settings, save: Save = _nothing) -> dict[str, Any]:
    """Eager against captured per-epoch losses of seeded runs, case by case."""
    data = load_dataset(
        "fashion_mnist", data_dir=s.data_dir, device=torch.device(s.device), download=False
    )
    cases = {}
    for dropout in (0.0, 0.2):
        for schedule in ("constant", "cosine"):
            for optimizer in ("adamw", "sgd"):
                name = f"{optimizer}_{schedule}_dropout{dropout:g}"
                cases[name] = guarded(
                    functools.partial(_equality_case, s, data, dropout, schedule, optimizer)
                )
                save(_equality_report(s, cases))
    return _equality_report(s, cases)


#: The cases of ``capture_equality``: dropout x schedule x optimizer.
EQUALITY_CASES = 2 * 2 * 2


def _equality_report(s: Settings, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ran = [c for c in cases.values() if "error" not in c]
    complete = len(ran) == EQUALITY_CASES
    return {
        "epochs": s.equality_epochs,
        "batch_size": s.batch_size,
        "rtol": LOSS_RTOL,
        "autocast": "bf16, both runs" if s.cuda else "none (CPU)",
        "cases_run": len(ran),
        "cases_failed": len(cases) - len(ran),
        "max_rel_diff": max((c["max_rel_diff"] for c in ran), default=None),
        "all_agree": complete and all(c["agree"] for c in ran),
        "all_train_steps_ok": complete and all(c["train_step_ok"] for c in ran),
        "train_steps": sorted({c["train_step"] for c in ran}),
        "cases": cases,
    }
