"""Which RUNNING trials are dead: Optuna's heartbeat rule, plus the two cases it misses.

* **Zombies.** Optuna skips a RUNNING trial that has no heartbeat row, so a worker killed
  between creating its trial and its first beat leaves it RUNNING forever. Here its start
  time counts as its first beat.
* **Outages.** While the database (or the proxy) is down nobody can beat, so right after it
  comes back every trial looks stale. So nothing is declared stale until a grace period
  after this process saw an outage end (the proxy server counts its own start as one): a
  live worker has a whole grace period to beat again before its trial is declared dead. A
  worker that starts just after an outage cannot know of it; if it declares a live trial
  dead, that trial's worker completes the queued copy instead (``studies.run``).

A dead trial is failed and its WAITING copy queued in **one transaction**: Optuna's own
``fail_stale_trials`` takes two, and a process killed between them loses the trial.

Times are compared on the database's clock, as Optuna does, except ``datetime_start``,
which Optuna writes from the worker's clock: hosts are assumed to keep the same time (NTP)
and time zone, an assumption Optuna's own ``datetime_start`` already makes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage._once import tag_template, without_token
from storage.optuna_compat import fail_and_queue_copy, running_trial_beats


def stale_trial_ids(
    storage: optuna.storages.RDBStorage, study_id: int, grace_period: float, quiet_for: float
) -> list[int]:
    """The ids of the study's RUNNING trials that have had no beat for ``grace_period``
    seconds, counting a start as a beat, once this process has reached the storage without
    an outage for ``quiet_for`` seconds (see the module docstring)."""
    if quiet_for < grace_period:
        return []
    now, rows = running_trial_beats(storage, study_id)
    grace = timedelta(seconds=grace_period)
    stale = []
    for trial_id, started, beat in rows:
        last = beat if beat is not None else started
        if now - (last or datetime.min) > grace:
            stale.append(trial_id)
    return stale


def fail_stale_trials_at_once(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    grace_period: float,
    quiet_for: float,
    max_retry: int | None,
) -> list[int]:
    """Fail each stale trial of the study and queue its copy, atomically (see the module
    docstring); returns the ids of the trials this call failed."""
    failed = []
    for trial_id in stale_trial_ids(storage, study_id, grace_period, quiet_for):
        dead = optuna.storages.RDBStorage.get_trial(storage, trial_id)
        if fail_and_queue_copy(storage, study_id, trial_id, copy_of(dead, max_retry)):
            failed.append(trial_id)
    return failed


def copy_of(dead: FrozenTrial, max_retry: int | None) -> FrozenTrial | None:
    """The WAITING copy Optuna's ``RetryHeartbeatStaleTrialCallback`` would queue for
    ``dead`` (same parameters, ``failed_trial`` and ``retry_history`` system attributes),
    or ``None`` once ``max_retry`` copies were made."""
    system_attrs: dict[str, Any] = {
        "failed_trial": dead.number,
        **without_token(dead).system_attrs,
    }
    history = [*system_attrs.get("retry_history", []), dead.number]
    system_attrs["retry_history"] = history
    if max_retry is not None and max_retry < len(history):
        return None
    return tag_template(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=dead.params,
            distributions=dead.distributions,
            user_attrs=dead.user_attrs,
            system_attrs=system_attrs,
        )
    )
