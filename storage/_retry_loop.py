"""The one retry and outage loop, used by both wings: the database storage
(:mod:`storage._rdb.storage`) and the gRPC proxy's client (:mod:`storage._grpc.client`).

A worker trains for minutes between two storage calls. Meanwhile the database or the proxy
may restart, fail over, or close idle connections; without a retry the next call raises and
the worker dies with its trial. Each wing says which failures are transient
(:meth:`RetryLoop._failed`) and how to recover a connection (:meth:`RetryLoop._reconnect`);
the loop, its backoff and its outage bookkeeping are here once.
"""

from __future__ import annotations

import functools
import inspect
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from storage._outage import OutageClock

#: Seconds before the first retry; doubled after each one, up to ``MAX_DELAY_S``.
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0

# Set while a retrying call runs in this thread, so the storage methods it calls in turn
# (get_best_trial calls get_trial) do not multiply the attempts.
_in_retry = threading.local()


class RetryLoop:
    """A storage whose calls wait out an outage (mixed in before the Optuna storage).

    A call that meets a transient error is retried, sleeping 0.2, 0.4, 0.8, ... seconds (at
    most :data:`MAX_DELAY_S`, with jitter) in between, until the outage has lasted its
    timeout; then :meth:`_failed` raises. One warning is logged per outage, not per retry
    (:class:`storage._outage.OutageClock`). Other errors are raised at once.
    """

    outage: OutageClock

    def _failed(self, name: str, exc: Exception) -> float:
        """Seconds left to retry ``name`` after ``exc``; raises ``exc`` if it is permanent,
        or a ``StorageError`` once the outage has lasted too long."""
        raise NotImplementedError

    def _reconnect(self) -> None:
        """Called after a failed attempt, before the next one (a fresh channel, say)."""

    def _call_with_retry(
        self,
        name: str,
        attempt: Callable[[], Any],
        before_retry: Callable[[], tuple[bool, Any]] | None = None,
    ) -> Any:
        """``attempt()`` until it succeeds, raises a permanent error, or the outage is too
        long. ``before_retry()`` runs before each retry; ``(True, value)`` ends the call with
        ``value`` (the failed attempt had committed after all)."""
        if getattr(_in_retry, "active", False):
            return attempt()  # a storage method called by another: its caller retries
        _in_retry.active = True
        try:
            delay, retrying = FIRST_DELAY_S, False
            while True:
                try:
                    if before_retry is not None and retrying:
                        done, value = before_retry()
                        if done:
                            self.outage.succeeded()
                            return value
                    result = attempt()
                    self.outage.succeeded()
                    return result
                except Exception as exc:
                    left = self._failed(name, exc)
                    # Jitter, so a fleet of workers does not reconnect in lock step.
                    time.sleep(min(delay * random.uniform(0.8, 1.2), left))
                    delay, retrying = min(2 * delay, MAX_DELAY_S), True
                    self._reconnect()
        finally:
            _in_retry.active = False


def public_methods(base: type, skip: Iterable[str] = ()) -> list[str]:
    """Every public method of ``base`` and its bases (so one Optuna adds later is covered
    too), less ``skip``."""
    names = {
        name
        for cls in base.__mro__
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    return sorted(names - set(skip))


def retry_methods(cls: type[RetryLoop], base: type, names: Iterable[str]) -> None:
    """Make each of ``base``'s methods ``names`` that ``cls`` does not write out itself
    retry through :meth:`RetryLoop._call_with_retry` (done once, as ``cls`` is defined)."""
    for name in names:
        if name not in vars(cls):
            setattr(cls, name, _retrying(name, getattr(base, name)))


def _retrying(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: RetryLoop, *args: Any, **kwargs: Any) -> Any:
        return self._call_with_retry(name, lambda: method(self, *args, **kwargs))

    return call
