from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from storage import (
    StorageError,
    StorageURLError,
    open_storage,
    serve_storage,
    trial_writer,
)
from studies.run._lifeline import Lifeline
from tests.storage.conftest import open_when_answering


@pytest.fixture
def proxy(
    storage_url: str, free_port: int, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serve_storage(storage_url)`` in a subprocess; yields its grpc:// URL and process."""
    code = f"from storage import serve_storage; serve_storage({storage_url!r}, port={free_port})"
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen([sys.executable, "-c", code], stderr=log)
    try:
        yield f"grpc://127.0.0.1:{free_port}", server
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_study_runs_through_the_grpc_proxy_into_the_database(
    proxy: tuple[str, subprocess.Popen[bytes]], storage_url: str, unique_name: str, tmp_path: Path
) -> None:
    grpc_url, server = proxy
    client = open_when_answering(grpc_url, server, tmp_path / "server.log")
    assert isinstance(client, optuna.storages.GrpcStorageProxy)

    study = optuna.create_study(storage=client, study_name=unique_name)
    study.optimize(lambda t: (t.suggest_float("x", -1, 1)) ** 2, n_trials=4)

    # Several user attributes in one call (the proxy's SetUserAttrs), as trials write them.
    running = study.ask()
    Lifeline(running).set_user_attrs({"arch": "64-32-10", "params": 2410, "curve": [0.5, 0.75]})
    assert running.user_attrs["params"] == 2410  # the live trial sees them too
    study.tell(running, 0.5)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        trial_writer(running.study._storage).set_trial_user_attrs(
            running._trial_id, {"late": 1}
        )  # a finished trial refuses, as one write does

    direct = optuna.load_study(study_name=unique_name, storage=open_storage(storage_url))
    assert [t.params for t in direct.trials] == [t.params for t in study.trials]
    assert len(direct.trials) == 5
    assert direct.trials[4].user_attrs == {"arch": "64-32-10", "params": 2410, "curve": [0.5, 0.75]}
    assert direct.best_value == study.best_value

    os.kill(server.pid, signal.SIGTERM)
    assert server.wait(timeout=10) == -signal.SIGTERM


def test_unreachable_proxy_is_one_line_naming_host_and_port(free_port: int) -> None:
    with pytest.raises(StorageError) as err:
        open_storage(f"grpc://127.0.0.1:{free_port}")
    message = str(err.value)
    assert f"127.0.0.1:{free_port}" in message and "serve-storage" in message
    assert "\n" not in message


def test_grpc_url_with_a_password_is_refused_without_showing_it() -> None:
    with pytest.raises(StorageError) as err:
        open_storage("grpc://alice:hunter2pw@127.0.0.1:1")
    assert "hunter2pw" not in str(err.value)
    assert "alice:***@" in str(err.value) and "no authentication" in str(err.value)


def test_missing_grpcio_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # what Python does when grpc is absent
    with pytest.raises(StorageError, match=r'pip install "nas-study\[grpc\]"'):
        open_storage("grpc://127.0.0.1:1")


def test_serve_storage_refuses_a_busy_port_and_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL trusts local connections, so the password is accepted and ignored.
    url = "postgresql://postgres:hunter2pw@127.0.0.1:5432/test"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with (
            caplog.at_level(logging.INFO, logger="storage"),
            pytest.raises(StorageError, match=f"cannot listen on 127.0.0.1:{port}") as err,
        ):
            serve_storage(url, port=port)
    assert "postgres:***@127.0.0.1:5432/test" in str(err.value)
    assert f"postgresql://postgres:***@127.0.0.1:5432/test on grpc://127.0.0.1:{port}" in (
        caplog.text
    )
    assert "hunter2pw" not in caplog.text + str(err.value)


def test_serve_storage_refuses_to_proxy_a_proxy() -> None:
    with pytest.raises(StorageURLError, match="not another gRPC proxy"):
        serve_storage("grpc://127.0.0.1:13000")
