"""A changed study file never reaches a running study as a crash: a worker whose file
searches another space is refused before any trial, and a write the storage refuses in
mid-trial fails that trial only. On real SQLite files."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna import create_study, load_study
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from nas_objectives import record
from storage import open_storage
from studies.errors import SearchSpaceChangedError
from studies.run import SPEC_ATTR, RunOptions, count_budget, open_study, run_study
from studies.spec import parse_spec

STUDY = """
name = "changing"
dataset = "digits"
epochs = 1
n_trials = 3
seed = 3

[model]
depth = [1, 2]
width = [4, 32]
activation = ["relu", "tanh"]

[optimizers.adamw]
lr = [1e-3, 1e-2]

[optimizers.sgd]
lr = [1e-2, 0.1]
momentum = [0.5, 0.9]

[sampler]
name = "random"
"""


def test_a_changed_space_is_refused_and_nothing_is_written(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    first = open_study(parse_spec(STUDY, "first.toml"), storage)
    stored = dict(first.user_attrs)

    changed = parse_spec(STUDY.replace('["relu", "tanh"]', '["relu", "gelu"]'), "second.toml")
    with pytest.raises(SearchSpaceChangedError) as refused:
        open_study(changed, storage)
    assert (refused.value.field, refused.value.stored, refused.value.new) == (
        "model.activation",
        '["relu", "tanh"]',
        '["relu", "gelu"]',
    )
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("second.toml: model.activation: ")
    assert '["relu", "tanh"]' in message and '["relu", "gelu"]' in message

    study = load_study(study_name="changing", storage=sqlite_url)
    assert study.trials == []
    assert study.user_attrs == stored  # the stored file is still the first one


def test_a_file_changed_outside_the_space_joins(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    open_study(parse_spec(STUDY), storage)
    budget_and_sampler = STUDY.replace("n_trials = 3", "n_trials = 9").replace(
        'name = "random"', 'name = "tpe"'
    )
    study = open_study(parse_spec(budget_and_sampler.replace("epochs = 1", "epochs = 4")), storage)
    assert study.user_attrs[SPEC_ATTR]["n_trials"] == 3  # the creator's file stays stored


def test_a_study_without_a_stored_file_joins(sqlite_url: str) -> None:
    # Created by plain Optuna (or by a nas-study that stored no file): nothing to compare.
    plain = create_study(
        study_name="changing", storage=sqlite_url, directions=["maximize", "minimize"]
    )
    plain.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.5, 100.0],
            params={"activation": "elu"},
            distributions={"activation": CategoricalDistribution(["elu"])},
        )
    )
    study = open_study(parse_spec(STUDY), open_storage(sqlite_url))
    assert study.user_attrs[SPEC_ATTR]["name"] == "changing"


@pytest.fixture(params=["database", "proxy"])
def worker_url(request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """Where the worker writes: the SQLite file itself, or a real ``nas-study serve-storage``
    in front of it (its refusal then comes back through gRPC)."""
    if request.param == "database":
        yield sqlite_url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = tmp_path / "proxy.log"
    serve = ["serve-storage", "--storage", sqlite_url, "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "studies", *serve],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"grpc://127.0.0.1:{port}"
        # A worker's opening waits (with a deadline) for a proxy that does not answer yet.
        open_storage(url, outage_timeout=60, wait=True)
        assert server.poll() is None, log.read_text()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_a_refused_write_fails_that_trial_and_the_worker_goes_on(
    sqlite_url: str, worker_url: str
) -> None:
    # Another process stored `sgd_momentum` as an integer: every trial here that samples
    # sgd writes it as a float, which the storage refuses (Optuna's
    # check_distribution_compatibility). The adamw trials are unaffected.
    plain = create_study(
        study_name="changing", storage=sqlite_url, directions=["maximize", "minimize"]
    )
    plain.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"sgd_momentum": 1},
            distributions={"sgd_momentum": IntDistribution(0, 1)},
        )
    )
    report = run_study(
        parse_spec(STUDY),
        open_storage(worker_url),
        RunOptions(n_trials=3, epochs=1),
        progress=False,
        max_failures_in_a_row=10,
    )

    trials = load_study(study_name="changing", storage=sqlite_url).trials[1:]
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "no trial sampled sgd: the refusal was never provoked"
    # Optuna's gRPC client raises a bare ValueError for a refused parameter (the proxy's
    # message stays in the RpcError behind it), so through the proxy the reason may be the
    # error's kind alone.
    message = "ValueError" if worker_url.startswith("grpc") else "Cannot set different"
    for t in failed:
        assert message in t.user_attrs[record.FAIL_REASON]
    # A refused trial did not end the worker: trials ran after it, to the budget.
    first_failed = failed[0].number
    assert any(t.number > first_failed and t.state == TrialState.COMPLETE for t in trials)
    assert count_budget(report.study) == 3
    assert report.ran == len(trials) and report.failed == len(failed)
    assert not report.stopped_for_failures
