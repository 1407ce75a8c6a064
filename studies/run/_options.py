"""What ``run``, ``worker`` and ``launch`` share: one dataclass, built once from the command
line, passed whole to :func:`~studies.run.run_study` and forwarded whole by ``launch``."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from storage import DEFAULT_OUTAGE_TIMEOUT_S, HeartbeatSettings
from studies.errors import StudyRunError
from studies.spec import HeartbeatSpec, StudySpec


@dataclass(frozen=True)
class RunOptions:
    """How this process runs a study; None means "the study file's" (or PyTorch's).

    Attributes:
        n_trials: The study's global budget: COMPLETE + PRUNED trials across all workers.
        max_trials: At most this many trials in this worker.
        timeout: Stop starting trials after this many seconds.
        study_name: Name in the storage (default: the study file's ``name``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        data_dir: Where torchvision datasets are read.
        device_memory_budget: The share of free device memory (0 to 1), or the bytes, a
            dataset may take on the device; beyond it, it stays in pinned host memory.
        seed: Study seed (sampler and training); trial ``n`` trains with seed + ``n``.
        epochs: Epochs per trial, overriding the study file.
        threads: PyTorch CPU threads in this worker.
        cuda_graphs: ``"on"`` captures each trial's training step as a CUDA graph on CUDA
            (``"off"``, the default, runs it eagerly).
        heartbeat_interval, grace_period, max_retry: Override the file's ``[heartbeat]``.
        outage_timeout: Seconds a database or proxy outage is waited out (default 600).
        worker_index: Offset of this worker's sampler seed (``launch`` numbers them).
    """

    n_trials: int | None = None
    max_trials: int | None = None
    timeout: float | None = None
    study_name: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    device_memory_budget: float | None = None
    seed: int | None = None
    epochs: int | None = None
    threads: int | None = None
    cuda_graphs: str | None = None
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    max_retry: int | None = None
    outage_timeout: float | None = None
    worker_index: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """The fields of ``args`` (parsed by the CLI) that this class has; others are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in known and v is not None})

    def worker_argv(self) -> list[str]:
        """The ``nas-study worker`` flags that reproduce these options (what ``launch``
        forwards), every field but ``worker_index``, which ``launch`` sets per worker."""
        argv: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "worker_index" and value is not None:
                argv += [f"--{f.name.replace('_', '-')}", str(value)]
        return argv

    @property
    def outage_seconds(self) -> float:
        """``outage_timeout``, or the default of :data:`storage.DEFAULT_OUTAGE_TIMEOUT_S`.

        Raises:
            StudyRunError: a timeout that is not a positive number.
        """
        if self.outage_timeout is None:
            return DEFAULT_OUTAGE_TIMEOUT_S
        if not self.outage_timeout > 0:
            raise StudyRunError(
                f"--outage-timeout {self.outage_timeout}: expected a positive number of seconds"
            )
        return float(self.outage_timeout)

    def heartbeat(self, spec: StudySpec | None) -> HeartbeatSettings:
        """The study file's heartbeat settings (the defaults without one), overridden here.

        Raises:
            StudyRunError: a grace period that is not longer than the interval.
        """
        base = spec.heartbeat if spec is not None else HeartbeatSpec()
        interval = self.heartbeat_interval or base.interval
        grace = self.grace_period or (
            base.grace_period if self.heartbeat_interval is None else 3 * interval
        )
        if grace <= interval:
            raise StudyRunError(
                f"--grace-period {grace} must be longer than the heartbeat interval {interval}"
            )
        retry = base.max_retry if self.max_retry is None else self.max_retry
        return HeartbeatSettings(interval=interval, grace_period=grace, max_retry=retry)
