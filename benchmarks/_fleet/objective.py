"""The simulated trial: the search space, what a trial stores, and the sleeping objective.

A trial here writes to its study what a real nas-study trial writes (see
``nas_objectives.record``): ten suggested parameters, the cost attributes before training
(``arch``, ``layout``, ``optimizer_settings``, ``params``, ``flops``, ``device``, ``seed``),
one reported validation accuracy per epoch, and ``val_accuracy``, ``epochs_run`` and
``train_seconds`` at the end. Instead of training it sleeps, in ``epochs`` equal slices.
The pre-populated trials of ``populate.py`` carry the same fields.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nas_objectives import record
from nas_objectives.objective import publish, set_user_attrs

#: The search space, in suggestion order: the kinds a catalog space mixes.
SPACE: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "momentum": FloatDistribution(0.8, 0.99),
    "n_layers": IntDistribution(1, 4),
    "units": IntDistribution(16, 512, log=True),
    "kernel_size": CategoricalDistribution([3, 5]),
    "batch_size": CategoricalDistribution([32, 64, 128, 256]),
    "activation": CategoricalDistribution(["relu", "gelu", "tanh"]),
    "optimizer": CategoricalDistribution(["adamw", "sgd"]),
}
#: Epochs per trial: reported intermediate values, and slices of the sleep.
EPOCHS = 3


def suggest(trial: optuna.trial.Trial) -> dict[str, Any]:
    """Suggest every parameter of :data:`SPACE` through ``trial``'s public API."""
    params: dict[str, Any] = {}
    for name, dist in SPACE.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            assert isinstance(dist, CategoricalDistribution)
            params[name] = trial.suggest_categorical(name, list(dist.choices))
    return params


def sample(rng: random.Random) -> dict[str, Any]:
    """Parameters drawn from :data:`SPACE` without a trial (for pre-populated trials)."""
    params: dict[str, Any] = {}
    for name, dist in SPACE.items():
        if isinstance(dist, FloatDistribution):
            if dist.log:
                params[name] = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
            else:
                params[name] = rng.uniform(dist.low, dist.high)
        elif isinstance(dist, IntDistribution):
            params[name] = rng.randint(dist.low, dist.high)
        else:
            assert isinstance(dist, CategoricalDistribution)
            params[name] = rng.choice(dist.choices)
    return params


def cost_attrs(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The user attributes a real trial stores before it trains, sized like the real ones."""
    widths = [int(params["units"])] * int(params["n_layers"])
    n_params = sum(a * b + b for a, b in zip([784, *widths], [*widths, 10], strict=False))
    return {
        record.ARCH: "-".join(str(w) for w in [*widths, 10])
        + f" {params['activation']} | {params['optimizer']} lr={params['lr']:.1e}"
        + f" bs={params['batch_size']}",
        record.LAYOUT: {
            "family": "mlp",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "layers": [
                {"kind": "linear", "width": w, "activation": params["activation"]} for w in widths
            ],
            "dropout": params["dropout"],
        },
        record.OPTIMIZER_SETTINGS: {
            "name": params["optimizer"],
            "lr": params["lr"],
            "weight_decay": params["weight_decay"],
            "momentum": params["momentum"],
            "batch_size": params["batch_size"],
        },
        record.PARAMS: n_params,
        record.FLOPS: 2 * n_params,
        record.DEVICE: "cpu",
        record.SEED: seed,
    }


def curve(params: dict[str, Any], epochs: int) -> list[float]:
    """A plausible validation-accuracy curve, rising with the epochs."""
    top = 0.97 - 0.2 * params["dropout"] ** 2 - 0.02 * abs(math.log10(params["lr"]) + 3)
    return [round(top * (1 - 0.5 ** (e + 1)), 6) for e in range(epochs)]


@dataclass(frozen=True)
class TrialRecord:
    """When one objective call ran, by the benchmark's monotonic clock."""

    worker: int
    number: int
    start: float
    end: float
    sleep: float


class SleepingObjective:
    """Writes what a real trial writes and sleeps ``uniform(low, high)`` seconds instead of
    training; each call is appended to ``records``."""

    def __init__(
        self,
        worker: int,
        low: float,
        high: float,
        seed: int,
        records: list[TrialRecord],
        lock: threading.Lock,
    ) -> None:
        self.worker = worker
        self.low = low
        self.high = high
        self.rng = random.Random(seed)
        self.records = records
        self.lock = lock

    def __call__(self, trial: optuna.trial.Trial) -> float:
        start = time.monotonic()
        sleep = self.rng.uniform(self.low, self.high)
        params = suggest(trial)
        # As the real objective writes them: together, where the storage can.
        set_user_attrs(trial, cost_attrs(params, trial.number))
        publish(trial)  # sampled and built: stored now, as the real objective does
        accuracies = curve(params, EPOCHS)
        for epoch, accuracy in enumerate(accuracies, start=1):
            time.sleep(sleep / EPOCHS)  # the simulated training, not a synchronisation
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        set_user_attrs(
            trial,
            {
                record.VAL_ACCURACY: accuracies,
                record.EPOCHS_RUN: EPOCHS,
                record.TRAIN_SECONDS: round(sleep, 4),
            },
        )
        end = time.monotonic()
        with self.lock:
            self.records.append(TrialRecord(self.worker, trial.number, start, end, sleep))
        return accuracies[-1]
