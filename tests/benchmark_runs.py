"""Running a benchmark the way its docstring says: ``python -m benchmarks.NAME ...`` in a
real subprocess from the repository root, then reading the JSON it wrote.

Tests never import ``benchmarks`` (``tests/test_layout.py`` holds both sides to that): a
benchmark is checked through its command line and its report, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(
    module: str, *args: str, report: Path, timeout: float
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``python -m benchmarks.<module> ARGS`` and return the JSON at ``report``.

    The run must exit 0 (its stderr's tail says why not). The storage a developer may have
    set in ``$NAS_STUDY_STORAGE`` is not passed on: a benchmark names its own.
    """
    env = {k: v for k, v in os.environ.items() if k != "NAS_STUDY_STORAGE"}
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text()), done
