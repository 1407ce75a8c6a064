"""Heartbeats: how a dead worker's RUNNING trial is noticed, failed and queued again."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class HeartbeatSettings:
    """How often workers prove they are alive, and what happens to a trial when one dies.

    A worker records a heartbeat for its RUNNING trial every ``interval`` seconds. Once a
    trial has had none for ``grace_period`` seconds, the next worker that asks for a trial
    (or anyone calling :func:`optuna.storages.fail_stale_trials`) marks it FAIL and queues a
    WAITING copy with the same parameters, at most ``max_retry`` times per original trial.

    Attributes:
        interval: Seconds between heartbeats.
        grace_period: Seconds without a heartbeat before a trial is declared dead, longer
            than ``interval``; ``None`` keeps Optuna's default of ``2 * interval``.
        max_retry: How many copies of one dead trial may be queued.
        stale_trial_callback: Called for each trial declared dead, as Optuna's
            ``heartbeat_stale_trial_callback`` (after the trial is failed, with the study
            and the failed trial); ``None`` queues a copy, at most ``max_retry`` times,
            in the same transaction as the failure.

    Example:
        >>> HeartbeatSettings(interval=10, grace_period=30).max_retry
        3
    """

    interval: int = 60
    grace_period: int | None = None
    max_retry: int = 3
    stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = field(
        default=None, compare=False
    )

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"heartbeat interval must be at least 1 second, got {self.interval}")
        if self.grace_period is not None and self.grace_period <= self.interval:
            # A live worker would be declared dead between two of its own heartbeats.
            raise ValueError(
                f"heartbeat grace period ({self.grace_period} s) must be longer than the "
                f"interval ({self.interval} s)"
            )
        if self.max_retry < 0:
            raise ValueError(f"heartbeat max_retry must not be negative, got {self.max_retry}")

    def rdb_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`optuna.storages.RDBStorage` for these settings."""
        return {
            "heartbeat_interval": self.interval,
            "grace_period": self.grace_period,
            "heartbeat_stale_trial_callback": (
                self.stale_trial_callback
                if self.stale_trial_callback is not None
                else RequeueStaleTrial(self.max_retry)
            ),
        }


class RequeueStaleTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's callback, whose copy nas-study's storage queues in the same transaction as
    it fails the dead trial (:mod:`storage._rdb.stale`), not in a second one: a process killed
    between Optuna's two would lose the trial. Called as a callback (another storage), it
    queues the copy as Optuna's does."""

    def __init__(self, max_retry: int | None, inherit_intermediate_values: bool = False) -> None:
        with warnings.catch_warnings():
            # The callback is an Optuna "experimental" class; its warning is noise for our users.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(
                max_retry=max_retry, inherit_intermediate_values=inherit_intermediate_values
            )
        self.max_retry = max_retry
        self.inherit_intermediate_values = inherit_intermediate_values

    def copy_of(self, dead: FrozenTrial) -> FrozenTrial | None:
        """The WAITING copy Optuna's callback would queue for ``dead`` (same parameters,
        ``failed_trial`` and ``retry_history`` system attributes), or ``None`` once
        ``max_retry`` copies were made."""
        system_attrs: dict[str, Any] = {"failed_trial": dead.number, **dead.system_attrs}
        history = [*system_attrs.get("retry_history", []), dead.number]
        system_attrs["retry_history"] = history
        if self.max_retry is not None and self.max_retry < len(history):
            return None
        return optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=dead.params,
            distributions=dead.distributions,
            user_attrs=dead.user_attrs,
            system_attrs=system_attrs,
            intermediate_values=(
                dead.intermediate_values if self.inherit_intermediate_values else None
            ),
        )


#: The settings ``open_storage`` uses unless told otherwise.
DEFAULT_HEARTBEAT = HeartbeatSettings()


class BeatLog:
    """When this process's beats for each trial reached the storage.

    A trial is declared dead only after ``grace_period`` seconds with no beat, both times
    read on the database's clock. If every beat of a trial since its first came less than
    ``grace_period - interval / 2`` seconds after the one before, and the last one less
    than that ago, nobody can have declared it dead (half an interval is left for the
    beat's own round trip), so a worker about to store its result need not read it back
    to check. Gaps are measured on both the monotonic and the wall clock, so a process
    frozen by SIGSTOP or a paused virtual machine shows one, and is checked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: trial id -> (monotonic, wall-clock) time of its last beat, and its longest gap.
        self._beats: dict[int, tuple[float, float, float]] = {}

    def beat(self, trial_id: int) -> None:
        """Record a beat of ``trial_id`` that the storage took."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            last = self._beats.get(trial_id)
            gap = 0.0 if last is None else max(last[2], now - last[0], wall - last[1])
            self._beats[trial_id] = (now, wall, gap)

    def surely_alive(self, trial_id: int, grace_period: float, interval: float) -> bool:
        """True only if nobody can have declared ``trial_id`` dead (see the class)."""
        with self._lock:
            last = self._beats.get(trial_id)
        if last is None:
            return False
        since = max(time.monotonic() - last[0], time.time() - last[1])
        return max(since, last[2]) < grace_period - interval / 2
