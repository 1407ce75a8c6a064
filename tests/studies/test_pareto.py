"""studies.pareto, the one copy of the Pareto maths: dominance, non-dominated sorting,
crowding, the MO-ASHA rule, sign conversion, feasibility and the hypervolume, checked
against the definitions and hand-worked values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume as optuna_hypervolume
from optuna.study import StudyDirection

from studies.pareto import (
    as_minimized,
    count_dominating,
    crowding_distances,
    dominates,
    feasible,
    hypervolume,
    hypervolume_of_minimized,
    keep_by_pareto_rank,
    minimized,
    pareto_ranks,
    share_not_dominating,
    signs,
    violation,
)

MO: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
MAX_MIN = MO


def test_signs_take_strings_and_study_directions() -> None:
    assert signs(MO).tolist() == [-1.0, 1.0]
    assert signs([StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]).tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="'up'"):
        signs(["up"])


def test_minimized_keeps_non_finite_values_comparable() -> None:
    out = minimized([math.nan, math.inf], MO)
    assert out[0] == math.inf  # NaN accuracy sorts last
    assert out[1] == 1e300
    with pytest.raises(ValueError, match="finite"):
        as_minimized([[math.nan, 1.0]], MO)


def test_violation_and_feasible_read_optuna_constraints() -> None:
    def trial(constraints: dict[str, float]) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(values=[1.0], constraints=constraints)

    assert violation(trial({"a": -1.0, "b": 0.0})) == 0.0 and feasible(trial({"a": -1.0}))
    assert violation(trial({"a": 2.0, "b": 0.5, "c": -9.0})) == 2.5
    assert not feasible(trial({"a": 1e-9}))


def test_share_not_dominating() -> None:
    # (0.9, 100) dominates (0.8, 200); (0.7, 300) does not.
    assert share_not_dominating([0.8, 200], [[0.9, 100], [0.7, 300]], MO) == 0.5
    assert share_not_dominating([0.8, 200], [], MO) == 1.0
    assert share_not_dominating([0.8, 200], [[0.8, 200]], MO) == 1.0  # equal: no domination


def test_hypervolume_matches_hand_worked_boxes() -> None:
    # Boxes to the reference (accuracy 0, params 2): 0.9 x 1 and 0.5 x 2, overlapping 0.5 x 1.
    assert hypervolume([[0.9, 1.0], [0.5, 0.0]], [0.0, 2.0], MO) == pytest.approx(1.4)
    # A point that does not dominate the reference adds nothing.
    assert hypervolume([[0.9, 1.0], [0.95, 3.0]], [0.0, 2.0], MO) == pytest.approx(0.9)
    assert hypervolume([], [0.0, 2.0], MO) == 0.0


def test_hypervolume_matches_a_sweep_on_random_fronts() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(0, 1, size=(30, 2))  # both minimized
        ref = (1.1, 1.1)
        # Exact 2-D hypervolume: sweep by the first objective, adding each new step.
        area, best_y = 0.0, ref[1]
        for x, y in sorted(map(tuple, pts)):
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        assert hypervolume(pts, ref, ["minimize"] * 2) == pytest.approx(area)


def _random_points(rng: np.random.Generator, n: int, m: int, kind: str) -> np.ndarray:
    if kind == "front":  # all on one front: the slow case for every algorithm
        d = np.abs(rng.normal(size=(n, m))) + 1e-3
        return d / np.linalg.norm(d, axis=1, keepdims=True)
    if kind == "grid":  # ties in every objective, repeated and dominated points
        return rng.integers(0, 4, size=(n, m)).astype(float)
    return rng.uniform(0, 1, size=(n, m))


@pytest.mark.parametrize("n_objectives", [2, 3, 4])
@pytest.mark.parametrize("kind", ["front", "grid", "uniform"])
def test_hypervolume_matches_optunas_on_random_points(n_objectives: int, kind: str) -> None:
    # Optuna's private routine is the oracle here only: the product does not call it.
    rng = np.random.default_rng(n_objectives)
    for n in (1, 2, 3, 5, 12, 60, 200):
        q = _random_points(rng, n, n_objectives, kind)
        ref = q.max(axis=0) + rng.uniform(0.05, 0.5, size=n_objectives)
        expected = optuna_hypervolume(q, ref)
        assert expected > 0
        assert hypervolume_of_minimized(q, ref) == pytest.approx(expected, rel=1e-9)
        # Maximizing the first objective is minimizing its negation.
        directions = ["maximize"] + ["minimize"] * (n_objectives - 1)
        flipped = q * np.array([-1.0] + [1.0] * (n_objectives - 1))
        reference = [-ref[0], *ref[1:]]
        assert hypervolume(flipped, reference, directions) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n_objectives", [2, 3, 4])
def test_hypervolume_ignores_points_not_below_the_reference(n_objectives: int) -> None:
    rng = np.random.default_rng(10 + n_objectives)
    q = rng.uniform(0, 1, size=(80, n_objectives))
    ref = np.full(n_objectives, 0.8)  # some points beyond it, some on it
    q[:5, 0] = 0.8
    below = (q < ref).all(axis=1)
    assert 0 < below.sum() < len(q)
    expected = optuna_hypervolume(q[below], ref)
    assert hypervolume_of_minimized(q, ref) == pytest.approx(expected, rel=1e-9)
    assert hypervolume_of_minimized(q[~below], ref) == 0.0


def test_hypervolume_of_hand_worked_boxes_in_three_and_four_objectives() -> None:
    # Two unit-overlapping boxes to (2, 2, 2): 2*1*1 + 1*2*1 - 1*1*1 = 3.
    q3 = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    assert hypervolume_of_minimized(q3, np.array([2.0, 2.0, 2.0])) == pytest.approx(3.0)
    # Each of the four corners of a unit-spaced simplex: 4 * 2^3 - 6 * 2^2 + 4 * 2 - 1 = 15.
    q4 = np.eye(4)
    assert hypervolume_of_minimized(q4, np.full(4, 2.0)) == pytest.approx(15.0)
    # One point: its box; a repeated point counts once.
    assert hypervolume_of_minimized(np.array([[1.0, 2.0, 3.0]] * 3), np.full(3, 4.0)) == 6.0
    assert hypervolume_of_minimized(np.array([[0.5]]), np.array([2.0])) == 1.5


def test_hypervolume_with_an_infinite_reference() -> None:
    q = np.array([[0.0, 1.0]])
    assert hypervolume_of_minimized(q, np.array([math.inf, 2.0])) == math.inf
    assert hypervolume_of_minimized(np.empty((0, 2)), np.array([math.inf, 2.0])) == 0.0


def _reference_ranks(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Non-dominated sorting straight from the definition: peel off the fronts."""
    ranks = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        front = {
            i for i in left if not any(dominates(points[j], points[i], directions) for j in left)
        }
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def test_dominates_needs_no_worse_everywhere_and_better_somewhere() -> None:
    assert dominates([0.9, 100], [0.8, 100], MAX_MIN)
    assert dominates([0.8, 50], [0.8, 100], MAX_MIN)
    assert not dominates([0.9, 200], [0.8, 100], MAX_MIN)  # a trade-off
    assert not dominates([0.8, 100], [0.8, 100], MAX_MIN)  # identical
    assert dominates([1, 1, 1], [1, 2, 1], ["minimize"] * 3)
    assert not dominates([1, 1, 3], [1, 2, 1], ["minimize"] * 3)
    assert dominates([3], [2], ["maximize"]) and not dominates([2], [3], ["maximize"])
    with pytest.raises(ValueError, match="same length"):
        dominates([1, 2], [1], MAX_MIN)
    with pytest.raises(ValueError, match="maximize"):
        dominates([1, 2], [1, 3], ["maximize", "smaller"])


def test_pareto_ranks_on_known_fronts() -> None:
    points = [
        [0.9, 500],  # front: most accurate
        [0.5, 100],  # front: smallest
        [0.7, 200],  # front: in between
        [0.6, 300],  # dominated by [0.7, 200] only
        [0.5, 600],  # dominated by [0.6, 300] -> third front
        [0.9, 500],  # identical to the first: same rank
    ]
    assert pareto_ranks(points, MAX_MIN) == [0, 0, 0, 1, 2, 0]
    # Flipped directions: [0.5, 600] now dominates all, and [0.7, 200] is behind [0.6, 300].
    assert pareto_ranks(points, ["minimize", "maximize"]) == [1, 1, 2, 1, 0, 1]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([], []),
        ([[0.3, 7]], [0]),
        ([[0.5, 10]] * 4, [0, 0, 0, 0]),
        ([[0.5, 10], [0.5, 10], [0.4, 10]], [0, 0, 1]),
        ([[0.5, 10], [0.6, 10], [0.6, 9]], [2, 1, 0]),  # a chain
    ],
)
def test_pareto_ranks_edge_cases(points: list[list[float]], expected: list[int]) -> None:
    assert pareto_ranks(points, MAX_MIN) == expected


def test_pareto_ranks_three_and_more_objectives() -> None:
    dirs3 = ["maximize", "minimize", "minimize"]
    points = [
        [0.9, 1000, 5.0],  # front
        [0.9, 1000, 4.0],  # front: dominates the first (same accuracy and size, faster)
        [0.8, 100, 9.0],  # front: smallest, slowest
        [0.8, 2000, 9.0],  # dominated by all above, the first (rank 1) included
        [0.7, 2000, 9.5],  # dominated by the one above
    ]
    assert pareto_ranks(points, dirs3) == [1, 0, 0, 2, 3]
    dirs4 = [*dirs3, "maximize"]
    # A trade-off with the second point, dominating the first on the fourth objective.
    four = [[*p, 1.0] for p in points] + [[0.9, 1000, 5.0, 2.0]]
    assert pareto_ranks(four, dirs4) == [1, 0, 0, 2, 3, 0]


@pytest.mark.parametrize("n_objectives", [1, 2, 3, 4])
def test_pareto_ranks_match_the_definition_on_random_ties(n_objectives: int) -> None:
    rng = np.random.default_rng(n_objectives)
    for _ in range(40):
        directions = [str(d) for d in rng.choice(["maximize", "minimize"], n_objectives)]
        levels = int(rng.integers(1, 6))  # few distinct values: ties and duplicates galore
        points = rng.integers(0, levels, (int(rng.integers(1, 40)), n_objectives)).tolist()
        assert pareto_ranks(points, directions) == _reference_ranks(points, directions)


def test_pareto_ranks_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="vectors of 2"):
        pareto_ranks([[1, 2, 3]], MAX_MIN)
    with pytest.raises(ValueError, match="finite"):
        pareto_ranks([[float("nan"), 2]], MAX_MIN)


def test_crowding_distances_within_each_front() -> None:
    points = [[1, 4], [2, 2], [4, 1], [3, 3], [5, 5]]
    ranks = [0, 0, 0, 1, 2]
    # Middle point of front 0: (4-1)/3 + (4-1)/3; fronts of one point are all boundary.
    assert crowding_distances(points, ranks, ["minimize"] * 2) == [
        math.inf,
        2.0,
        math.inf,
        math.inf,
        math.inf,
    ]
    # Directions only flip signs; distances are symmetric.
    assert crowding_distances(points, ranks, ["maximize"] * 2) == crowding_distances(
        points, ranks, ["minimize"] * 2
    )


def test_crowding_distances_ties_and_identical_points_do_not_depend_on_order() -> None:
    dirs = ["minimize"] * 3
    points = [[0, 9, 5], [1, 5, 5], [1, 5, 5], [3, 2, 5], [6, 0, 5]]
    expected = [math.inf, 0.5 + 7 / 9, 0.5 + 7 / 9, 5 / 6 + 5 / 9, math.inf]
    assert crowding_distances(points, [0] * 5, dirs) == pytest.approx(expected)
    perm = [3, 1, 4, 2, 0]
    permuted = crowding_distances([points[i] for i in perm], [0] * 5, dirs)
    assert permuted == pytest.approx([expected[i] for i in perm])
    # A front of identical points: every one of them is a boundary point.
    assert crowding_distances([[1, 1, 1]] * 3, [0] * 3, dirs) == [math.inf] * 3
    with pytest.raises(ValueError, match="ranks"):
        crowding_distances(points, [0, 0], dirs)


def test_keep_by_pareto_rank_keeps_the_best_third() -> None:
    # Fronts of the others: {0.9, 0.8, 0.7}, {0.6}, {0.5}. With own, n = 6.
    others = [[0.9, 9000], [0.8, 8000], [0.7, 7000], [0.6, 8500], [0.5, 9500]]
    assert keep_by_pareto_rank([0.95, 100], others, MAX_MIN, 3)  # dominates everything
    # The smallest joins the front (4 > ceil(6/3) = 2 places), as one of its two ends.
    assert keep_by_pareto_rank([0.3, 100], others, MAX_MIN, 3)
    assert not keep_by_pareto_rank([0.55, 9000], others, MAX_MIN, 3)  # third front
    # Second front behind 3 points: out of the best ceil(6/2) = 3, in the best 4 (η = 1.5),
    # where it ties with [0.6, 8500] (both ends of their front) and wins the tie.
    assert not keep_by_pareto_rank([0.65, 8800], others, MAX_MIN, 2)
    assert keep_by_pareto_rank([0.65, 8800], others, MAX_MIN, 1.5)


def test_keep_by_pareto_rank_breaks_a_straddling_front_by_crowding() -> None:
    # All five on one front, n = 5, best ceil(5/2) = 3: the two ends (inf), then the least
    # crowded of the three inner points.
    front = [[0.5, 100], [0.6, 200], [0.7, 300], [0.75, 900], [0.9, 1000]]
    crowd = crowding_distances(front, [0] * 5, MAX_MIN)
    assert crowd[0] == crowd[4] == math.inf
    assert crowd[3] > crowd[1] and crowd[3] > crowd[2]
    kept = [
        keep_by_pareto_rank(p, front[:i] + front[i + 1 :], MAX_MIN, 2) for i, p in enumerate(front)
    ]
    assert kept == [True, False, False, True, True]


def test_keep_by_pareto_rank_ties_go_to_own() -> None:
    # Six identical points: none can be told apart, so none is pruned for another.
    assert keep_by_pareto_rank([0.5, 10], [[0.5, 10]] * 5, MAX_MIN, 3)
    # Alone, own is trivially kept; a point dominated by all others is not.
    assert keep_by_pareto_rank([0.5, 10], [], MAX_MIN, 3)
    assert not keep_by_pareto_rank([0.1, 99], [[0.5, 10]] * 5, MAX_MIN, 3)
    with pytest.raises(ValueError, match="greater than 1"):
        keep_by_pareto_rank([0.5, 10], [], MAX_MIN, 1)


@pytest.mark.parametrize("n_objectives", [2, 3, 4])
def test_keep_by_pareto_rank_matches_the_rule_applied_to_the_whole_sort(n_objectives: int) -> None:
    rng = np.random.default_rng(10 + n_objectives)
    kept = []
    for _ in range(60):
        directions = [str(d) for d in rng.choice(["maximize", "minimize"], n_objectives)]
        points = rng.integers(0, int(rng.integers(2, 7)), (int(rng.integers(1, 30)), n_objectives))
        eta = int(rng.integers(2, 5))
        ranks = _reference_ranks(points.tolist(), directions)
        crowd = crowding_distances(points, ranks, directions)
        ahead = sum(
            1
            for j in range(1, len(points))
            if ranks[j] < ranks[0] or (ranks[j] == ranks[0] and crowd[j] > crowd[0])
        )
        expected = ahead < math.ceil(len(points) / eta)
        assert keep_by_pareto_rank(points[0], points[1:], directions, eta) == expected
        kept.append(expected)
    assert 0 < sum(kept) < len(kept)


def test_count_dominating() -> None:
    others = [[0.9, 400], [0.9, 600], [0.8, 500], [0.85, 500], [0.8, 499]]
    assert count_dominating([0.8, 500], others, MAX_MIN) == 3  # not the identical one
    assert count_dominating([0.8, 500], [], MAX_MIN) == 0
    assert count_dominating([1.0, 1], others, MAX_MIN) == 0
    dirs3 = ["maximize", "minimize", "minimize"]
    assert count_dominating([0.5, 5, 5], [[0.5, 5, 4], [0.6, 5, 6], [0.5, 4, 4]], dirs3) == 2
