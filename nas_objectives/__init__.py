"""What one trial does: sample, build, train, measure. Never opens storage or parses a CLI.

The names below that need torch (data, models, training, metrics, export, the objective)
are imported on first use, through :func:`__getattr__`: the study-file parser and the
result readers (``nas-study best``, ``report``, ``dashboard``) read this package's
torch-free names (:mod:`~nas_objectives.record`, :mod:`~nas_objectives.space`,
:mod:`~nas_objectives.config`) and never pay torch's seconds of import.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from nas_objectives._data_errors import DatasetError
from nas_objectives._errors import first_line
from nas_objectives._export_manifest import ExportError, read_manifest
from nas_objectives.config import (
    AUGMENTATIONS,
    CONSTRAINABLE,
    DATASETS,
    EMNIST_SPLITS,
    FILE_DATASETS,
    ObjectiveConfig,
)
from nas_objectives.record import OBJECTIVES
from nas_objectives.space import (
    ACTIVATIONS,
    FAMILIES,
    NORMS,
    OPTIMIZER_HYPERPARAMETERS,
    OPTIMIZERS,
    POOLINGS,
    SCHEDULES,
    Choice,
    FloatRange,
    IntRange,
    Layout,
    ModelSpace,
    OptimizerSettings,
    OptimizerSpace,
    SearchSpace,
    TrainingSpace,
    suggest,
)

#: The names that need torch, by the module that defines them.
_NEED_TORCH = {
    "nas_objectives.data": ("TensorData", "load_dataset", "tensor_data_from_arrays"),
    "nas_objectives.export": (
        "ExportEvaluation",
        "check_export_dir",
        "check_export_formats",
        "evaluate_export",
        "load_model",
        "read_architecture",
        "retrain",
        "save_export",
    ),
    "nas_objectives.metrics": (
        "accuracy",
        "count_flops",
        "count_params",
        "macro_f1",
        "measure_latency_ms",
    ),
    "nas_objectives.models": ("CNN", "MLP", "build_model"),
    "nas_objectives.objective": ("Objective", "TrialFailedError", "failure_reason"),
    "nas_objectives.train": (
        "EpochResult",
        "NonFiniteLossError",
        "TrainResult",
        "TrainingError",
        "TrainingStoppedError",
        "predict",
        "train",
    ),
}
_LAZY = {name: module for module, names in _NEED_TORCH.items() for name in names}

if TYPE_CHECKING:
    from nas_objectives.data import TensorData, load_dataset, tensor_data_from_arrays
    from nas_objectives.export import (
        ExportEvaluation,
        check_export_dir,
        check_export_formats,
        evaluate_export,
        load_model,
        read_architecture,
        retrain,
        save_export,
    )
    from nas_objectives.metrics import (
        accuracy,
        count_flops,
        count_params,
        macro_f1,
        measure_latency_ms,
    )
    from nas_objectives.models import CNN, MLP, build_model
    from nas_objectives.objective import Objective, TrialFailedError, failure_reason
    from nas_objectives.train import (
        EpochResult,
        NonFiniteLossError,
        TrainingError,
        TrainingStoppedError,
        TrainResult,
        predict,
        train,
    )
else:

    def __getattr__(name: str) -> Any:
        """Import a name that needs torch on first use (PEP 562), then keep it here."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


# ``train`` is a function and the name of its own module: once anything imports the module
# ``nas_objectives.train``, Python binds the module to the package's ``train`` and the
# PEP 562 hook above is never asked again. The package's class answers that one name with
# the function, as the eager re-export did.
_SHADOWED = frozenset(name for name in _LAZY if name == _LAZY[name].rsplit(".", 1)[-1])


class _Package(types.ModuleType):
    def __getattribute__(self, name: str) -> Any:
        if name in _SHADOWED:
            return getattr(importlib.import_module(_LAZY[name]), name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ACTIVATIONS",
    "AUGMENTATIONS",
    "CNN",
    "CONSTRAINABLE",
    "DATASETS",
    "EMNIST_SPLITS",
    "FAMILIES",
    "FILE_DATASETS",
    "MLP",
    "NORMS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "OPTIMIZER_HYPERPARAMETERS",
    "POOLINGS",
    "SCHEDULES",
    "Choice",
    "DatasetError",
    "EpochResult",
    "ExportError",
    "ExportEvaluation",
    "FloatRange",
    "IntRange",
    "Layout",
    "ModelSpace",
    "NonFiniteLossError",
    "Objective",
    "ObjectiveConfig",
    "OptimizerSettings",
    "OptimizerSpace",
    "SearchSpace",
    "TensorData",
    "TrainResult",
    "TrainingError",
    "TrainingSpace",
    "TrainingStoppedError",
    "TrialFailedError",
    "accuracy",
    "build_model",
    "check_export_dir",
    "check_export_formats",
    "count_flops",
    "count_params",
    "evaluate_export",
    "failure_reason",
    "first_line",
    "load_dataset",
    "load_model",
    "macro_f1",
    "measure_latency_ms",
    "predict",
    "read_architecture",
    "read_manifest",
    "retrain",
    "save_export",
    "suggest",
    "tensor_data_from_arrays",
    "train",
]
