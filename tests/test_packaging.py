"""The wheel holds every module, catalog study file and ``py.typed`` marker of the three
packages, found by walking the source tree (so a sub-package added later is covered), and
nothing of ``tests/`` or ``benchmarks/``.

The wheel is built without network and without build isolation, from a copy of the source tree
in a temporary folder: a build in the checkout itself would write ``build/`` and ``*.egg-info``
into the repository, and a stale ``build/lib`` from an earlier layout could slip old modules
into the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nas_objectives", "studies", "storage")
NEVER_SHIPPED = ("tests", "benchmarks")
#: What a build leaves in the checkout, and local tool state: never part of the source copy.
_NOT_SOURCE = {".git", ".venv", "build", "dist", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    at_root = Path(folder) == REPO
    return {
        name
        for name in names
        if name == "__pycache__"
        or (at_root and (name in _NOT_SOURCE or name.endswith(".egg-info")))
    }


def _source_files(pattern: str, under: Iterable[str] = PACKAGES) -> set[str]:
    """Paths (relative to the repository, with ``/``) of files matching ``pattern``."""
    return {
        path.relative_to(REPO).as_posix()
        for package in under
        for path in (REPO / package).rglob(pattern)
        if path.is_file() and "__pycache__" not in path.relative_to(REPO).parts
    }


def _catalog_files() -> set[str]:
    """``studies/**/catalog/*.toml``: the study files shipped with the package."""
    toml = _source_files("*.toml", under=["studies"])
    return {path for path in toml if Path(path).parent.name == "catalog"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    source = tmp_path_factory.mktemp("source") / REPO.name
    shutil.copytree(REPO, source, ignore=_ignore)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = list(out.glob("nas_study-*.whl"))
    assert len(wheels) == 1, [p.name for p in out.iterdir()]
    with zipfile.ZipFile(wheels[0]) as wheel:
        return {name for name in wheel.namelist() if not name.endswith("/")}


def test_the_source_walk_finds_the_packages() -> None:
    # Guards the walk itself: an empty walk would make the checks below pass vacuously.
    modules = _source_files("*.py")
    assert {f"{package}/__init__.py" for package in PACKAGES} <= modules
    assert any(path.endswith("/catalog/digits-mlp.toml") for path in _catalog_files())
    assert {f"{package}/py.typed" for package in PACKAGES} <= _source_files("py.typed")


def test_every_module_of_the_packages_is_in_the_wheel(wheel_files: set[str]) -> None:
    missing = _source_files("*.py") - wheel_files
    assert not missing, sorted(missing)


def test_every_catalog_study_file_is_in_the_wheel(wheel_files: set[str]) -> None:
    missing = _catalog_files() - wheel_files
    assert not missing, sorted(missing)


def test_every_py_typed_marker_is_in_the_wheel(wheel_files: set[str]) -> None:
    missing = _source_files("py.typed") - wheel_files
    assert not missing, sorted(missing)


def test_no_test_or_benchmark_file_is_in_the_wheel(wheel_files: set[str]) -> None:
    shipped = sorted(name for name in wheel_files if name.split("/")[0] in NEVER_SHIPPED)
    assert shipped == []
    top_level = {name.split("/")[0] for name in wheel_files}
    others = {name for name in top_level if not name.endswith(".dist-info")}
    assert others == set(PACKAGES)
