"""The ``cell`` family: NAS-Bench-201 strings, parameter names, exact counts, degenerate
cells and the study-file fields."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from nas_objectives import Objective, ObjectiveConfig, build_model, count_flops, count_params
from nas_objectives import load_dataset as load
from nas_objectives._cell_graph import CELL_OPS, cell_edges, from_nb201, to_nb201
from nas_objectives._cell_ops import _OPS, make_op
from nas_objectives.cell import CellNetwork, edge_costs
from nas_objectives.space import NB201_OPS, IntRange, Layout, ModelSpace, SearchSpace, suggest
from studies import StudySpecError, parse_spec

CONV3 = ("nor_conv_3x3",) * 6
NB201_BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def _layout(cell: tuple[str, ...] = CONV3, width: int = 8, n: int = 1) -> Layout:
    return Layout("cell", (1, 8, 8), 10, widths=(width,), nodes=4, cell=cell, cells_per_stage=n)


def test_every_op_name_builds_and_keeps_the_shape() -> None:
    assert tuple(_OPS) == CELL_OPS
    assert CELL_OPS[:5] == NB201_OPS
    x = torch.randn(2, 6, 5, 5)
    for name in CELL_OPS:
        assert make_op(name, 6)(x).shape == x.shape, name


def test_edges_are_named_to_from_in_nb201_order() -> None:
    assert cell_edges(4) == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    study = optuna.create_study()
    trial = study.ask()
    suggest(trial, SearchSpace(model=ModelSpace(family="cell", width=_fixed(8))), (1, 8, 8), 10)
    edges = [n for n in trial.params if n.startswith("edge_")]
    assert edges == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    for name in edges:
        assert trial.distributions[name].choices == NB201_OPS  # type: ignore[attr-defined]


def _fixed(value: int) -> IntRange:
    return IntRange(value, value)


def test_nb201_string_round_trips_through_a_layout() -> None:
    cell = from_nb201(NB201_BEST)
    params = {f"edge_{i}_{j}": op for (i, j), op in zip(cell_edges(4), cell, strict=True)}
    trial = optuna.trial.FixedTrial({**params, "adamw_lr": 1e-3})
    space = SearchSpace(model=ModelSpace(family="cell", width=_fixed(16)))
    layout, _ = suggest(trial, space, (3, 32, 32), 10)
    assert to_nb201(layout.cell) == NB201_BEST
    assert layout.summary() == f"{NB201_BEST} C16 N1"
    assert Layout.from_dict(layout.to_dict()) == layout  # the stored form rebuilds it


@pytest.mark.parametrize("bad", ["", "|a~0|+|b~1|c~1|", "|a~0|+|b~0|", "nor_conv_3x3~0", "|a|"])
def test_a_malformed_nb201_string_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        from_nb201(bad)


def test_parameter_count_is_exact_by_hand() -> None:
    conv = lambda ci, co, k: ci * co * k * k + 2 * co  # noqa: E731  ReLU-Conv-BN: BN has 2/channel
    stem = 1 * 8 * 9 + 2 * 8
    cells = 6 * (conv(8, 8, 3) + conv(16, 16, 3) + conv(32, 32, 3))
    reductions = (conv(8, 16, 3) + conv(16, 16, 3) + 8 * 16) + (
        conv(16, 32, 3) + conv(32, 32, 3) + 16 * 32
    )
    head = 2 * 32 + 32 * 10 + 10
    assert count_params(build_model(_layout())) == stem + cells + reductions + head == 91842


def test_nb201_largest_cell_has_nb201s_published_size() -> None:
    # NAS-Bench-201's largest CIFAR-10 network (every edge nor_conv_3x3): 1.531546 M params.
    layout = Layout("cell", (3, 32, 32), 10, widths=(16,), nodes=4, cell=CONV3, cells_per_stage=5)
    assert count_params(build_model(layout)) == 1_531_546


@pytest.mark.parametrize("kind", ["params", "flops"])
def test_costs_split_exactly_into_fixed_and_per_edge_parts(kind: str) -> None:
    costs = edge_costs(_layout(n=2), CELL_OPS, kind)
    for cell in [CONV3, ("none",) * 6, ("skip_connect", "sep_conv_3x3", "none", *NB201_OPS[2:5])]:
        model = build_model(_layout(cell, n=2))
        counted = count_params(model) if kind == "params" else count_flops(model, (1, 8, 8))
        assert costs.of(cell) == counted, cell


def test_all_none_cell_trains_and_scores() -> None:
    none = {f"edge_{i}_{j}": "none" for i, j in cell_edges(4)}
    space = SearchSpace(model=ModelSpace(family="cell", width=_fixed(8)))
    objective = Objective(ObjectiveConfig(space=space, epochs=2), load("digits"))
    values = objective(optuna.trial.FixedTrial({**none, "adamw_lr": 1e-3}))
    assert isinstance(values, tuple)
    accuracy, n_params = values
    assert 0.0 <= accuracy <= 1.0 and math.isfinite(accuracy)
    # Only the stem, the two reduction blocks and the head hold weights.
    assert n_params == count_params(CellNetwork(_layout(("none",) * 6)))
    assert n_params < count_params(build_model(_layout()))


def test_study_file_reads_a_cell_space() -> None:
    spec = parse_spec(
        'name = "c"\ndataset = "digits"\n[model]\nfamily = "cell"\nnodes = 3\n'
        'ops = ["none", "nor_conv_3x3", "sep_conv_3x3"]\nwidth = [8, 16]\ncells_per_stage = 2\n'
    )
    m = spec.objective.space.model
    assert (m.family, m.nodes, m.ops) == ("cell", 3, ("none", "nor_conv_3x3", "sep_conv_3x3"))
    assert (m.width.low, m.width.high, m.cells_per_stage.low) == (8, 16, 2)  # type: ignore[union-attr]
    default = parse_spec('name = "c"\ndataset = "digits"\n[model]\nfamily = "cell"\n')
    assert default.objective.space.model.ops == NB201_OPS
    assert default.objective.space.model.nodes == 4


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ('ops = ["none", "conv_9x9"]', "model.ops", "'conv_9x9'"),
        ('ops = ["none", "none"]', "model.ops", "['none', 'none']"),
        ("ops = []", "model.ops", "[]"),
        ("nodes = 1", "model.nodes", "1"),
        ("nodes = 2.5", "model.nodes", "2.5"),
        ("cells_per_stage = 0", "model.cells_per_stage", "0"),
        ("width = [16, 8]", "model.width", "[16, 8]"),
        ('activation = ["relu"]', "model.activation", "['relu']"),
    ],
)
def test_bad_cell_fields_are_one_line_naming_file_field_value(
    model: str, field: str, value: str
) -> None:
    text = f'name = "c"\ndataset = "digits"\n[model]\nfamily = "cell"\n{model}\n'
    with pytest.raises(StudySpecError) as err:
        parse_spec(text, "cells.toml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cells.toml: {field}:")
    assert value in message
