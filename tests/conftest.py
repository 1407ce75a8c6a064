"""Shared fixtures: real SQLite files and the real PostgreSQL server on this machine."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

#: The PostgreSQL that .ci/run starts; override with $NAS_STUDY_TEST_POSTGRES.
POSTGRES_URL = os.environ.get(
    "NAS_STUDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def _decode_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decoded")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, _decode_cache_dir: Path) -> None:
    # Tests choose their storage explicitly; a developer's own setting must not leak in.
    monkeypatch.delenv("NAS_STUDY_STORAGE", raising=False)
    monkeypatch.setenv("NAS_STUDY_OFFLINE", "1")
    # Decoded image folders are cached in a temporary folder, never in the user's home.
    monkeypatch.setenv("NAS_STUDY_CACHE_DIR", str(_decode_cache_dir))


#: A folder in which to keep the tests' screenshots; without it they go to a temporary folder.
ARTIFACTS_ENV_VAR = "NAS_STUDY_ARTIFACTS"


@pytest.fixture(scope="session")
def artifacts_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests save artifacts (screenshots): ``$NAS_STUDY_ARTIFACTS`` if set, kept there
    (a relative path is taken from where pytest was started), else pytest's temporary folder.
    Never the repository."""
    kept = os.environ.get(ARTIFACTS_ENV_VAR)
    if not kept:
        return tmp_path_factory.mktemp("artifacts")
    path = request.config.invocation_params.dir / kept
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/studies.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A real SQLite file, then the real PostgreSQL server. Use with ``unique_name``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/studies.db"
    else:
        yield POSTGRES_URL


@pytest.fixture
def unique_name() -> Iterator[str]:
    """A study name no other test (or run) uses; that study is removed from PostgreSQL after."""
    name = f"pytest-{uuid.uuid4().hex[:10]}"
    yield name
    from storage import open_storage

    storage = open_storage(POSTGRES_URL, heartbeat=None)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)


#: Debian's Chromium, never a downloaded browser; the flags keep it off this machine's closed
#: network (it would otherwise try Google's hosts at every start).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """A real headless Chromium, driven by Playwright. Fails (never skips) without one."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "this test never downloads a browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
