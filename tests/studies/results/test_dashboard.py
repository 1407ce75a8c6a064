"""``nas-study dashboard``: the token guard, read-only mode and the CLI, over real HTTP on a
real SQLite file."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest

from storage import open_storage
from studies.cli import main
from studies.errors import StudyRunError
from studies.results import (
    TOKEN_ENV_VAR,
    DashboardServer,
    check_token,
    is_loopback,
    make_dashboard_server,
)

PYTHON_CLI = [sys.executable, "-m", "studies"]
TOKEN = "k3Xq-Wd9_pR2mZ7vL0aT5yB8"
STUDY = "dash-study"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def _request(
    server: DashboardServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study file made once (creating the schema is the slow part), copied per test."""
    path = tmp_path_factory.mktemp("dashboard") / "template.db"
    study = optuna.create_study(
        study_name=STUDY,
        storage=open_storage(f"sqlite:///{path}", heartbeat=None),
        directions=["maximize", "minimize"],
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"n_layers": 2},
            distributions={"n_layers": optuna.distributions.IntDistribution(1, 3)},
            values=[0.9, 1000.0],
        )
    )
    return path


def _copy(template: Path, directory: Path) -> str:
    # SQLite's backup API, since the template is in WAL mode: its file alone may lack data.
    with sqlite3.connect(template) as src, sqlite3.connect(directory / "studies.db") as dst:
        src.backup(dst)
    return f"sqlite:///{directory}/studies.db"


@pytest.fixture
def study_url(template_db: Path, tmp_path: Path) -> str:
    return _copy(template_db, tmp_path)


def _serve(url: str, **kwargs: object) -> Iterator[DashboardServer]:
    server = make_dashboard_server(open_storage(url, heartbeat=None), port=0, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def guarded(
    template_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardServer]:
    """Shared by the tests that change nothing."""
    yield from _serve(_copy(template_db, tmp_path_factory.mktemp("guarded")), token=TOKEN)


@pytest.fixture
def writable(study_url: str) -> Iterator[DashboardServer]:
    yield from _serve(study_url, token=TOKEN)


@pytest.fixture
def read_only(study_url: str) -> Iterator[DashboardServer]:
    yield from _serve(study_url, token=TOKEN, read_only=True)


@pytest.fixture
def open_loopback(study_url: str) -> Iterator[DashboardServer]:
    yield from _serve(study_url)


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("path", ["/dashboard", "/api/studies", "/static/bundle.js", "/"])
def test_no_token_is_refused_with_nothing_of_the_dashboard(
    guarded: DashboardServer, path: str
) -> None:
    reply = _request(guarded, "GET", path)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"<html" not in reply.body.lower() and STUDY.encode() not in reply.body
    assert len(reply.body) < 200  # a one-line reason, not a page or a script


@pytest.mark.parametrize(
    "headers, query",
    [
        ({"Authorization": "Bearer not-the-token-at-all-123"}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),
        ({"Authorization": f"Bearer {TOKEN}x"}, ""),
        ({"Cookie": "nas_study_dashboard_x=" + TOKEN}, ""),  # the right value, another name
        ({}, "?token=not-the-token-at-all-123"),
    ],
)
def test_wrong_token_is_refused(
    guarded: DashboardServer, headers: dict[str, str], query: str
) -> None:
    reply = _request(guarded, "GET", "/api/studies" + query, headers)
    assert reply.status == 401
    assert reply.headers["Set-Cookie"] is None
    assert STUDY.encode() not in reply.body


def test_bearer_token_is_served(guarded: DashboardServer) -> None:
    page = _request(guarded, "GET", "/dashboard", BEARER)
    assert page.status == 200
    assert b"<title>Optuna Dashboard</title>" in page.body
    api = _request(guarded, "GET", "/api/studies", BEARER)
    assert api.status == 200
    names = [s["study_name"] for s in json.loads(api.body)["study_summaries"]]
    assert names == [STUDY]


def test_token_link_sets_a_strict_cookie_and_drops_the_token(guarded: DashboardServer) -> None:
    assert guarded.link == f"{guarded.url}?token={TOKEN}"
    reply = _request(guarded, "GET", f"/dashboard/studies/1?token={TOKEN}&x=1")
    assert reply.status == 303
    assert reply.headers["Location"] == "/dashboard/studies/1?x=1"
    set_cookie = reply.headers["Set-Cookie"]
    attributes = {part.strip().lower() for part in set_cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    cookie = set_cookie.split(";", 1)[0]
    assert cookie.endswith("=" + TOKEN)

    page = _request(guarded, "GET", "/dashboard/studies/1?x=1", {"Cookie": cookie})
    assert page.status == 200 and b"Optuna Dashboard" in page.body
    api = _request(guarded, "GET", "/api/studies", {"Cookie": f"other=1; {cookie}"})
    assert api.status == 200 and STUDY.encode() in api.body


@pytest.mark.parametrize(
    "path, location",
    [
        ("//evil.example/x", "/evil.example/x"),  # not a link to another host
        ("/dashboard%0d%0aSet-Cookie:%20a=b", "/dashboard%0D%0ASet-Cookie:%20a=b"),
        ("/", "/"),
    ],
)
def test_token_link_redirects_only_to_itself(
    guarded: DashboardServer, path: str, location: str
) -> None:
    reply = _request(guarded, "GET", f"{path}?token={TOKEN}")
    assert reply.status == 303
    assert reply.headers["Location"] == location
    assert len(reply.headers.get_all("Set-Cookie") or []) == 1


def test_read_only_refuses_changes(read_only: DashboardServer, study_url: str) -> None:
    assert _request(read_only, "GET", "/api/studies", BEARER).status == 200
    body = json.dumps({"study_name": "new", "directions": ["minimize"]}).encode()
    post = _request(
        read_only,
        "POST",
        "/api/studies",
        {**BEARER, "Content-Type": "application/json"},
        body,
    )
    assert post.status == 403
    delete = _request(read_only, "DELETE", "/api/studies/1", BEARER)
    assert delete.status == 403
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(study_url))}
    assert names == {STUDY}


def test_writable_dashboard_deletes(writable: DashboardServer, study_url: str) -> None:
    # The same DELETE that read-only refuses goes through here, so the 403 above is its doing.
    assert _request(writable, "DELETE", "/api/studies/1", BEARER).status == 204
    assert optuna.get_all_study_summaries(open_storage(study_url)) == []


def test_cross_site_change_is_refused(open_loopback: DashboardServer, study_url: str) -> None:
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    assert _request(open_loopback, "DELETE", "/api/studies/1", evil).status == 403
    assert len(optuna.get_all_study_summaries(open_storage(study_url))) == 1


def test_loopback_dashboard_refuses_foreign_host_header(open_loopback: DashboardServer) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name.
    rebound = _request(open_loopback, "GET", "/api/studies", {"Host": "evil.example:8080"})
    assert rebound.status == 403 and STUDY.encode() not in rebound.body
    for host in (f"127.0.0.1:{open_loopback.port}", f"localhost:{open_loopback.port}", "[::1]"):
        reply = _request(open_loopback, "GET", "/api/studies", {"Host": host})
        assert reply.status == 200, host
        assert STUDY.encode() in reply.body


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_token() -> None:
    assert check_token(TOKEN) == TOKEN
    with pytest.raises(StudyRunError, match=r"secrets\.token_urlsafe"):
        check_token("short")
    with pytest.raises(StudyRunError, match="only letters"):
        check_token("a token; with=odd chars")


@pytest.mark.parametrize(
    "extra, env, says",
    [
        (["--host", "0.0.0.0"], {}, "without an access token"),
        (["--host", "192.168.0.10"], {}, "without an access token"),
        (["--token", "short"], {}, "at least 16"),
        (["--host", "0.0.0.0"], {TOKEN_ENV_VAR: "tooshort"}, "at least 16"),
        (["--token", "semi;colon;token;here!"], {}, "only letters"),
    ],
)
def test_cli_refuses_unsafe_setups(
    study_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    monkeypatch.delenv(TOKEN_ENV_VAR, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main(["dashboard", "--storage", study_url, "--port", "0", *extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("nas-study: error: ") and err.count("\n") == 1
    assert says in err and "Traceback" not in err


def test_port_in_use_is_a_typed_error(study_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StudyRunError, match=f"cannot listen on 127.0.0.1:{port}"):
            make_dashboard_server(open_storage(study_url, heartbeat=None), port=port)


def test_cli_bad_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--port", "70000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "65535" in err


def test_cli_serves_with_env_token_and_stops_cleanly_on_sigterm(study_url: str) -> None:
    # Every interface, guarded by a token from the environment (never the command line).
    env = {**os.environ, "CI": "true", TOKEN_ENV_VAR: TOKEN}
    args = ["--storage", study_url, "--host", "0.0.0.0", "--port", "0", "--read-only"]
    proc = subprocess.Popen(
        [*PYTHON_CLI, "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        link = proc.stdout.readline().strip()  # blocks until it listens (or exits)
        assert link, proc.communicate(timeout=30)
        parts = urlsplit(link)
        assert parts.path == "/dashboard" and parts.query == f"token={TOKEN}"
        assert parts.port
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        conn.request("GET", "/api/studies")
        assert conn.getresponse().status == 401
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        conn.request("GET", "/api/studies", headers=BEARER)
        resp = conn.getresponse()
        assert resp.status == 200 and STUDY.encode() in resp.read()
        conn.close()

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 10
        assert "Traceback" not in err and "dashboard stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
