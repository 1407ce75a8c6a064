"""``tests/`` and ``benchmarks/`` stay apart, and benchmarks are packages run with ``-m``.

* A test never imports ``benchmarks``: it runs a benchmark as ``python -m benchmarks.NAME``
  and reads its JSON (:mod:`tests.benchmark_runs`).
* A benchmark never imports ``tests``: what both need is shipped in a ``testing``
  sub-package of the product (:mod:`nas_objectives.testing`, as :mod:`optuna.testing`).
* No benchmark edits ``sys.path``: every folder under ``benchmarks/`` is a package, and a
  benchmark runs from the repository root as ``python -m benchmarks.NAME``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (REPO_ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an ``import`` names (also inside functions), and every string given to
    ``importlib.import_module`` or ``__import__``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def _imports_of(folder: str, forbidden: str) -> list[str]:
    found = []
    for path in _python_files(folder):
        for line, module in _imported(ast.parse(path.read_text(), str(path))):
            if module == forbidden or module.startswith(forbidden + "."):
                found.append(f"{path.relative_to(REPO_ROOT)}:{line}: {module}")
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"), [("tests", "benchmarks"), ("benchmarks", "tests")]
)
def test_tests_and_benchmarks_do_not_import_each_other(folder: str, forbidden: str) -> None:
    assert _python_files(folder)  # the scan saw files
    assert _imports_of(folder, forbidden) == []


def test_the_scan_finds_every_form_of_import(tmp_path: Path) -> None:
    code = """
import benchmarks
import benchmarks.chaos as chaos
from benchmarks._common import reproduce
def later():
    from benchmarks import chaos
    importlib.import_module("benchmarks.fleet_scale")
from benchmarkstools import x  # another package that merely starts with the name
"""
    modules = [m for _, m in _imported(ast.parse(code))]
    hits = [m for m in modules if m == "benchmarks" or m.startswith("benchmarks.")]
    assert hits == [
        "benchmarks",
        "benchmarks.chaos",
        "benchmarks._common",
        "benchmarks",
        "benchmarks.fleet_scale",
    ]


def _sys_path_edits(path: Path) -> list[str]:
    edits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            edits.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: sys.path")
    return edits


def test_no_benchmark_touches_sys_path_or_needs_a_late_import() -> None:
    files = _python_files("benchmarks")
    assert [edit for path in files for edit in _sys_path_edits(path)] == []
    # Code run with `-c` by a benchmark is checked too: it is text, so it is searched as text.
    late = [
        f"{path.relative_to(REPO_ROOT)}: {marker}"
        for path in files
        for marker in ("sys.path", "noqa: E402")
        if marker in path.read_text()
    ]
    assert late == []


def test_every_folder_of_benchmarks_is_a_package() -> None:
    folders = {p.parent for p in _python_files("benchmarks")}
    assert REPO_ROOT / "benchmarks" / "tabular" in folders
    assert (
        sorted(str(f.relative_to(REPO_ROOT)) for f in folders if not (f / "__init__.py").exists())
        == []
    )
