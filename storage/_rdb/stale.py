"""Dead trials: failed, and their copy queued, in one transaction.

Which RUNNING trials are dead is Optuna's heartbeat rule, unchanged: a trial whose last beat
is older than the grace period, on the database's clock. A trial that never beat is never
dead by that rule, so a plain-Optuna process sharing the study keeps its trial; a nas-study
worker's trial beats from the transaction that creates or claims it
(:func:`storage._rdb.storage.create_trial_once`), so a worker killed before its heartbeat
thread starts leaves no zombie.

Two things are nas-study's own:

* **Outages.** While the database (or the proxy) is down nobody can beat, so right after it
  comes back every trial looks stale. Nothing is declared stale until a grace period after
  this process saw an outage end (the proxy server counts its own start as one): a live
  worker has a whole grace period to beat again. A worker that starts just after an outage
  cannot know of it; if it declares a live trial dead, that trial's worker completes the
  queued copy instead (``studies.run``).
* **One transaction.** With nas-study's own callback (:class:`RequeueStaleTrial`, the
  default), a dead trial is failed and its WAITING copy queued in one transaction: Optuna's
  ``fail_stale_trials`` takes two, and a process killed between them loses the trial. Any
  other callback is Optuna's business: the ids are returned, and Optuna fails each trial and
  calls the callback, as it does for its own storage.
"""

from __future__ import annotations

import optuna

from storage._heartbeat import RequeueStaleTrial
from storage.optuna_compat import fail_and_queue_copy


def fail_stale_trials_at_once(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    stale: list[int],
    callback: RequeueStaleTrial,
) -> list[int]:
    """Fail each of the ``stale`` trials of the study and queue its copy, atomically (see
    the module docstring); returns the ids of the trials this call failed."""
    failed = []
    for trial_id in stale:
        dead = optuna.storages.RDBStorage.get_trial(storage, trial_id)
        if fail_and_queue_copy(storage, study_id, trial_id, callback.copy_of(dead)):
            failed.append(trial_id)
    return failed
