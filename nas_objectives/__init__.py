"""What one trial does: sample, build, train, measure. Never opens storage or parses a CLI."""

from __future__ import annotations

from nas_objectives.data import DATASETS, DatasetError, TensorData, load_dataset
from nas_objectives.export import ExportError
from nas_objectives.metrics import (
    OBJECTIVES,
    accuracy,
    count_flops,
    count_params,
    macro_f1,
    measure_latency_ms,
)
from nas_objectives.models import CNN, MLP, build_model
from nas_objectives.objective import (
    CONSTRAINABLE,
    Objective,
    ObjectiveConfig,
    TrialFailedError,
    failure_reason,
)
from nas_objectives.space import (
    ACTIVATIONS,
    FAMILIES,
    NORMS,
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
from nas_objectives.train import (
    EpochResult,
    NonFiniteLossError,
    TrainingError,
    TrainingStoppedError,
    TrainResult,
    predict,
    train,
)

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "CONSTRAINABLE",
    "DATASETS",
    "FAMILIES",
    "MLP",
    "NORMS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "POOLINGS",
    "SCHEDULES",
    "Choice",
    "DatasetError",
    "EpochResult",
    "ExportError",
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
    "count_flops",
    "count_params",
    "failure_reason",
    "load_dataset",
    "macro_f1",
    "measure_latency_ms",
    "predict",
    "suggest",
    "train",
]
