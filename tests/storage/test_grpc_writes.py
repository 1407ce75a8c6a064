"""A worker's trial writes through the gRPC proxy: kept, sent in one ``WriteTrial`` call
each, and stored exactly as Optuna's one-call-per-write protocol stores them. Real proxy
processes (``serve_storage``, and Optuna's own server) in front of a real SQLite file and
the real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from storage import open_storage, worker_cached_storage
from storage._grpc.worker_client import BufferingGrpcProxy
from storage.optuna_compat import trial_id
from tests.storage.conftest import (
    delete_study_if_present,
    open_when_answering,
    publish,
    worker_trial,
)
from tests.storage.test_worker_cache import (
    _a_trial,
    _stored,
    a_write_to_a_dead_trial_raises_and_stores_nothing,
    moves_unpublished_writes_to_the_copy,
)

_SERVERS = {
    "nas-study": "from storage import serve_storage; serve_storage({url!r}, port={port})",
    # Optuna's own proxy server: no nas_study.Heartbeat service, so no WriteTrial.
    "optuna": (
        "import optuna; from storage import open_storage; "
        "optuna.storages.run_grpc_proxy_server(open_storage({url!r}, heartbeat=None), "
        "host='127.0.0.1', port={port})"
    ),
}


def _serve(kind: str, url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    code = _SERVERS[kind].format(url=url, port=port)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], stderr=out)


@pytest.fixture
def proxy(storage_url: str, free_port: int, tmp_path: Path, unique_name: str) -> Iterator[str]:
    """``nas-study serve-storage`` in front of ``storage_url``; yields its grpc:// URL."""
    yield from _running(_serve("nas-study", storage_url, free_port, tmp_path / "p.log"), free_port)
    if storage_url.startswith("postgresql"):
        for suffix in ("", "-plain"):
            delete_study_if_present(storage_url, unique_name + suffix)


def _running(server: subprocess.Popen[bytes], port: int) -> Iterator[str]:
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def _studies(url: str, name: str) -> dict[str, optuna.Study]:
    worker = worker_cached_storage(open_when_answering(url))
    assert isinstance(worker, BufferingGrpcProxy)
    plain = open_when_answering(url)  # the same client class, writes not kept: Optuna's calls
    return {
        side: optuna.create_study(
            storage=storage,
            study_name=name + suffix,
            directions=["maximize"],
            sampler=optuna.samplers.RandomSampler(seed=0),
            load_if_exists=True,
        )
        for side, storage, suffix in (("worker", worker, ""), ("plain", plain, "-plain"))
    }


def _stored_rows(url: str, studies: dict[str, optuna.Study]) -> dict[str, list[dict[str, Any]]]:
    reader = open_storage(url, heartbeat=None)  # the database itself, not the proxy
    return {
        side: [
            _stored(t)
            for t in optuna.load_study(study_name=s.study_name, storage=reader).get_trials()
        ]
        for side, s in studies.items()
    }


@pytest.mark.parametrize("end", ["complete", "pruned", "fail"])
def test_a_trial_through_the_proxy_is_stored_as_optunas_own_calls_store_it(
    proxy: str, storage_url: str, unique_name: str, end: str
) -> None:
    studies = _studies(proxy, unique_name)
    for study in studies.values():
        study.optimize(lambda t: _a_trial(t, end), n_trials=2, catch=(RuntimeError,))
    rows = _stored_rows(storage_url, studies)
    assert rows["worker"] == rows["plain"]
    assert [r["state"] for r in rows["worker"]] == 2 * [
        {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[end]
    ]
    assert rows["worker"][0]["params"].keys() == {"x", "n", "act"}
    assert rows["worker"][0]["user_attrs"]["arch"]["note"] == "rewritten"


def _count_calls(client: optuna.storages.BaseStorage) -> Counter[str]:
    """Count the calls of Optuna's protocol and of ``WriteTrial`` that ``client`` makes."""
    calls: Counter[str] = Counter()
    stub: Any = client._stub  # type: ignore[attr-defined]
    for name in [n for n in vars(stub) if n[0].isupper()]:
        method = getattr(stub, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kw)

        setattr(stub, name, counted)
    beats: Any = client._beats  # type: ignore[attr-defined]
    write = beats.write_trial

    def write_counted(message: dict[str, Any]) -> bool:
        calls["WriteTrial"] += 1
        return bool(write(message))

    beats.write_trial = write_counted
    return calls


def test_writes_wait_for_publish_a_report_or_the_end_in_one_call_each(
    proxy: str, storage_url: str, unique_name: str
) -> None:
    study = _studies(proxy, unique_name)["worker"]
    calls = _count_calls(study._storage)
    reader = open_storage(storage_url, heartbeat=None)

    def stored() -> FrozenTrial:
        return reader.get_trial(trial_id(trial))

    trial = worker_trial(study)
    trial.set_user_attr("worker", "w")
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_int("n", 1, 4)
    trial.set_constraint("max_params", -1.0)
    assert trial.params.keys() == {"x", "n"}  # the live trial sees its writes
    assert study._storage.get_trial(trial_id(trial)).params == trial.params  # so does a read
    assert stored().params == {} and stored().user_attrs == {}
    assert calls["SetTrialParameter"] == calls["SetTrialUserAttribute"] == 0
    assert calls["WriteTrial"] == 0
    publish(trial)
    assert stored().params == trial.params and stored().user_attrs == {"worker": "w"}
    assert [v for k, v in stored().system_attrs.items() if k.endswith(":max_params")] == [-1.0]
    assert calls["WriteTrial"] == 1
    trial.set_user_attr("curve", [0.5])
    trial.report(0.5, 0)  # another worker's pruner reads intermediate values: stored now
    assert stored().intermediate_values == {0: 0.5} and stored().user_attrs["curve"] == [0.5]
    assert calls["WriteTrial"] == 2
    trial.set_user_attr("epochs_run", 1)
    study.tell(trial, 0.5)
    assert stored().state == TrialState.COMPLETE and stored().user_attrs["epochs_run"] == 1
    assert stored().values == [0.5]
    assert calls["WriteTrial"] == 3
    # None of Optuna's per-write calls was made, nor its call that ends a trial.
    assert not {
        "SetTrialParameter",
        "SetTrialUserAttribute",
        "SetTrialSystemAttribute",
        "SetTrialIntermediateValue",
        "SetTrialStateValues",
    } & set(calls)


def test_a_write_to_a_trial_declared_dead_raises_and_stores_nothing(
    proxy: str, storage_url: str, unique_name: str
) -> None:
    a_write_to_a_dead_trial_raises_and_stores_nothing(
        _studies(proxy, unique_name)["worker"], storage_url
    )


def test_a_parameter_the_study_contradicts_is_refused_when_sent(
    proxy: str, unique_name: str
) -> None:
    study = _studies(proxy, unique_name)["worker"]
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    trial = worker_trial(study)
    trial.suggest_int("x", 0, 3)  # "x" is a float in this study
    with pytest.raises(ValueError, match="different distribution"):
        publish(trial)


def test_against_optunas_own_proxy_server_every_write_is_sent_as_optuna_sends_it(
    free_port: int, tmp_path: Path, unique_name: str
) -> None:
    db = f"sqlite:///{tmp_path}/optuna-server.db"
    server = _serve("optuna", db, free_port, tmp_path / "optuna.log")
    for url in _running(server, free_port):
        studies = _studies(url, unique_name)
        for study in studies.values():
            study.optimize(lambda t: _a_trial(t, "complete"), n_trials=2)
        rows = _stored_rows(db, studies)
        assert rows["worker"] == rows["plain"]
        assert [r["state"] for r in rows["worker"]] == [TrialState.COMPLETE] * 2
        assert rows["worker"][0]["params"].keys() == {"x", "n", "act"}


def test_the_dead_trials_worker_moves_its_unsent_writes_to_the_copy(
    proxy: str, storage_url: str, unique_name: str
) -> None:
    study = _studies(proxy, unique_name)["worker"]
    moves_unpublished_writes_to_the_copy(study, storage_url)
