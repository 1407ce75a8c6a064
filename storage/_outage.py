"""How long a storage has been unreachable, shared by every thread that uses it.

A worker's main thread and its heartbeat thread meet the same outage; it is logged once,
when it begins, and timed from then, however many calls retry through it.
"""

from __future__ import annotations

import logging
import threading
import time

_logger = logging.getLogger("storage")

#: Seconds a worker waits out an unreachable database or proxy before giving up.
DEFAULT_OUTAGE_TIMEOUT_S = 600.0


class OutageClock:
    """Times the current outage of one storage, and the quiet time since the last one.

    Args:
        shown_url: How the log line names the storage (password masked).
        timeout: Seconds an outage may last before calls give up.
        count_start: Count the opening as the end of an outage (the proxy server, which
            starts while its workers could not beat through it).
    """

    def __init__(
        self,
        shown_url: str,
        timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
        *,
        count_start: bool = False,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"outage timeout must be positive, got {timeout}")
        self.shown_url = shown_url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._began: float | None = None
        #: ``time.monotonic()`` when the last outage ended (or the storage was opened).
        self.connected_since: float | None = time.monotonic() if count_start else None
        #: Outages seen, for tests and the chaos benchmark.
        self.outages = 0

    def failed(self, call: str, reason: str) -> float:
        """Record a failed call; returns the seconds the outage may still last (<= 0: give up).

        The first failure of an outage logs the one warning line of that outage.
        """
        now = time.monotonic()
        with self._lock:
            if self._began is None:
                self._began = now
                self.outages += 1
                _logger.warning(
                    "storage %s: %s failed with a transient database error, retrying for up to "
                    "%g s: %s",
                    self.shown_url,
                    call,
                    self.timeout,
                    reason,
                )
            return self.timeout - (now - self._began)

    def succeeded(self) -> None:
        """Record a call that reached the storage: any outage is over."""
        if self._began is None:  # the common case, without the lock
            return
        with self._lock:
            if self._began is not None:
                self._began = None
                self.connected_since = time.monotonic()

    def elapsed(self) -> float:
        """Seconds the current outage has lasted (0 when there is none)."""
        began = self._began
        return 0.0 if began is None else time.monotonic() - began

    def quiet_for(self) -> float:
        """Seconds since the storage last came back (0 during an outage, infinite if it
        was never seen down)."""
        if self._began is not None:
            return 0.0
        if self.connected_since is None:
            return float("inf")
        return time.monotonic() - self.connected_since
