"""The objective: one Optuna trial from sampled values to stored results."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, runtime_checkable

import optuna
import torch

from nas_objectives import record
from nas_objectives._augment import check_augment
from nas_objectives._errors import first_line
from nas_objectives.config import ObjectiveConfig
from nas_objectives.data import TensorData
from nas_objectives.metrics import (
    OBJECTIVES,
    count_flops,
    count_params,
    macro_f1,
    measure_latency_ms,
)
from nas_objectives.models import build_model
from nas_objectives.space import suggest
from nas_objectives.train import EpochResult, TrainingStoppedError, predict, train

#: Called after every epoch of a multi-objective trial with the trial, the epoch (from 1)
#: and the trial's objective values at that epoch (validation accuracy standing in for
#: accuracy and F1; the cost objectives as measured); returns why to prune, or None. It
#: may have a ``decides_at(epoch) -> bool``: the trial's curve, which the decisions of
#: other trials read from the storage, is then written only at those epochs and at the end
#: (by default, every epoch).
EpochPruner = Callable[[optuna.trial.BaseTrial, int, tuple[float, ...]], "str | None"]


def share_and_decide(
    trial: optuna.trial.BaseTrial,
    epoch_pruner: EpochPruner,
    curve: list[float],
    values: tuple[float, ...],
    *,
    every_epoch: bool = False,
) -> str | None:
    """After epoch ``len(curve)``: share the trial's curve through the storage and ask the
    pruner, at the epochs where it decides (``decides_at``), or every epoch with
    ``every_epoch``. Returns why to prune, or None.

    Optuna refuses ``trial.report`` in multi-objective studies (and its TPE cannot rank
    pruned multi-objective trials that carry intermediate values), so the curve is shared
    as a user attribute. Another trial's decision at epoch e reads this curve at e, and it
    is written at e whenever a decision can be made at e, so writing only then (a rung of
    ``pareto_rank``) takes the same decisions as writing every epoch, in fewer writes.
    """
    epoch = len(curve)
    decides_at: Callable[[int], bool] = getattr(epoch_pruner, "decides_at", lambda _: True)
    if not (every_epoch or decides_at(epoch)):
        return None
    trial.set_user_attr(record.VAL_ACCURACY, list(curve))
    publish(trial)  # other workers' decisions at this epoch read it
    return epoch_pruner(trial, epoch, values)


@runtime_checkable
class TrialRecorder(Protocol):
    """What a trial offers beyond Optuna's ``Trial`` to be recorded in few storage writes.

    The worker's trials implement it (``studies.run``'s lifeline, over the storage's
    declared trial-write interface): user attributes in one write, and ``publish`` to store
    what the trial wrote so far now, where the storage keeps a trial's writes for later.
    A plain Optuna ``Trial`` stores each write at once and needs neither.
    """

    def set_user_attrs(self, attrs: dict[str, Any]) -> None:
        """Store several user attributes in one write."""

    def publish(self) -> None:
        """Make what the trial wrote so far visible to other processes now."""


def set_user_attrs(trial: optuna.trial.BaseTrial, attrs: dict[str, Any]) -> None:
    """Store ``attrs`` as user attributes of ``trial``: in one write for a
    :class:`TrialRecorder` (the worker's trials), else one by one."""
    if isinstance(trial, TrialRecorder):
        trial.set_user_attrs(attrs)
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def publish(trial: optuna.trial.BaseTrial) -> None:
    """Make what ``trial`` wrote so far visible to other processes now: a
    :class:`TrialRecorder` stores its kept writes; any other trial has stored them already.
    """
    if isinstance(trial, TrialRecorder):
        trial.publish()


class TrialFailedError(RuntimeError):
    """A trial failed for a reason already recorded in its ``fail_reason`` attribute."""


def failure_reason(exc: BaseException) -> str:
    """The one line recorded as a failed trial's ``fail_reason``.

    A stop request is not an error of the trial: its reason is just "worker stopped".
    """
    if isinstance(exc, (TrialFailedError, TrainingStoppedError)):
        return first_line(exc)[:500]
    name, text = type(exc).__name__, first_line(exc)
    return (text if text == name else f"{name}: {text}")[:500]


class Objective:
    """Callable for :meth:`optuna.Study.optimize`.

    Each call samples a layout and optimizer settings, builds and trains the model on
    ``data`` and returns the study's objective values in order. Single-objective studies
    of accuracy or F1 report validation accuracy after every epoch so Optuna's pruners can
    stop the trial.

    Stores per trial the user attributes listed in :mod:`nas_objectives.record`.
    ``stop`` ends a trial's training early (the worker's signal), ``epoch_pruner`` decides
    multi-objective pruning at epoch ends, and ``cuda_graphs`` captures each trial's
    training step on CUDA (see :func:`~nas_objectives.train`).

    Example:
        >>> import optuna
        >>> from nas_objectives import load_dataset
        >>> obj = Objective(ObjectiveConfig(epochs=1), load_dataset("digits"))
        >>> acc, n_params = obj(optuna.trial.FixedTrial({"n_layers": 1, "units_l0": 16,
        ...                                              "adamw_lr": 3e-3}))
        >>> n_params  # 64*16+16 + 16*10+10
        1210.0
    """

    def __init__(
        self,
        config: ObjectiveConfig,
        data: TensorData,
        *,
        stop: threading.Event | None = None,
        epoch_pruner: EpochPruner | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        # Refuse augmentation of tabular data now, before any trial runs.
        check_augment(config.augment, data.input_shape)
        self.config = config
        self.data = data
        self.stop = stop
        self.epoch_pruner = epoch_pruner
        self.cuda_graphs = cuda_graphs

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, ...]:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            trial.set_user_attr(record.FAIL_REASON, reason)
            if not isinstance(exc, torch.OutOfMemoryError):
                raise
        # Out of memory: leaving the except block dropped the traceback, and with it the
        # frames that held the model and activations, so the memory can be given back now.
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise TrialFailedError(reason)

    def _run(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, ...]:
        cfg, data = self.config, self.data
        layout, settings = suggest(trial, cfg.space, data.input_shape, data.num_classes)
        seed = cfg.seed + trial.number
        torch.manual_seed(seed)
        model = build_model(layout).to(data.device)

        # Cost metrics are known before training (the multi-objective pruner relies on it).
        costs: dict[str, float] = {
            "params": count_params(model),
            "flops": count_flops(model, data.input_shape),
        }
        if "latency_ms" in cfg.objectives or "latency_ms" in cfg.constraints:
            costs["latency_ms"] = measure_latency_ms(model, data.input_shape)
        attrs: dict[str, Any] = {
            record.ARCH: f"{layout.summary()} | {settings.summary()}",
            record.LAYOUT: layout.to_dict(),
            record.OPTIMIZER_SETTINGS: settings.to_dict(),
            record.PARAMS: int(costs["params"]),
            record.FLOPS: int(costs["flops"]),
        }
        if "latency_ms" in costs:
            attrs[record.LATENCY_MS] = costs["latency_ms"]
        attrs[record.DEVICE] = str(data.device)
        attrs[record.SEED] = seed  # what `nas-study export` retrains with
        set_user_attrs(trial, attrs)
        for name, limit in cfg.constraints.items():
            trial.set_constraint(f"max_{name}", costs[name] - limit)
        # Sampled and built: other workers, the dashboard and a re-queued copy see it now.
        publish(trial)

        curve: list[float] = []
        # Validation accuracy is only a fit intermediate value for a study that maximizes a
        # quality (accuracy or F1); reported to a study that minimizes params, flops or
        # latency, a pruner would stop the trials that learn best.
        report = len(cfg.objectives) == 1 and OBJECTIVES[cfg.objectives[0]] == "maximize"
        # Otherwise, with a pruner, the curve is shared through the storage (see on_epoch).
        epoch_pruner = None if report else self.epoch_pruner

        def prune(epoch: int, reason: str) -> NoReturn:
            set_user_attrs(
                trial,
                {
                    record.VAL_ACCURACY: list(curve),
                    record.EPOCHS_RUN: epoch,
                    record.PRUNED_AT_EPOCH: epoch,
                    record.PRUNED_BY: reason,
                },
            )
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {reason}")

        def on_epoch(ep: EpochResult) -> None:
            curve.append(ep.val_accuracy)
            if report:
                trial.report(ep.val_accuracy, ep.epoch)
                if trial.should_prune():
                    pruner = getattr(getattr(trial, "study", None), "pruner", None)
                    prune(ep.epoch, type(pruner).__name__)
            elif epoch_pruner is not None:
                now = {**costs, "accuracy": ep.val_accuracy, "f1": ep.val_accuracy}
                values = tuple(float(now[name]) for name in cfg.objectives)
                reason = share_and_decide(trial, epoch_pruner, curve, values)
                if reason is not None:
                    prune(ep.epoch, reason)

        result = train(
            model,
            settings,
            data,
            epochs=cfg.epochs,
            seed=seed,
            on_epoch=on_epoch,
            stop=self.stop,
            augment=cfg.augment,
            min_steps=cfg.space.training.min_steps,
            cuda_graphs=self.cuda_graphs,
        )
        done: dict[str, Any] = {
            record.VAL_ACCURACY: curve,
            record.EPOCHS_RUN: result.epochs_run,
            record.TRAIN_SECONDS: round(result.train_seconds, 4),
        }
        if data.device.type == "cuda" or self.cuda_graphs:
            done[record.TRAIN_STEP] = result.train_step
        set_user_attrs(trial, done)

        metrics = dict(costs)
        metrics["accuracy"] = result.history[-1].val_accuracy
        if "f1" in cfg.objectives:
            metrics["f1"] = macro_f1(
                predict(model, data.x_val, prepare=data.normalize), data.y_val, data.num_classes
            )
        values = tuple(float(metrics[name]) for name in cfg.objectives)
        return values[0] if len(values) == 1 else values
