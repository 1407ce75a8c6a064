"""What a validated study file holds: frozen dataclasses of plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas_objectives import ObjectiveConfig
from nas_objectives.record import Direction


@dataclass(frozen=True)
class DatasetSpec:
    """Which dataset, how much of its training split validates, and where its files are.

    ``path`` and ``test_path`` are absolute (resolved against the study file's folder).
    Each other field is set only for the kinds that use it (see the README's Datasets).
    """

    name: str
    val_fraction: float = 0.2
    data_dir: str | None = None
    path: str | None = None
    test_path: str | None = None
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    label: str | None = None
    split: str | None = None

    def reader_options(self) -> dict[str, Any]:
        """The keyword arguments of ``nas_objectives.load_dataset`` that read the files."""
        return {
            "path": self.path,
            "test_path": self.test_path,
            "image_size": self.image_size,
            "channels": self.channels,
            "label": self.label,
            "split": self.split,
        }


@dataclass(frozen=True)
class ComponentSpec:
    """A sampler or pruner: its name and the keyword arguments for Optuna's class."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HeartbeatSpec:
    """How workers prove they are alive, and how often a dead worker's trial is retried.

    A RUNNING trial whose worker sent no heartbeat for ``grace_period`` seconds becomes
    FAIL, and a copy is queued for another worker, at most ``max_retry`` times.
    """

    interval: int = 60
    grace_period: int = 180
    max_retry: int = 3


@dataclass(frozen=True)
class StudySpec:
    """A validated study file.

    ``objective`` is everything a trial needs; the rest says how the study runs.
    ``source`` is the parsed TOML, stored with the study so results can be read later.
    """

    name: str
    dataset: DatasetSpec
    objective: ObjectiveConfig
    sampler: ComponentSpec
    pruner: ComponentSpec
    n_trials: int
    timeout: float | None = None
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    description: str = ""
    path: str = "<memory>"
    source: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.objective.objectives

    @property
    def directions(self) -> list[Direction]:
        return self.objective.directions

    @property
    def seed(self) -> int:
        return self.objective.seed
