"""What a study file may name and what one trial is told, as plain values.

This module imports no torch: the study-file parser, ``nas-study catalog`` and the result
readers need these names, and none of them trains. The modules that train
(:mod:`nas_objectives.data`, :mod:`nas_objectives.objective`, ...) take their names
from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nas_objectives.record import COST_OBJECTIVES, OBJECTIVES, Direction
from nas_objectives.space import SearchSpace

# --------------------------------------------------------------------------- datasets

#: Read by torchvision's own dataset classes (:mod:`nas_objectives._data_torchvision`).
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn")
#: The splits ``emnist`` offers (``[dataset] split``).
EMNIST_SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
#: The user's own files (:mod:`nas_objectives._data_files`).
FILE_DATASETS = ("image_folder", "tensors", "csv")
#: Every dataset a study file may name; ``digits`` is scikit-learn's, bundled.
DATASETS = ("digits", *TORCHVISION_DATASETS, *FILE_DATASETS)
#: The augmentations ``[dataset] augment`` may list; they are applied in this order.
AUGMENTATIONS = ("flip", "crop")

# --------------------------------------------------------------------------- one trial

#: Quantities a constraint may bound from above (``max_<name>`` in a study file).
CONSTRAINABLE = COST_OBJECTIVES


@dataclass(frozen=True)
class ObjectiveConfig:
    """What one trial needs to know about its study.

    Attributes:
        space: The search space.
        objectives: Names from :data:`~nas_objectives.record.OBJECTIVES`, in the order the
            trial returns them.
        epochs: Training epochs per trial.
        seed: Base seed; trial ``n`` initialises and shuffles with ``seed + n``.
        constraints: Upper bounds, e.g. ``{"params": 50_000}``; a trial over a bound is
            recorded as infeasible through :meth:`optuna.trial.Trial.set_constraint`.
        augment: Augmentations applied to every training batch, all of them (``"flip"``,
            ``"crop"``); none by default.
    """

    space: SearchSpace = field(default_factory=SearchSpace)
    objectives: tuple[str, ...] = ("accuracy", "params")
    epochs: int = 10
    seed: int = 0
    constraints: Mapping[str, float] = field(default_factory=dict)
    augment: tuple[str, ...] = ()

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVES[o] for o in self.objectives]
