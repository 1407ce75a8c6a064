"""A trial declared dead while its worker still runs it: its result goes to the copy.

A worker frozen (SIGSTOP, a paused VM) or cut off from the database for longer than the
grace period looks dead: its trial is failed and a WAITING copy with the same parameters is
queued. When it comes back, its next write to the trial raises ``UpdateFinishedTrialError``.
Rather than crash, or throw its training away, the worker claims the copy (if nobody has
yet) and goes on writing there: nothing is trained twice. If the copy is gone (another
worker took it, or no copy was allowed), the trial ends with one log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from storage import trial_writer
from storage.optuna_compat import (
    BaseHeartbeatThread,
    cache_user_attrs,
    fresh_trials,
    heartbeat_thread,
    retarget_trial,
    study_storage,
    trial_id,
    written_system_attrs,
)

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Reason recorded for a trial whose worker found it declared dead and its copy taken.
TRIAL_LOST = "declared dead while it ran"
#: System attribute set on a copy that the dead trial's own worker completed.
ADOPTED_ATTR = "nas_study:adopted"
#: Seconds to wait for the copy, which the declaring process queues just after the FAIL.
COPY_WAIT_S = 3.0
# The Trial methods that write to the stored trial.
_WRITERS = frozenset(
    {
        "report",
        "set_user_attr",
        "set_system_attr",
        "set_constraint",
        "suggest_float",
        "suggest_int",
        "suggest_categorical",
        "suggest_uniform",
        "suggest_loguniform",
        "suggest_discrete_uniform",
    }
)


class TrialLostError(optuna.TrialPruned):
    """The trial was declared dead and its copy is not ours to complete.

    A ``TrialPruned`` so that nothing writes to the dead trial on the way out (the objective
    re-raises it untouched) and Optuna logs one line for it, not a traceback.
    """


class Lifeline:
    """Stands in for an ``optuna.trial.Trial``: every attribute is the trial's, and a write
    that finds the trial declared dead moves the trial over to its queued copy first."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self._trial = trial
        self._beats: list[BaseHeartbeatThread] = []
        self.lost = False
        # The storage's declared trial-write interface; the trial's writes are kept and
        # stored together at publish, at each report and at the end.
        self._writer = trial_writer(study_storage(trial.study))
        self._writer.keep_writes(trial_id(trial))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._trial, name)
        if name not in _WRITERS or not callable(value):
            return value

        def write(*args: Any, **kwargs: Any) -> Any:
            return self._write(lambda trial: getattr(trial, name)(*args, **kwargs))

        return write

    def set_user_attrs(self, attrs: dict[str, Any]) -> None:
        """Set several user attributes in one storage write where the storage allows it
        (:meth:`storage.TrialWriter.set_trial_user_attrs`)."""

        def write(trial: optuna.trial.Trial) -> None:
            self._writer.set_trial_user_attrs(trial_id(trial), attrs)
            cache_user_attrs(trial, attrs)

        self._write(write)

    def publish(self) -> None:
        """Store what was written to the trial so far, now
        (:meth:`storage.TrialWriter.publish`)."""
        self._write(lambda trial: self._writer.publish(trial_id(trial)))

    def _write(self, write: Callable[[optuna.trial.Trial], _T]) -> _T:
        """``write`` to the trial; if it was declared dead meanwhile, to its copy."""
        try:
            return write(self._trial)
        except UpdateFinishedTrialError:
            self.adopt_copy()
            return write(self._trial)

    @property
    def trial_id(self) -> int:
        """The id of the stored trial written to now (the copy's, once adopted)."""
        return trial_id(self._trial)

    def ensure_alive(self) -> None:
        """Before Optuna stores the result: move to the copy if the trial was declared dead
        after its last write. The read is skipped when this process's own heartbeats
        prove the trial could not have been declared dead (see ``storage.BeatLog``)."""
        if self._writer.surely_alive(self.trial_id):
            return
        stored = study_storage(self._trial.study).get_trial(self.trial_id)
        if stored.state != TrialState.RUNNING:
            self.adopt_copy()

    def adopt_copy(self) -> None:
        """Claim the dead trial's WAITING copy and write there from now on.

        Raises:
            TrialLostError: there is no copy to claim.
        """
        study = self._trial.study
        storage = study_storage(study)
        dead = self._trial.number
        deadline = time.monotonic() + COPY_WAIT_S
        while True:
            copy = _copy_of(study, dead)
            if copy is not None:
                try:
                    claimed = storage.set_trial_state_values(trial_id(copy), TrialState.RUNNING)
                except UpdateFinishedTrialError:
                    claimed = False
                if claimed:
                    self._take_over(storage.get_trial(trial_id(copy)))
                    return
                break  # another worker runs it already
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the declaring process queues the copy right after the FAIL
        self.lost = True
        _logger.warning(
            "trial %d was declared dead while this worker ran it (frozen or cut off for "
            "longer than the grace period) and its copy is not free; going on",
            dead,
        )
        raise TrialLostError(f"trial {dead} {TRIAL_LOST}")

    def _take_over(self, copy: FrozenTrial) -> None:
        storage = study_storage(self._trial.study)
        dead = storage.get_trial(self.trial_id)
        new_id = trial_id(copy)
        # What the run recorded so far, so the copy reads as the whole run: the worker
        # stores a trial's writes in batches, so some may never have reached the dead trial
        # (and its copy), parameters included.
        for name, value in self._trial.params.items():
            if name not in copy.params:
                dist = self._trial.distributions[name]
                storage.set_trial_param(new_id, name, dist.to_internal_repr(value), dist)
        for key, value in written_system_attrs(self._trial).items():
            if key not in copy.system_attrs:
                storage.set_trial_system_attr(new_id, key, value)
        for key, value in self._trial.user_attrs.items():
            storage.set_trial_user_attr(new_id, key, value)
        for step, value in dead.intermediate_values.items():
            storage.set_trial_intermediate_value(new_id, step, value)
        storage.set_trial_system_attr(new_id, ADOPTED_ATTR, True)
        retarget_trial(self._trial, storage.get_trial(new_id))
        self._writer.keep_writes(new_id)
        beat = heartbeat_thread(new_id, storage)
        beat.start()
        self._beats.append(beat)
        _logger.warning(
            "trial %d was declared dead while this worker ran it (frozen or cut off for "
            "longer than the grace period); its result goes to its queued copy, trial %d",
            dead.number,
            copy.number,
        )

    def close(self) -> None:
        """Stop the heartbeats of adopted copies (once their result is stored)."""
        for beat in self._beats:
            beat.join()
        self._beats.clear()


def _copy_of(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The WAITING copy that heartbeats queued for dead trial ``number``, if any."""
    for t in fresh_trials(study, (TrialState.WAITING,)):
        history = t.system_attrs.get("retry_history") or []
        if history and history[-1] == number:
            return t
    return None
