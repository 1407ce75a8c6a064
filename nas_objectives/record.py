"""What a trial stores: every user-attribute key and every objective, in one place.

Workers write these keys and every reader (pruners, reports, export, the CLI) reads them
by these names, so a stored study stays readable by ``optuna-dashboard`` and the plain
``optuna`` CLI. The values are plain JSON.

Per trial, before training (the cost objectives are known then):

====================  ==================================================================
``arch``              one-line summary, e.g. ``64-32-10 relu | adamw lr=1e-3 bs=128``
``layout``            dict that rebuilds the model (``Layout.to_dict``)
``optimizer_settings``  dict of the optimizer and loop settings (``OptimizerSettings``)
``params``, ``flops``  exact counts; ``latency_ms`` when an objective or bound needs it
``device``, ``seed``  where it trained, and the seed it trained with (``export`` reuses it)
``worker``            ``host:pid`` of the worker that ran it
====================  ==================================================================

During and after training: ``val_accuracy`` (list, one value per epoch, epoch 1 first),
``epochs_run``, ``train_seconds``; a pruned trial adds ``pruned_at_epoch`` and
``pruned_by``, a failed one ``fail_reason``. The study itself stores its study file as
the user attribute ``nas_study_spec``.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["maximize", "minimize"]

# --------------------------------------------------------------------------- objectives

#: Every objective a study may name, with its direction.
OBJECTIVES: dict[str, Direction] = {
    "accuracy": "maximize",
    "f1": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
}
#: Objectives that follow the validation-accuracy curve (fractions in [0, 1]).
CURVE_OBJECTIVES = ("accuracy", "f1")
#: Objectives known before training (counts), stored under their own names; also the
#: quantities a constraint may bound from above (``max_<name>`` in a study file).
COST_OBJECTIVES = ("params", "flops", "latency_ms")

# --------------------------------------------------------------------------- trial keys

ARCH = "arch"
LAYOUT = "layout"
OPTIMIZER_SETTINGS = "optimizer_settings"
PARAMS = "params"
FLOPS = "flops"
LATENCY_MS = "latency_ms"
DEVICE = "device"
SEED = "seed"
WORKER = "worker"
VAL_ACCURACY = "val_accuracy"
EPOCHS_RUN = "epochs_run"
TRAIN_SECONDS = "train_seconds"
#: On CUDA, or where CUDA graphs were asked for (``--cuda-graphs on``): ``"cuda_graph"``,
#: ``"eager"``, or ``"eager (why)"`` when a CUDA graph was asked for and not used.
TRAIN_STEP = "train_step"
PRUNED_AT_EPOCH = "pruned_at_epoch"
PRUNED_BY = "pruned_by"
FAIL_REASON = "fail_reason"
#: Where an enqueued trial came from (``"oneshot"``); absent on a sampled trial. A one-shot
#: proposal also stores the search's method (``darts-1st+beta``), its lambda (the weight of
#: the cost in the architecture loss), its seed and its wall time in seconds.
PROPOSED_BY = "proposed_by"
ONESHOT_METHOD = "oneshot_method"
ONESHOT_LAMBDA = "oneshot_lambda"
ONESHOT_SEED = "oneshot_seed"
ONESHOT_SEARCH_SECONDS = "oneshot_search_seconds"

# --------------------------------------------------------------------------- study keys

#: The study's own file, as parsed TOML, so results can be read and replayed later.
STUDY_SPEC = "nas_study_spec"
#: What the first worker read: class names, split sizes and the training split's
#: per-channel (per-feature) statistics (:meth:`~nas_objectives.data.TensorData.describe`).
DATASET = "nas_study_dataset"
