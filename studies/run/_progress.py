"""Progress bars: only on a terminal, and never under ``CI=true``."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def show_progress() -> bool:
    """Progress bars only on a terminal, and never under ``CI=true``."""
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not ci


def progress_bar(total: int, initial: int) -> tqdm:
    """A bar of ``total`` trials starting at ``initial`` (callers check :func:`show_progress`)."""
    return tqdm(total=total, initial=initial, unit="trial", dynamic_ncols=True)
