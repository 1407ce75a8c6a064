"""What one run of the GPU checks measures, and how big: the full sizes and the smoke ones."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Every check, in the order they run. ``cuda_oom`` runs before ``workers_per_gpu``: it is
#: short, and ``workers_per_gpu`` takes whatever time is left (run by run), so a slow start
#: of the machine costs some of its launches, never a whole check.
CHECKS = ("mlp_throughput", "capture_equality", "cnn_throughput", "cuda_oom", "workers_per_gpu")

#: The two study families ``workers_per_gpu`` launches, and the catalog files they come from.
FAMILIES = {"mlp": "fashion-mlp", "cnn": "fashion-cnn"}


@dataclass(frozen=True)
class Settings:
    """Sizes and switches of one run; the child processes get them as JSON.

    Attributes:
        smoke: Tiny sizes (seconds on a CPU), else the issue's sizes.
        device: ``"cuda"`` or ``"cpu"``.
        data_dir: Where the synthetic Fashion-MNIST IDX files were written.
        n_train, n_test: Images in the training and test files.
        batch_size: Batch size of the throughput checks.
        throughput_epochs: Trainer epochs of ``mlp_throughput``.
        baseline_epochs: ``DataLoader``-loop epochs of ``mlp_throughput``.
        cnn_widths: Channels of the CNN of ``cnn_throughput`` (kernel 3, BN, max-pool).
        cnn_epochs: Epochs of each ``cnn_throughput`` run.
        equality_widths: Hidden units of the MLP of ``capture_equality``.
        equality_epochs: Epochs of each ``capture_equality`` run.
        workers_per_gpu: The K of ``workers_per_gpu``.
        families: The study families it launches (keys of :data:`FAMILIES`).
        window_s: Seconds of trials per launch, from the first trial's start.
        launch_epochs: ``--epochs`` of each launch.
        launch_trials: ``--n-trials`` of each launch (the window ends it first by default).
        startup_timeout_s: Seconds a launch may take to start its first trial.
        stop_timeout_s: Seconds a launch may take to exit after SIGTERM before it is killed.
        storage_url: The launches' storage; None: a fresh SQLite file per launch.
        launch_cuda_graphs: ``--cuda-graphs`` of each launch (``on``/``off``), or None to
            leave the CLI's default.
        study_overrides: Per family, study-file lines replaced (``key -> TOML value``);
            the smoke run narrows the catalog's spaces so a CPU trial takes a second.
        seed: Seed of every run.
    """

    smoke: bool
    device: str
    data_dir: str
    n_train: int = 60_000
    n_test: int = 2_000
    batch_size: int = 256
    throughput_epochs: int = 5
    baseline_epochs: int = 1
    cnn_widths: tuple[int, ...] = (32, 64, 128)
    cnn_epochs: int = 3
    equality_widths: tuple[int, ...] = (128, 64)
    equality_epochs: int = 2
    workers_per_gpu: tuple[int, ...] = (1, 2, 4, 8)
    families: tuple[str, ...] = tuple(FAMILIES)
    window_s: float = 15.0
    launch_epochs: int = 2
    launch_trials: int = 100_000
    startup_timeout_s: float = 90.0
    stop_timeout_s: float = 10.0
    storage_url: str | None = None
    launch_cuda_graphs: str | None = None
    study_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    seed: int = 0

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        values = dict(data)
        for key in ("cnn_widths", "equality_widths", "workers_per_gpu", "families"):
            values[key] = tuple(values[key])
        return cls(**values)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def read(cls, path: Path) -> Settings:
        return cls.from_json(json.loads(path.read_text()))


#: What ``--smoke`` changes: a CPU runs every check in well under a minute.
SMOKE: dict[str, Any] = {
    "n_train": 2_048,
    "n_test": 256,
    "throughput_epochs": 1,
    "cnn_widths": (8, 16),
    "cnn_epochs": 1,
    "equality_widths": (32,),
    "workers_per_gpu": (1, 2),
    # A few trials end each launch, rather than a window a cold first trial may outlast
    # on a busy CPU; the window is then only a ceiling.
    "launch_trials": 3,
    "window_s": 30.0,
    "launch_epochs": 1,
    "startup_timeout_s": 60.0,
    "stop_timeout_s": 15.0,
    "study_overrides": {
        "mlp": {"depth": "[1, 2]", "width": "{ low = 16, high = 64, log = true }"},
        "cnn": {"depth": "[1, 2]", "width": "{ low = 4, high = 8, log = true }"},
    },
}

#: Ceiling of each in-process check's child process, in seconds (full, smoke); the run's
#: remaining budget lowers it. ``workers_per_gpu`` has none: it stops launching when the
#: budget cannot hold another window.
ALLOWANCE_S = {
    "mlp_throughput": (90.0, 60.0),
    "capture_equality": (90.0, 60.0),
    "cnn_throughput": (90.0, 60.0),
    "cuda_oom": (60.0, 60.0),
}
