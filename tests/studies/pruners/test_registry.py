"""The multi-objective pruners by name: their options checked and built as a study file
gives them."""

from __future__ import annotations

from typing import Any

import pytest

from studies.pruners import (
    MO_PRUNERS,
    DominancePruner,
    ParetoRankPruner,
    build_mo_pruner,
    check_mo_pruner_options,
)


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("pareto_rank", {}, None),
        ("pareto_rank", {"min_epochs": 2, "reduction_factor": 2, "min_trials": 0}, None),
        ("dominance", {"k": 1, "min_epochs": 1, "min_trials": 10}, None),
        ("hyperband", {}, ("name", "unknown multi-objective pruner", "hyperband")),
        ("pareto_rank", {"k": 3}, ("k", "unknown option", 3)),
        ("dominance", {"reduction_factor": 3}, ("reduction_factor", "unknown option", 3)),
        ("pareto_rank", {"reduction_factor": 1}, ("reduction_factor", "greater than 1", 1)),
        ("pareto_rank", {"reduction_factor": 3.0}, ("reduction_factor", "integer", 3.0)),
        ("pareto_rank", {"min_epochs": 0}, ("min_epochs", ">= 1", 0)),
        ("dominance", {"k": 0}, ("k", ">= 1", 0)),
        ("dominance", {"k": True}, ("k", "integer", True)),
        ("dominance", {"min_trials": -1}, ("min_trials", ">= 0", -1)),
        ("dominance", {"min_trials": "4"}, ("min_trials", "integer", "4")),
    ],
)
def test_check_mo_pruner_options(
    name: str, options: dict[str, Any], problem: tuple[str, str, Any] | None
) -> None:
    found = check_mo_pruner_options(name, options)
    if problem is None:
        assert found is None
        pruner = build_mo_pruner(name, options)
        assert isinstance(pruner, ParetoRankPruner if name == "pareto_rank" else DominancePruner)
        for key, value in options.items():
            assert getattr(pruner, key) == value
    else:
        assert found is not None
        assert (found[0], found[2]) == (problem[0], problem[2])
        assert problem[1] in found[1]
        with pytest.raises(ValueError, match=problem[0]):
            build_mo_pruner(name, options)


def test_every_name_builds_with_defaults() -> None:
    built = {name: type(build_mo_pruner(name, {})) for name in MO_PRUNERS}
    assert built == {"pareto_rank": ParetoRankPruner, "dominance": DominancePruner}
