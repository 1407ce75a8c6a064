"""The training loop: device-resident data, index-slice batches, one sync per epoch."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from nas_objectives._augment import augment_batch, check_augment
from nas_objectives._feed import BatchFeeder
from nas_objectives._graphed_step import EagerStep, GraphedStep, autocast
from nas_objectives.data import TensorData
from nas_objectives.space import OptimizerSettings


class TrainingError(RuntimeError):
    """Training could not go on; the message is the trial's failure reason."""


class TrainingStoppedError(TrainingError):
    """Training was asked to stop (the worker got SIGINT/SIGTERM)."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class EpochResult:
    """What one epoch produced. ``epoch`` counts from 1."""

    epoch: int
    train_loss: float
    val_accuracy: float


@dataclass
class TrainResult:
    """The whole run: per-epoch history and wall time spent training."""

    history: list[EpochResult] = field(default_factory=list)
    train_seconds: float = 0.0
    #: How the steps ran: ``"eager"``, ``"cuda_graph"``, or ``"eager (why)"`` when a CUDA
    #: graph was asked for and not used.
    train_step: str = "eager"

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def prewarm() -> None:
    """Import now what the first optimizer step would import inside the first trial.

    ``torch.optim``'s step wrappers import ``torch._dynamo`` the first time a step runs:
    1 to 4 s on this project's 2-core CI machine (over 10 s under load), which made the
    first trial of every process look many times slower than the rest (and skewed its
    timing against the pruner's peers). A worker calls this once at start-up. It is not
    done on a background thread: the import is GIL-bound Python, so a thread would hardly
    overlap it with the data loading, and concurrent imports of torch's modules can meet
    Python's import-deadlock fallback, which hands one thread a half-initialised module.
    """
    import torch._dynamo  # noqa: F401


def make_optimizer(
    model: nn.Module,
    s: OptimizerSettings,
    *,
    lr: float | torch.Tensor | None = None,
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """The optimizer ``s`` names, fused where PyTorch has a fused kernel (CPU and CUDA).

    ``lr`` replaces ``s.lr`` (a one-element device tensor for a captured step, which reads
    it on every replay); ``capturable`` keeps every piece of state on the device, as CUDA
    graph capture needs (fused SGD has no host state to begin with).
    """
    params = list(model.parameters())
    rate = s.lr if lr is None else lr
    if s.name in ("adam", "adamw"):
        adam = torch.optim.Adam if s.name == "adam" else torch.optim.AdamW
        return adam(
            params,
            lr=rate,
            betas=s.betas,
            weight_decay=s.weight_decay,
            fused=True,
            capturable=capturable,
        )
    if s.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=rate,
            momentum=s.momentum,
            nesterov=s.nesterov and s.momentum > 0,
            weight_decay=s.weight_decay,
            fused=True,
        )
    if s.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=rate,
            momentum=s.momentum,
            weight_decay=s.weight_decay,
            foreach=True,
            capturable=capturable,
        )
    raise ValueError(f"unknown optimizer {s.name!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer, s: OptimizerSettings, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule: ``constant`` (none), ``cosine`` to zero, or ``onecycle``."""
    if s.schedule == "constant":
        return None
    if s.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if s.schedule == "onecycle":
        # Momentum is a searched hyperparameter; the schedule only drives the learning rate.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=s.lr, total_steps=total_steps, cycle_momentum=False
        )
    raise ValueError(f"unknown schedule {s.schedule!r}")


def predict(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 2048,
    *,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Class predictions for ``x`` in eval mode, without a host sync.

    ``prepare`` turns each slice of ``x`` into model inputs: pass a dataset's
    :meth:`~nas_objectives.data.TensorData.normalize` to predict on its stored splits,
    e.g. ``predict(model, data.x_val, prepare=data.normalize)``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters(), x).device
    try:
        with torch.inference_mode(), autocast(device):
            out = []
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                out.append(model(prepare(xb) if prepare is not None else xb).argmax(1))
            return torch.cat(out)
    finally:
        model.train(was_training)


# Added to the training seed for the augmentation generator, so its stream is not the
# batch-order generator's (a generator seeded alike would draw correlated numbers).
_AUGMENT_SEED_OFFSET = 0x5EED_A06


def train(
    model: nn.Module,
    settings: OptimizerSettings,
    data: TensorData,
    *,
    epochs: int,
    seed: int = 0,
    on_epoch: Callable[[EpochResult], None] | None = None,
    stop: threading.Event | None = None,
    augment: Sequence[str] = (),
    min_steps: int = 0,
    cuda_graphs: bool = False,
    channels_last: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data``'s training split for ``epochs`` epochs.

    An epoch trains on every sample of the training split once, in ``ceil(n / batch_size)``
    batches of ``batch_size`` samples or one less (:func:`~nas_objectives._feed.batch_bounds`).
    Batches are slices of a per-epoch ``randperm`` made on the device, normalised there
    from the stored (uint8) features; data kept in host memory is copied over one batch
    ahead (:mod:`nas_objectives._feed`). The host only syncs once per epoch, to read the
    loss and validation accuracy. ``on_epoch`` is
    called after every epoch (a pruning callback raises from there to stop). ``seed`` fixes
    the batch order and the dropout masks; the caller's global RNG state is left unchanged.
    Setting ``stop`` ends training before the next step. ``augment`` names augmentations
    (``"flip"``, ``"crop"``) applied to every training batch on the device, drawn from a
    generator seeded from ``seed``; validation batches are never augmented. ``min_steps``
    is a floor on the optimizer steps of the whole run: a small dataset's epochs are
    lengthened to ``ceil(min_steps / epochs)`` steps each (see ``TrainingSpace``).

    On CUDA, ``cuda_graphs`` captures the training step once per batch size and replays it
    (:mod:`nas_objectives._graphed_step`); the result's ``train_step`` says whether it was
    used, and why not. Elsewhere it is ignored (``train_step`` says so). ``channels_last``
    stores image models' activations NHWC, which bf16 convolutions on tensor cores prefer;
    None (the default) turns it on for 4-D inputs on CUDA.

    Raises:
        NonFiniteLossError: the epoch's mean training loss is NaN or infinite.
        TrainingStoppedError: ``stop`` was set.
        DatasetError: ``augment`` holds an unknown name, or ``data`` is tabular.

    Example:
        >>> from nas_objectives import build_model, load_dataset
        >>> from nas_objectives.space import Layout, OptimizerSettings
        >>> d = load_dataset("digits")
        >>> m = build_model(Layout("mlp", d.input_shape, 10, widths=(64,)))
        >>> r = train(m, OptimizerSettings("adamw", lr=3e-3), d, epochs=5)
        >>> r.history[-1].val_accuracy > 0.9
        True
    """
    augment = check_augment(augment, data.input_shape)
    device = data.device
    model.to(device).train()
    feeder = BatchFeeder(data, settings.batch_size, seed, min_steps=-(-min_steps // epochs))
    steps = feeder.steps
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    if channels_last is None:
        channels_last = device.type == "cuda" and len(data.input_shape) == 3
    memory_format = torch.channels_last if channels_last else None
    if memory_format is not None:
        model.to(memory_format=memory_format)
    step: EagerStep | GraphedStep
    if cuda_graphs and device.type == "cuda":
        step = GraphedStep(
            model, settings, make_optimizer, make_scheduler, steps * epochs, loss_fn, memory_format
        )
    else:
        optimizer = make_optimizer(model, settings)
        scheduler = make_scheduler(optimizer, settings, steps * epochs)
        step = EagerStep(model, optimizer, scheduler, loss_fn, device, memory_format)
        if cuda_graphs:
            step.train_step = f"eager (cuda graphs need CUDA; the device is {device})"
    # A generator of its own, so the batch order does not depend on the augmentation.
    aug_gen = torch.Generator(device=device).manual_seed(seed + _AUGMENT_SEED_OFFSET)
    result = TrainResult()
    # Dropout draws from the global RNG: seed it too, so ``seed`` alone fixes the run, and
    # fork it so the caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            loss_sum = torch.zeros((), device=device)
            for xb, yb in feeder.epoch():
                if stop is not None and stop.is_set():  # a flag read: no device sync
                    raise TrainingStoppedError("worker stopped")
                if augment:
                    xb = augment_batch(xb, augment, aug_gen)
                loss_sum += step(xb, yb)
            correct = (predict(model, data.x_val, prepare=data.normalize) == data.y_val).sum()
            # The one host sync of the epoch.
            mean_loss, n_correct = (loss_sum / steps).item(), int(correct.item())
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(f"non-finite training loss ({mean_loss}) at epoch {epoch}")
            ep = EpochResult(epoch, mean_loss, n_correct / len(data.y_val))
            result.history.append(ep)
            result.train_seconds = time.perf_counter() - start
            result.train_step = step.train_step
            if on_epoch is not None:
                on_epoch(ep)
    return result
