"""``studies.oneshot``: proposals enqueued into the study and trained by an ordinary worker
(SQLite and PostgreSQL), lambda claims that never run twice, NaN searches, bad spaces."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas_objectives import load_dataset, record
from nas_objectives._cell_graph import cell_edges, to_nb201
from storage import open_storage
from studies import StudySpecError
from studies.oneshot import (
    CLAIMS_SUFFIX,
    Claims,
    SearchSettings,
    check_oneshot_space,
    lambda_grid,
    run_oneshot,
)
from studies.run import RunOptions, open_study, run_study
from studies.spec import StudySpec, parse_spec

TINY = """
name = "tiny-cell"
objectives = ["accuracy", "params"]
epochs = 1
n_trials = 2
dataset = "digits"
[model]
family = "cell"
nodes = 3
ops = OPS
width = WIDTH
cells_per_stage = 1
[optimizers.sgd]
lr = 0.05
"""


def tiny_spec(
    ops: str = '["none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3"]', width: str = "[4, 6]"
) -> StudySpec:
    return parse_spec(TINY.replace("OPS", ops).replace("WIDTH", width), "tiny-cell.toml")


FAST = SearchSettings(epochs=1, batch_size=128)


@pytest.fixture
def claims_cleanup(unique_name: str) -> Iterator[None]:
    yield
    storage = open_storage("postgresql://postgres@127.0.0.1:5432/test", heartbeat=None)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=unique_name + CLAIMS_SUFFIX, storage=storage)


def test_lambda_grid_spans_accuracy_only_to_the_max() -> None:
    assert lambda_grid(1, 2.0) == [0.0]
    assert lambda_grid(3, 2.0) == [0.0, 1.0, 2.0]


def test_proposals_are_enqueued_and_a_worker_trains_them(
    storage_url: str, unique_name: str, claims_cleanup: None
) -> None:
    spec = tiny_spec()
    storage = open_storage(storage_url, heartbeat=None)
    study = open_study(spec, storage, study_name=unique_name)
    data = load_dataset("digits")
    proposals = run_oneshot(spec, study, data, candidates=2, settings=FAST, lambda_max=2.0)
    assert [(p.index, p.lambda_, p.state) for p in proposals] == [
        (0, 0.0, "enqueued"),
        (1, 2.0, "enqueued"),
    ]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 2
    for p, t in zip(proposals, waiting, strict=True):
        assert t.user_attrs[record.PROPOSED_BY] == "oneshot"
        assert t.user_attrs[record.ONESHOT_METHOD] == "darts-1st+beta"
        assert t.user_attrs[record.ONESHOT_LAMBDA] == p.lambda_
        assert t.user_attrs[record.ONESHOT_SEED] == p.index  # the study's seed 0, plus i
        assert t.user_attrs[record.ONESHOT_SEARCH_SECONDS] > 0
        assert "none" not in p.cell and len(p.cell) == len(cell_edges(3))
        assert 4 <= t.system_attrs["fixed_params"]["width"] <= 6

    # An ordinary worker takes them first and trains them in full.
    report = run_study(
        spec, storage, RunOptions(n_trials=2, study_name=unique_name), progress=False
    )
    assert report.ran == 2
    done = report.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2
    for p, t in zip(proposals, done, strict=True):
        assert t.user_attrs[record.PROPOSED_BY] == "oneshot"
        assert t.user_attrs[record.ARCH].startswith(to_nb201(p.cell))
        assert t.values is not None and t.values[1] == p.cost  # the exact count, predicted
    claims = optuna.load_study(study_name=unique_name + CLAIMS_SUFFIX, storage=storage)
    assert [t.state for t in claims.trials] == [TrialState.COMPLETE] * 2

    # The sweep is done: running it again searches nothing.
    assert run_oneshot(spec, study, data, candidates=2, settings=FAST, lambda_max=2.0) == []


def test_interleaved_claims_never_hand_out_a_lambda_twice(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, heartbeat=None)
    a = Claims(storage, "s", "key", [0.0, 0.5, 1.0])
    b = Claims(storage, "s", "key", [0.0, 0.5, 1.0])
    a.post()
    # b posted before it could see a's claims: every lambda now has two claim trials.
    for i, value in enumerate(b.lambdas):
        b.study.enqueue_trial({}, user_attrs={"sweep": "key", "lambda_index": i, "lambda": value})
    taken: list[int] = []
    ia, ib = iter(b), iter(a)  # b takes from the lowest-numbered claims, as does a
    for claims, it in ((b, ib), (a, ia), (b, ib), (a, ia), (b, ib), (a, ia)):
        claim = next(it, None)
        if claim is not None:
            taken.append(claim.index)
            claims.done(claim, {})
    assert sorted(taken) == [0, 1, 2]
    assert a.states() == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE"}
    # Another sweep (other settings) has claims of its own.
    other = Claims(storage, "s", "other-key", [0.0])
    other.post()
    assert [c.index for c in other] == [0]


def test_a_nan_search_is_recorded_and_the_sweep_goes_on(sqlite_url: str) -> None:
    spec = tiny_spec()
    storage = open_storage(sqlite_url, heartbeat=None)
    study = open_study(spec, storage)
    bad = SearchSettings(epochs=1, batch_size=128, w_lr=1e30, guard=False)
    proposals = run_oneshot(spec, study, load_dataset("digits"), candidates=2, settings=bad)
    assert [p.state for p in proposals] == ["failed", "failed"]  # the second ran too
    assert all("non-finite supernet loss" in p.reason for p in proposals)
    assert study.get_trials(states=(TrialState.WAITING,)) == []
    claims = optuna.load_study(study_name="tiny-cell" + CLAIMS_SUFFIX, storage=storage)
    assert [t.state for t in claims.trials] == [TrialState.FAIL] * 2
    assert all("non-finite" in t.user_attrs[record.FAIL_REASON] for t in claims.trials)


def test_spaces_a_oneshot_search_cannot_serve_are_refused() -> None:
    check_oneshot_space(tiny_spec())  # a cell space is fine
    with pytest.raises(StudySpecError, match=r"tiny-cell.toml: model.ops: .*\['none'\]"):
        check_oneshot_space(tiny_spec(ops='["none"]'))
    mlp = parse_spec('name = "m"\ndataset = "digits"\n', "m.toml")
    with pytest.raises(StudySpecError, match=r"m\.toml: model\.family: .*'mlp'"):
        check_oneshot_space(mlp)


def test_fixed_width_is_not_enqueued_as_a_param(tmp_path: Path) -> None:
    spec = tiny_spec(width="4")
    storage = open_storage(f"sqlite:///{tmp_path}/w.db", heartbeat=None)
    study = open_study(spec, storage)
    (p,) = run_oneshot(spec, study, load_dataset("digits"), candidates=1, settings=FAST)
    assert set(p.params) == {"edge_1_0", "edge_2_0", "edge_2_1"}
