"""The training step: run eagerly, or captured once as a CUDA graph and replayed.

Small models are launch-bound on a big GPU. An eager step of an MLP 784-256-128-10 is
some 30 kernel launches (bf16 casts, three linears, the loss, their backward, the fused
optimizer) and a few hundred microseconds of Python, for a few microseconds of GPU work
each (counted from the step's operations; ``benchmarks/gpu_checks.py`` measures what
capture saves). Within a trial every step has the same shapes, so the whole step (zeroing the
gradients, forward, loss, backward, optimizer step) is captured once as a CUDA graph
(PyTorch's "whole network capture") and each later step is a few launches: the batch
and its labels copied into the graph's inputs, the learning rate where the schedule moved
it, and the replay.

How it stays the same training as the eager step:
- The first :data:`WARMUP_STEPS` steps run eagerly on a side stream, as PyTorch's recipe
  asks (cuBLAS handles, the optimizer's state, autograd's buffers are made lazily and must
  exist before capture). They are real steps of the trial, on its first batches.
- Capture records kernels without running them, so the batch it was captured on is then
  copied in and replayed like every other.
- Gradients are zeroed in place inside the graph, never set to None: the graph and any
  eager step write the same gradient tensors.
- The learning rate is a one-element device tensor the graph reads. A schedule's value for
  each step comes from the study's own scheduler, stepped on a shadow optimizer on the host
  (no sync), and is written into that tensor before the replay.
- An epoch's batches have two sizes at most (:func:`~nas_objectives._feed.batch_bounds`):
  one graph each, captured when first met, each in its own memory pool.
- Anything that fails while warming up or capturing (an operation that syncs with the host,
  an unsupported optimizer) ends capture for this trial: the step runs eagerly from then on
  and :attr:`GraphedStep.train_step` says why.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
from torch import nn

from nas_objectives.space import OptimizerSettings

#: Eager steps before capture (PyTorch's examples use 3 to 11; lazy state needs one or two).
WARMUP_STEPS = 3

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[
    [torch.optim.Optimizer, OptimizerSettings, int], torch.optim.lr_scheduler.LRScheduler | None
]


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class HostSchedule:
    """Each step's learning rate, computed on the host by the study's own scheduler.

    The scheduler steps a shadow optimizer whose learning rate is a float, so the values
    are exactly the eager path's, and stepping never touches the device.
    """

    def __init__(
        self, settings: OptimizerSettings, make_scheduler: SchedulerFactory, total_steps: int
    ) -> None:
        self._shadow = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=settings.lr)
        self._scheduler = make_scheduler(self._shadow, settings, total_steps)
        self._shadow.step()  # no gradient, a no-op: the scheduler then sees a step before its own

    def next_lr(self) -> float:
        """The learning rate of the next step; the schedule then moves on, as the eager
        path's ``scheduler.step()`` after each optimizer step does."""
        lr = float(self._shadow.param_groups[0]["lr"])
        if self._scheduler is not None:
            self._scheduler.step()
        return lr


class EagerStep:
    """One optimizer step a call, as PyTorch runs it: the CPU path, and the default."""

    #: What :attr:`TrainResult.train_step` reports (``train`` says why, where CUDA graphs
    #: were asked for on another device).
    train_step = "eager"

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        loss_fn: LossFn,
        device: torch.device,
        memory_format: torch.memory_format | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.device, self.memory_format = loss_fn, device, memory_format

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Train on one batch; returns its loss, detached, on the device (no host sync)."""
        if self.memory_format is not None:
            xb = xb.contiguous(memory_format=self.memory_format)
        with autocast(self.device):
            loss = self.loss_fn(self.model(xb), yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()


class _Graph:
    """One captured step for one batch size: its static input, target and loss."""

    def __init__(self, graph: torch.cuda.CUDAGraph, x: torch.Tensor, y: torch.Tensor) -> None:
        self.graph, self.x, self.y = graph, x, y
        self.loss = x.new_zeros(())  # the captured step's loss, once captured

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.x.copy_(xb, non_blocking=True)  # also converts to the input's memory format
        self.y.copy_(yb, non_blocking=True)
        self.graph.replay()
        return self.loss


class GraphedStep:
    """The step captured as a CUDA graph after :data:`WARMUP_STEPS` eager steps.

    Args:
        model: On a CUDA device, in training mode.
        settings: The optimizer settings; the optimizer is made here, capturable, with a
            device tensor for its learning rate.
        make_optimizer: ``make_optimizer(model, settings, lr=tensor, capturable=True)``.
        make_scheduler: The schedule the eager path would use; it is stepped on a shadow
            optimizer to produce each step's learning rate.
        total_steps: Steps in the whole run (the schedule's length).
        loss_fn: The loss.
        memory_format: ``torch.channels_last`` for image models, or None.
    """

    def __init__(
        self,
        model: nn.Module,
        settings: OptimizerSettings,
        make_optimizer: OptimizerFactory,
        make_scheduler: SchedulerFactory,
        total_steps: int,
        loss_fn: LossFn,
        memory_format: torch.memory_format | None = None,
    ) -> None:
        self.device = next(model.parameters()).device
        self.model, self.loss_fn, self.memory_format = model, loss_fn, memory_format
        self.lr = torch.tensor(float(settings.lr), device=self.device)
        self._lr_set = float(settings.lr)  # what self.lr holds
        self.optimizer = make_optimizer(model, settings, lr=self.lr, capturable=True)
        self._schedule = HostSchedule(settings, make_scheduler, total_steps)
        self._graphs: dict[int, _Graph] = {}
        self._steps = 0
        self._side = torch.cuda.Stream(self.device)
        self.reason: str | None = None  # why capture was given up, once it was

    @property
    def train_step(self) -> str:
        """``"cuda_graph"`` once a step was captured, else ``"eager (why)"``."""
        if self.reason is not None:
            return f"eager (cuda graph not used: {self.reason})"
        return "cuda_graph" if self._graphs else f"eager (fewer than {WARMUP_STEPS + 1} steps)"

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Train on one batch; returns its loss, detached, on the device (no host sync)."""
        self._set_lr()
        self._steps += 1
        if self.reason is not None:
            return self._eager(xb, yb)
        if self._steps <= WARMUP_STEPS:
            return self._warmup(xb, yb)
        graph = self._graphs.get(len(xb))
        if graph is None:
            try:
                graph = self._capture(xb, yb)
            except Exception as exc:  # any failure to capture falls back to eager
                first_line = (str(exc).splitlines() or [""])[0]
                self.reason = f"{type(exc).__name__}: {first_line}"[:200]
                return self._eager(xb, yb)
            self._graphs[len(xb)] = graph
        return graph(xb, yb)

    def _set_lr(self) -> None:
        """This step's learning rate into the tensor the optimizer reads, when it changed
        (a constant schedule costs no launch a step)."""
        lr = self._schedule.next_lr()
        if lr != self._lr_set:
            self.lr.fill_(lr)  # a host scalar: no sync
            self._lr_set = lr

    def _eager(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if self.memory_format is not None:
            xb = xb.contiguous(memory_format=self.memory_format)
        self.optimizer.zero_grad(set_to_none=False)
        with autocast(self.device):
            loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        with warnings.catch_warnings():
            # Adam warns once per instance that a capturable optimizer steps uncaptured:
            # the warm-up does so on purpose, and a warning a trial would flood the log.
            warnings.filterwarnings("ignore", message=".*capturable=True", category=UserWarning)
            self.optimizer.step()
        return loss.detach()

    def _warmup(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """An eager step on a side stream (PyTorch's recipe before capture)."""
        main = torch.cuda.current_stream(self.device)
        self._side.wait_stream(main)
        try:
            with torch.cuda.stream(self._side):
                loss = self._eager(xb, yb)
        finally:
            main.wait_stream(self._side)
        loss.record_stream(main)
        return loss

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> _Graph:
        fmt = self.memory_format or torch.contiguous_format
        static = _Graph(
            torch.cuda.CUDAGraph(), torch.empty_like(xb, memory_format=fmt), torch.empty_like(yb)
        )
        # One eager step of this shape on the side stream would train twice on the batch;
        # the warm-up already made every lazy state, and a new shape only needs new
        # activations, which capture allocates from its own pool.
        # thread_local: the worker's heartbeat and lifeline threads may do anything meanwhile.
        with torch.cuda.graph(static.graph, capture_error_mode="thread_local"):
            self.optimizer.zero_grad(set_to_none=False)
            with autocast(self.device):
                loss = self.loss_fn(self.model(static.x), static.y)
            loss.backward()
            self.optimizer.step()
            static.loss = loss.detach()
        return static
