"""SIGINT/SIGTERM handling, one way for the worker loop, the launcher and the dashboard."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call ``handler(signum)``; the previous handlers
    come back afterwards. Off the main thread, where Python allows no handler, it does
    nothing (the caller then stops through its own event)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def call(signum: int, frame: FrameType | None) -> None:
        handler(signum)

    previous = {s: signal.signal(s, call) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Within the block, a first SIGINT/SIGTERM sets the yielded event (finish cleanly) and
    a second exits the process at once. The previous handlers come back afterwards."""
    stop = threading.Event()

    def handler(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()
        print(
            "nas-study: stopping: the running trial ends as 'worker stopped' and is re-queued "
            "(signal again to exit at once)",
            file=sys.stderr,
        )

    with on_stop_signals(handler):
        yield stop
