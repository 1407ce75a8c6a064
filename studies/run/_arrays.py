"""Run a study on arrays already in memory (numpy or torch), without writing a file."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import optuna

from nas_objectives import tensor_data_from_arrays
from storage import open_storage
from studies.run._open import resolve_device
from studies.run._options import RunOptions
from studies.run._worker import RunReport, run_study
from studies.spec import DEFAULT_STUDY, StudySpec, resolve_spec, spec_from_data


def run_arrays(
    x: Any,
    y: Any,
    study: str | os.PathLike[str] | StudySpec | Mapping[str, Any] = DEFAULT_STUDY,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    options: RunOptions | None = None,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    progress: bool | None = False,
    **overrides: Any,
) -> RunReport:
    """Search architectures for the arrays ``x``, ``y``, like :func:`run_study` on a file.

    ``x`` is ``(N, C, H, W)`` images or ``(N, F)`` tabular features, ``y`` the ``(N,)``
    class labels; numpy arrays or torch tensors (see
    :func:`nas_objectives.tensor_data_from_arrays`, which checks, splits and normalises
    them exactly as a ``tensors`` file). Splits given as ``x_val``/``y_val`` and
    ``x_test``/``y_test`` are used as given; the others are carved from ``x``/``y``, seeded
    with the study's ``seed``, with its ``dataset.val_fraction``.

    ``study`` supplies the search space, objectives, sampler, pruner and budget: a catalog
    name, a study file path, a parsed :class:`StudySpec`, or a mapping of study-file fields
    (validated with :func:`spec_from_data`; ``name`` and ``dataset`` may be left out). The
    study's dataset entry is **ignored**: the arrays are the data. A CNN family on tabular
    data is refused.

    ``storage`` is ``None`` for an in-memory Optuna storage (gone when the process ends),
    a storage URL (opened with :func:`storage.open_storage`, heartbeats as ``options``
    says), or an Optuna storage. ``options`` and keyword ``overrides`` are those of
    :func:`run_study`.

    Raises:
        nas_objectives.DatasetError: bad arrays, before any study is created.
        StudySpecError, StudyRunError: a bad study or options.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(60, 4)), np.arange(60) % 3
        >>> report = run_arrays(x, y, options=RunOptions(n_trials=1, epochs=1))
        >>> report.ran
        1
    """
    spec = _spec(study)
    opts = dataclasses.replace(options or RunOptions(), **overrides)
    # Check the arrays before touching any storage, so bad data creates no study.
    data = tensor_data_from_arrays(
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        val_fraction=spec.dataset.val_fraction,
        seed=spec.seed,
        device=resolve_device(opts.device),
        family=spec.objective.space.model.family,
    )
    if storage is None:
        backend: optuna.storages.BaseStorage = optuna.storages.InMemoryStorage()
    elif isinstance(storage, str):
        backend = open_storage(storage, heartbeat=opts.heartbeat(spec))
    else:
        backend = storage
    return run_study(spec, backend, opts, progress=progress, data=data)


def _spec(study: str | os.PathLike[str] | StudySpec | Mapping[str, Any]) -> StudySpec:
    if isinstance(study, StudySpec):
        return study
    if isinstance(study, Mapping):
        fields = {"name": "arrays", "dataset": "digits", **study}  # dataset: ignored
        return spec_from_data(fields, "<run_arrays study>")
    return resolve_spec(os.fspath(study))
