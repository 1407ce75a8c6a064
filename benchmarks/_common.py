"""Pieces every benchmark script shares: argument checks and writing the JSON report."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """``argparse`` type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def reproduce(module: str, argv: Sequence[str] | None = None) -> str:
    """The command line that reproduces a run: ``python -m MODULE`` and its arguments
    (``argv``, or this process's own), run from the repository root.

    Example:
        >>> reproduce("benchmarks.chaos", ["--duration", "60"])
        'python -m benchmarks.chaos --duration 60'
    """
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def write_report(report: dict[str, Any], out: Path) -> None:
    """Print ``report`` as JSON and write it to ``out`` (creating its folder)."""
    text = json.dumps(report, indent=2)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
