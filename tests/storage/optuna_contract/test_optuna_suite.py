"""Optuna's own storage tests, from its source distribution, on nas-study's storages.

The files of ``tests/storages_tests/`` of the installed Optuna's source distribution run
unchanged under :mod:`tests.storage.optuna_contract.plugin`, which swaps only how storages
are made, once for each backend (SQLite, the real PostgreSQL) and for each kind in front of
it; Optuna's own storages run the same files as the control. ``.ci/run`` fetches the
distribution into :data:`CACHE`; where it is missing this test fetches it, and where it
cannot be had (no package registry), it fails and says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest

from tests.conftest import POSTGRES_URL
from tests.storage.optuna_contract import kinds

ROOT = Path(__file__).resolve().parents[3]
#: Where the source distribution is unpacked (``.ci/run`` fills it; kept between runs).
CACHE = Path(
    os.environ.get("NAS_STUDY_OPTUNA_SDIST_CACHE", Path.home() / ".cache" / "nas-study" / "optuna")
)
FILES = ["test_storages.py", "test_cached_storage.py", "test_heartbeat.py", "test_with_server.py"]


def optuna_storage_tests() -> Path:
    """``tests/storages_tests`` of the installed Optuna's source distribution."""
    version = optuna.__version__
    tests = CACHE / f"optuna-{version}" / "tests" / "storages_tests"
    if tests.is_dir():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"optuna=={version}",
            "-d",
            str(CACHE),
        ],
        capture_output=True,
        text=True,
    )
    archive = CACHE / f"optuna-{version}.tar.gz"
    if fetched.returncode != 0 or not archive.exists():
        pytest.fail(
            f"Optuna {version}'s source distribution is not in {CACHE} and could not be "
            f"fetched (`pip download --no-deps --no-binary :all: optuna=={version}`):\n"
            + fetched.stderr[-2000:]
        )
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    assert tests.is_dir(), f"{archive} has no tests/storages_tests"
    return tests


def _database(name: str) -> str:
    """The URL of a database of its own on the real PostgreSQL server, made empty: each run
    deletes every study of its database between tests."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def _pytest(files: list[Path], env: dict[str, str], *plugin: str) -> tuple[int, str]:
    command: list[str] = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
    ]
    command += ["--import-mode=importlib", "-W", "ignore::DeprecationWarning", *plugin]
    done = subprocess.run(
        command + [str(f) for f in files],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.returncode, done.stdout[-6000:] + done.stderr[-2000:]


def _summary(output: str) -> dict[str, int]:
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    assert last, output
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last[-1])}


def test_optuna_storage_tests_pass_on_every_nas_study_storage_kind() -> None:
    tests = optuna_storage_tests()
    plugin = ("-p", "tests.storage.optuna_contract.plugin")
    runs: dict[str, tuple[list[Path], dict[str, str], tuple[str, ...]]] = {}
    for backend in ("sqlite", "postgresql"):

        def url(run: str, backend: str = backend) -> dict[str, str]:
            if backend == "sqlite":
                return {kinds.BACKEND_ENV: "sqlite"}
            return {kinds.BACKEND_ENV: _database(f"nas_contract_{run}")}

        # Every file, every kind: test_storages.py and test_heartbeat.py are parametrized
        # over the kinds; test_with_server.py takes one, so it runs once for each.
        runs[f"{backend}: all files"] = ([tests / f for f in FILES], url("all"), plugin)
        for front in kinds.MODES[1:]:
            runs[f"{backend}: test_with_server.py, {front}"] = (
                [tests / "test_with_server.py"],
                {**url(front), kinds.FRONT_ENV: front},
                plugin,
            )
    # The control: Optuna's own storages through the same files.
    runs["control: Optuna's storages"] = (
        [tests / f for f in FILES],
        {
            "TEST_DB_URL": _database("nas_contract_control").replace(
                "postgresql://", "postgresql+psycopg://"
            )
        },
        ("-k", "not journal and not inmemory and not grpc_journal"),
    )
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        results = dict(
            zip(
                runs,
                pool.map(lambda run: _pytest(run[0], run[1], *run[2]), runs.values()),
                strict=True,
            )
        )
    failures = []
    for name, (code, output) in results.items():
        counts = _summary(output)
        if (
            code != 0
            or counts.get("failed", 0)
            or counts.get("error", 0)
            or not counts.get("passed")
        ):
            failures.append(f"--- {name}: exit {code}\n{output}")
    assert not failures, "\n".join(failures)
