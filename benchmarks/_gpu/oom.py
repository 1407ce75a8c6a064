"""A real CUDA out-of-memory in a trial: the trial fails, its memory comes back, and the
next trial of the same process runs.

Trial 0 is a one-block CNN without pooling whose first activation alone is about twice
the GPU's memory (``batch x channels x 28 x 28`` bf16 values), so the allocator refuses it
at once; its weights are a few thousand numbers, so nothing big is ever made on the host.
Trial 1 is small. Both are enqueued into a study on a SQLite file and run by
:func:`studies.run.run_study`, one trial per call, so the device memory can be read
between them.
"""

from __future__ import annotations

import gc
import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._gpu.settings import Settings
from nas_objectives import load_dataset, record
from nas_objectives._feed import batch_bounds
from storage import open_storage
from studies.run import RunOptions, open_study, run_study
from studies.spec import spec_from_data

#: Memory back "near" what it was before trial 0 (whose activation alone was about twice
#: the GPU): lazily made buffers (cuBLAS workspaces are allocator memory) may stay.
TOLERANCE_BYTES = 128 * 2**20
VAL_FRACTION = 0.1
SMALL = {"channels_l0": 16, "batch_size": 256}
#: Where there is no CUDA device, the plan is shown for this one: about an H200's memory,
#: and Fashion-MNIST's training split at ``VAL_FRACTION``.
SHOWN_FOR = {"total_memory_bytes": 150 * 10**9, "n_train_split": 54_000}


def not_applicable(s: Settings) -> str | None:
    """Why the check cannot run here, or None."""
    if not s.cuda:
        return "no CUDA device: a CUDA out-of-memory cannot happen on the CPU"
    return None


def largest_batch(n_train_split: int, batch_size: int) -> int:
    """The largest batch the trainer makes of ``batch_size`` (its batches are evened out)."""
    bounds = batch_bounds(n_train_split, batch_size)
    return max(b - a for a, b in itertools.pairwise(bounds))


def oversized(total_bytes: int, n_train_split: int) -> dict[str, int]:
    """Trial 0's batch size and channels: one bf16 activation of twice ``total_bytes``.

    Example:
        >>> oversized(150 * 10**9, 54_000)  # batches of 27,000
        {'batch_size': 32768, 'channels_l0': 7104}
    """
    batch_size = min(32_768, n_train_split)
    per_channel = largest_batch(n_train_split, batch_size) * 28 * 28 * 2  # bf16 (autocast)
    channels = math.ceil(2 * total_bytes / per_channel / 64) * 64
    return {"batch_size": batch_size, "channels_l0": min(channels, 65_536)}


def _spec(big: dict[str, int]) -> Any:
    return spec_from_data(
        {
            "name": "gpu-checks-oom",
            "objectives": ["accuracy", "params"],
            "epochs": 1,
            "n_trials": 2,
            "dataset": {"name": "fashion_mnist", "val_fraction": VAL_FRACTION},
            "model": {
                "family": "cnn",
                "depth": [1, 1],
                "width": {"low": 8, "high": big["channels_l0"], "log": True},
                "kernel_size": [3],
                "pooling": ["none"],
            },
            "training": {"batch_size": sorted({SMALL["batch_size"], big["batch_size"]})},
            "optimizers": {"adamw": {"lr": [1e-3, 1e-3]}},
            "sampler": {"name": "random"},
        }
    )


def plan(total_memory_bytes: int, n_train_split: int) -> dict[str, Any]:
    """Both trials' parameters on a device of ``total_memory_bytes``, trial 0's activation,
    and the study's space, which both trials must lie in to be enqueued."""
    big = oversized(total_memory_bytes, n_train_split)
    space = _spec(big).objective.space
    return {
        "total_memory_bytes": total_memory_bytes,
        "n_train_split": n_train_split,
        "trial0": big,
        "trial1": SMALL,
        "trial0_activation_bytes_estimate": (
            largest_batch(n_train_split, big["batch_size"]) * big["channels_l0"] * 28 * 28 * 2
        ),
        "space": {
            "channels": [space.model.width.low, space.model.width.high],
            "batch_size": list(space.training.batch_size.options),
        },
    }


def cuda_oom(s: Settings) -> dict[str, Any]:
    """Run trial 0 (too big) and trial 1 (small) in this process; report what happened.

    Without CUDA only the plan is reported, for a device of ``SHOWN_FOR``'s size.
    """
    reason = not_applicable(s)
    if reason is not None:
        return {"applicable": False, "reason": reason, "passed": None, "plan": plan(**SHOWN_FOR)}
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    data = load_dataset(
        "fashion_mnist",
        data_dir=s.data_dir,
        device=device,
        download=False,
        val_fraction=VAL_FRACTION,
        seed=s.seed,
    )
    planned = plan(total, len(data.y_train))
    big = planned["trial0"]
    spec = _spec(big)
    with tempfile.TemporaryDirectory(prefix="gpu-checks-oom-") as tmp:
        storage = open_storage(f"sqlite:///{Path(tmp) / 'oom.db'}", heartbeat=None)
        study = open_study(spec, storage)
        study.enqueue_trial(big)
        study.enqueue_trial(SMALL)
        options = RunOptions(max_trials=1, device="cuda", seed=s.seed)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        run_study(spec, storage, options, progress=False, data=data)
        torch.cuda.synchronize()
        after_trial0 = torch.cuda.memory_allocated()
        peak_after_trial0 = torch.cuda.max_memory_allocated()
        run_study(spec, storage, options, progress=False, data=data)
        trials = study.get_trials(deepcopy=False)
    gc.collect()
    after_gc = torch.cuda.memory_allocated()
    first, second = [*trials, None, None][:2]
    fail_reason = str(first.user_attrs.get(record.FAIL_REASON, "")) if first else ""
    facts = {
        "trial0_state": first.state.name if first else None,
        "trial0_params": first.params if first else None,
        "trial0_fail_reason": fail_reason,
        "trial0_reason_mentions_oom": "out of memory" in fail_reason.lower(),
        "trial1_state": second.state.name if second else None,
        "trial1_params": second.params if second else None,
        "memory_allocated_before": before,
        "memory_allocated_after_trial0": after_trial0,
        "memory_allocated_after_trial0_delta": after_trial0 - before,
        "memory_allocated_after_both_and_gc": after_gc,
        "max_memory_allocated_through_trial0": peak_after_trial0,
        "tolerance_bytes": TOLERANCE_BYTES,
        "total_memory_bytes": total,
        "trial0_activation_bytes_estimate": planned["trial0_activation_bytes_estimate"],
        "trials": len(trials),
        "plan": planned,
    }
    passed = (
        facts["trial0_state"] == optuna.trial.TrialState.FAIL.name
        and facts["trial0_reason_mentions_oom"]
        and abs(after_trial0 - before) <= TOLERANCE_BYTES
        and facts["trial1_state"] == optuna.trial.TrialState.COMPLETE.name
    )
    return {"applicable": True, **facts, "passed": passed}
