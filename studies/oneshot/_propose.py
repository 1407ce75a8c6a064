"""``oneshot``: DARTS searches over a study's cell space, each derived cell enqueued into the
study as an ordinary trial that any worker then trains in full.

A sweep runs ``K`` searches, lambda = ``0`` (accuracy only) up to ``lambda_max`` (cost
strongly penalised), evenly spaced, so the ``K`` cells spread along the front. Several
processes can run the same sweep against one storage: :mod:`studies.oneshot._claims`
hands each lambda to exactly one of them.

Each search fixes the study's macro parameters first (``width``, ``cells_per_stage``;
drawn from the study file's ranges with the search's seed when they are searched, so the
supernet and the derived trial are the same network), and enqueues them with the cell's
edges. The optimizer and training parameters are left to the study's sampler (or its
file, where fixed), as for any trial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from nas_objectives import TensorData, TrainingError, first_line, record
from nas_objectives._cell_graph import cell_edges, edge_param, to_nb201
from nas_objectives._supernet import SearchResult, SearchSettings, search
from nas_objectives.cell import edge_costs
from nas_objectives.space import Layout, SearchSpace, suggest
from storage.optuna_compat import study_storage
from studies.errors import StudySpecError
from studies.oneshot._claims import Claims
from studies.spec import StudySpec

_logger = logging.getLogger("nas_study")

PROPOSED_BY_ONESHOT = "oneshot"


@dataclass(frozen=True)
class Proposal:
    """One lambda of a sweep, as this process ran it."""

    index: int
    lambda_: float
    state: str  # "enqueued" or "failed"
    cell: tuple[str, ...] = ()
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    cost: float = 0.0
    seconds: float = 0.0
    reason: str = ""


def check_oneshot_space(spec: StudySpec) -> None:
    """Refuse a study a one-shot search cannot serve.

    Raises:
        StudySpecError: the family is not ``cell``, or its ops are only ``none``.
    """
    m = spec.objective.space.model
    if m.family != "cell":
        raise StudySpecError(
            f"{spec.path}: model.family: oneshot searches cell spaces only "
            f'(family = "cell") (got {m.family!r})'
        )
    if all(op == "none" for op in m.ops):
        raise StudySpecError(
            f"{spec.path}: model.ops: a one-shot search needs an op other than 'none' "
            f"(got {list(m.ops)!r})"
        )


def lambda_grid(k: int, lambda_max: float) -> list[float]:
    """``k`` lambdas from 0 to ``lambda_max``, evenly spaced (``[0]`` for one)."""
    if k == 1:
        return [0.0]
    return [float(x) for x in np.linspace(0.0, lambda_max, k)]


def cost_kind(spec: StudySpec) -> str:
    """The cost the search penalises: FLOPs when the study minimises them, else params."""
    return "flops" if "flops" in spec.objectives and "params" not in spec.objectives else "params"


class _Recorder:
    """A :class:`~nas_objectives.space.SuggestTrial` that draws uniformly with its own seed
    and records what it drew, to fix a searched study's macro parameters."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, Any] = {}

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        value = int(self.rng.integers(low, high + 1))
        self.params[name] = value
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = float(self.rng.uniform(low, high))
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        value = choices[int(self.rng.integers(len(choices)))]
        self.params[name] = value
        return value


def macro_layout(spec: StudySpec, data: TensorData, seed: int) -> tuple[Layout, dict[str, Any]]:
    """The network a search of seed ``seed`` uses, and the macro params it fixes."""
    m = spec.objective.space.model
    recorder = _Recorder(seed)
    # Only the model space: its edges are what the search decides.
    layout, _ = suggest(recorder, SearchSpace(model=m), data.input_shape, data.num_classes)
    macro = {k: v for k, v in recorder.params.items() if k in ("width", "cells_per_stage")}
    return layout, macro


def sweep_key(spec: StudySpec, k: int, lambda_max: float, settings: SearchSettings) -> str:
    """What makes two sweeps the same one: the space and every search setting."""
    m = spec.objective.space.model
    raw = json.dumps(
        {
            "k": k,
            "lambda_max": lambda_max,
            "ops": list(m.ops),
            "nodes": m.nodes,
            "settings": dataclasses.asdict(dataclasses.replace(settings, cost_weight=0.0)),
        },
        sort_keys=True,
        default=str,
    )
    return f"{settings.method}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def run_oneshot(
    spec: StudySpec,
    study: optuna.Study,
    data: TensorData,
    *,
    candidates: int,
    settings: SearchSettings,
    lambda_max: float = 1.0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[Proposal]:
    """Run the sweep's searches this process can claim; enqueue each derived cell.

    ``settings.seed`` is the sweep's base seed: lambda ``i`` searches with seed + ``i``.
    A search that fails (a NaN) is recorded with its reason and the sweep goes on.
    """
    check_oneshot_space(spec)
    m = spec.objective.space.model
    lambdas = lambda_grid(candidates, lambda_max)
    key = sweep_key(spec, candidates, lambda_max, settings)
    claims = Claims(study_storage(study), study.study_name, key, lambdas)
    claims.post()
    proposals = []
    kind = cost_kind(spec)
    for claim in claims:
        seed = settings.seed + claim.index
        run = dataclasses.replace(settings, cost_weight=claim.value, cost_kind=kind, seed=seed)
        layout, macro = macro_layout(spec, data, seed)
        _logger.info(
            "oneshot: lambda %.3g (%d/%d), seed %d",
            claim.value,
            claim.index + 1,
            len(lambdas),
            seed,
        )
        try:
            result = search(layout, m.ops, data, run, on_epoch=on_epoch)
        except TrainingError as exc:
            reason = first_line(exc)
            claims.failed(claim, reason)
            _logger.warning("oneshot: lambda %.3g failed: %s", claim.value, reason)
            proposals.append(Proposal(claim.index, claim.value, "failed", reason=reason))
            continue
        params = _trial_params(m.ops, m.nodes, result, macro)
        attrs = {
            record.PROPOSED_BY: PROPOSED_BY_ONESHOT,
            record.ONESHOT_METHOD: run.method,
            record.ONESHOT_LAMBDA: claim.value,
            record.ONESHOT_SEED: seed,
            record.ONESHOT_SEARCH_SECONDS: round(result.seconds, 3),
        }
        study.enqueue_trial(params, user_attrs=attrs)
        cell_layout = dataclasses.replace(layout, cell=result.cell)
        cost = edge_costs(cell_layout, m.ops, kind).of(result.cell)
        claims.done(claim, {"cell": to_nb201(result.cell), "params": params, kind: cost})
        proposals.append(
            Proposal(
                claim.index, claim.value, "enqueued", result.cell, params, cost, result.seconds
            )
        )
    return proposals


def _trial_params(
    ops: tuple[str, ...], nodes: int, result: SearchResult, macro: dict[str, Any]
) -> dict[str, Any]:
    params = dict(macro)
    if len(ops) > 1:  # a single op is fixed, not a parameter
        for (i, j), op in zip(cell_edges(nodes), result.cell, strict=True):
            params[edge_param(i, j)] = op
    return params
