"""Creating or joining a study in a storage, and running its trials in this process."""

from __future__ import annotations

import bisect
import copy
import dataclasses
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from nas_objectives import Objective, TensorData, failure_reason, load_dataset, record
from nas_objectives.train import prewarm
from storage import RequeueStaleTrial, StorageError
from storage.optuna_compat import (
    fresh_trials,
    hold_reads,
    is_heartbeat_enabled,
    release_reads,
    study_storage,
)
from studies.errors import BudgetReachedError
from studies.pruners import build_epoch_pruner
from studies.run._lifeline import TRIAL_LOST, Lifeline, TrialLostError
from studies.run._open import BUDGET_STATES, count_budget, open_study, resolve_device
from studies.run._options import RunOptions
from studies.run._progress import progress_bar, show_progress
from studies.spec import StudySpec

_logger = logging.getLogger(__name__)


class _FailureGuard:
    """Counts this process's trials, and trips after ``limit`` failed trials in a row.

    A broken setup should end the run with its reason, not fill the study with failures.
    An isolated failure (a NaN loss, say) is recorded and the run goes on.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.in_a_row = 0
        self.total = 0
        self.last_reason = ""
        self.tripped = False

    def record(self, state: TrialState, reason: str) -> None:
        self.seen += 1
        if state != TrialState.FAIL:
            self.in_a_row = 0
            return
        if reason in (WORKER_STOPPED, BUDGET_REACHED, TRIAL_LOST):
            return  # a failure that says nothing about the setup
        self.in_a_row += 1
        self.total += 1
        self.last_reason = reason
        self.tripped = self.in_a_row >= self.limit


@dataclass
class RunReport:
    """What one ``run_study`` call did."""

    study: optuna.Study
    budget: int
    ran: int
    failed: int
    stopped_for_failures: bool
    last_failure: str
    stopped: bool = False


class _BudgetedObjective:
    """Runs the objective only if the trial fits in the study's global budget.

    Trials are ranked by number among the trials that have not failed (COMPLETE, PRUNED,
    RUNNING, WAITING). Failures only ever lower a rank, so a trial that starts with a rank
    below the budget stays below it, and at most ``budget`` trials end COMPLETE or PRUNED
    however many workers race for the last slots. A trial that starts over the budget ends
    at once as FAIL with the reason "budget reached".

    The rank read is skipped when it cannot matter: a trial's rank is at most its number
    minus the failed trials with lower numbers that the worker loop saw before asking for
    it (trials are numbered densely, and a failure never comes back). A re-queued copy can
    carry a lower number than trials that already failed, hence "lower numbers".
    """

    def __init__(
        self, objective: Callable[[optuna.trial.Trial], float | Sequence[float]], budget: int
    ) -> None:
        self.objective = objective
        self.budget = budget
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.known_failed: list[int] = []  # numbers of FAIL trials, sorted; set by the loop
        self.trial_id: int | None = None
        self.outcome: tuple[TrialState, str] | None = None
        self.lifeline: Lifeline | None = None

    def __call__(self, live: optuna.trial.Trial) -> float | Sequence[float]:
        # The loop learns how the trial ended from here, not from an Optuna callback, which
        # would cost a re-read of the trial from the storage after every trial.
        self.lifeline = lifeline = Lifeline(live)
        # The objective sees the lifeline: if heartbeats declare the trial dead while it
        # trains, its writes (and Optuna's tell) move to the queued copy.
        trial = cast(optuna.trial.Trial, lifeline)
        self.trial_id = lifeline.trial_id
        self.outcome = (TrialState.FAIL, "unknown reason")
        try:
            trial.set_user_attr(record.WORKER, self.worker)
            failed_below = bisect.bisect_left(self.known_failed, trial.number)
            if trial.number - failed_below >= self.budget and self._rank(trial) >= self.budget:
                trial.set_user_attr(record.FAIL_REASON, BUDGET_REACHED)
                self.outcome = (TrialState.FAIL, BUDGET_REACHED)
                raise BudgetReachedError(f"budget of {self.budget} trials already taken")
            try:
                result = self.objective(trial)
            except TrialLostError:
                raise
            except optuna.TrialPruned:
                self.outcome = (TrialState.PRUNED, "")
                lifeline.ensure_alive()
                raise
            except Exception as exc:
                self.outcome = (TrialState.FAIL, failure_reason(exc))
                raise
            lifeline.ensure_alive()
            self.outcome = (TrialState.COMPLETE, "")
            return result
        except TrialLostError:
            self.outcome = (TrialState.FAIL, TRIAL_LOST)
            raise
        finally:
            self.trial_id = lifeline.trial_id

    @staticmethod
    def _rank(trial: optuna.trial.Trial) -> int:
        # Read afresh: the trials created just before this one count.
        alive = fresh_trials(trial.study, _ALIVE_STATES)
        return sum(1 for t in alive if t.number < trial.number)


#: Reason recorded on a trial that started after the budget was already taken.
BUDGET_REACHED = "budget reached"
_ALIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
#: Reason recorded on a trial ended by a stop request (SIGINT/SIGTERM); it is re-queued.
WORKER_STOPPED = "worker stopped"


def run_study(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    options: RunOptions | None = None,
    *,
    progress: bool | None = None,
    max_failures_in_a_row: int = 5,
    stop: threading.Event | None = None,
    poll_interval: float = 2.0,
    on_start: Callable[[optuna.Study], None] | None = None,
    data: TensorData | None = None,
    **overrides: Any,
) -> RunReport:
    """Create or join the study and run trials until one of these happens.

    * The study's **global** budget is met: ``options.n_trials`` (default: the study
      file's) trials COMPLETE or PRUNED, whoever ran them. A study already at its budget
      runs nothing.
    * This worker's own limit: ``max_trials`` trials run here, or ``timeout`` seconds.
    * ``stop`` is set (the CLI sets it on SIGINT/SIGTERM): the running trial ends at the
      next training step as FAIL with reason "worker stopped", and a copy is re-queued.
    * ``max_failures_in_a_row`` trials failed here in a row (a broken setup).

    When every remaining slot of the budget is held by trials running elsewhere, the
    worker waits (polling every ``poll_interval`` seconds) for them to finish, or for
    heartbeats to declare them dead and re-queue them, rather than exit early.

    ``options`` (a :class:`RunOptions`) carries what ``run``, ``worker`` and ``launch``
    share; keyword ``overrides`` replace its fields, so ``run_study(spec, storage,
    seed=1, n_trials=10)`` works too. The sampler is seeded with the study seed plus
    ``worker_index``, so a rerun with the same seeds and workers samples the same way;
    trial ``n`` trains with seed + ``n``. ``on_start`` is called once the data is loaded
    and the study opened. ``data`` given (as :func:`~studies.run.run_arrays` does) is
    trained on instead of the study file's dataset.

    Raises:
        StudyRunError, nas_objectives.DatasetError: setup problems, before any trial runs.
    """
    opts = dataclasses.replace(options or RunOptions(), **overrides)
    prewarm()  # the first optimizer step's torch._dynamo import, before any trial
    if data is None:
        # Load data before touching the study, so a missing dataset costs no trial.
        data = load_dataset(
            spec.dataset.name,
            device=resolve_device(opts.device),
            data_dir=opts.data_dir or spec.dataset.data_dir,
            val_fraction=spec.dataset.val_fraction,
            seed=spec.seed,  # the study file's: every worker, and export, splits alike
            family=spec.objective.space.model.family,
            memory_budget=opts.device_memory_budget,
            **spec.dataset.reader_options(),
        )
    objective_cfg = spec.objective
    if opts.seed is not None:
        objective_cfg = dataclasses.replace(objective_cfg, seed=opts.seed)
    if opts.epochs is not None:
        objective_cfg = dataclasses.replace(objective_cfg, epochs=opts.epochs)
    study = open_study(
        spec, storage, study_name=opts.study_name, seed=objective_cfg.seed + opts.worker_index
    )
    if record.DATASET not in study.user_attrs:  # the first worker records what it read
        study.set_user_attr(record.DATASET, data.describe())
    if on_start is not None:
        on_start(study)
    stop = stop or threading.Event()
    return run_trials(
        study,
        Objective(
            objective_cfg,
            data,
            stop=stop,
            epoch_pruner=build_epoch_pruner(spec),
            cuda_graphs=opts.cuda_graphs == "on",
        ),
        budget=opts.n_trials if opts.n_trials is not None else spec.n_trials,
        max_trials=opts.max_trials,
        timeout=opts.timeout if opts.timeout is not None else spec.timeout,
        stop=stop,
        progress=progress,
        max_failures_in_a_row=max_failures_in_a_row,
        poll_interval=poll_interval,
    )


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.trial.Trial], float | Sequence[float]],
    *,
    budget: int,
    max_trials: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    progress: bool | None = False,
    max_failures_in_a_row: int = 5,
    poll_interval: float = 2.0,
) -> RunReport:
    """The worker loop of :func:`run_study`, for any objective (see there for when it stops).

    Each trial runs through :meth:`optuna.Study.optimize` (one trial per call), so Optuna's
    heartbeats, stale-trial handling, logging and ``tell`` all apply unchanged.
    """
    stop = stop or threading.Event()
    budgeted = _BudgetedObjective(objective, budget)
    guard = _FailureGuard(max_failures_in_a_row)
    heartbeat = is_heartbeat_enabled(study_storage(study))
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = _progress_bar(budget, study, progress)
    try:
        while not stop.is_set() and not guard.tripped:
            if max_trials is not None and guard.seen >= max_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            everything = fresh_trials(study)
            # The ask's reads of the study (queue, sampler) reuse this one.
            hold_reads(study)
            trials = [t for t in everything if t.state in _ALIVE_STATES]
            done = sum(1 for t in trials if t.state in BUDGET_STATES)
            if bar is not None:
                bar.n = done
                bar.refresh()
            if done >= budget:
                break
            waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
            if len(trials) >= budget and not waiting:
                if not heartbeat:
                    break  # nothing would ever free a slot held by a dead worker
                stop.wait(poll_interval)  # woken at once by a stop request
                # Optuna fails stale trials before each trial it runs; a waiting worker
                # runs none, so it does that itself, and re-queued copies free the slots.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    fail_stale_trials(study)
                continue
            budgeted.known_failed = sorted(
                t.number for t in everything if t.state == TrialState.FAIL
            )
            budgeted.outcome = None
            _optimize_one(study, budgeted)
            if budgeted.outcome is None:  # the sampler failed before the objective ran
                budgeted.outcome = (TrialState.FAIL, "sampler error")
            guard.record(*budgeted.outcome)
            if budgeted.outcome[1] == WORKER_STOPPED and budgeted.trial_id is not None:
                _requeue(study, study_storage(study).get_trial(budgeted.trial_id))
    finally:
        release_reads(study)
        if bar is not None:
            bar.n = count_budget(study)
            bar.close()
    return RunReport(
        study=study,
        budget=budget,
        ran=guard.seen,
        failed=guard.total,
        stopped_for_failures=guard.tripped,
        last_failure=guard.last_reason,
        stopped=stop.is_set(),
    )


def _optimize_one(study: optuna.Study, budgeted: _BudgetedObjective) -> None:
    """One trial through ``study.optimize``; a database condition ends the run with one
    line (:class:`StorageError`), a trial declared dead under us is logged, not fatal, and
    so is a trial whose writes the storage refused (it is failed here, with the reason)."""
    budgeted.lifeline = None
    budgeted.trial_id = None
    try:
        study.optimize(budgeted, n_trials=1, catch=(Exception,))
    except Exception as exc:
        condition = _storage_error(exc)
        if condition is not None:
            raise condition from None
        lost = budgeted.lifeline is not None and budgeted.lifeline.lost
        if not (lost or _declared_dead(study, budgeted.trial_id, exc)):
            if not _fail_refused(study, budgeted, exc):
                raise
            return
        if not lost:
            _logger.warning(
                "trial id %s was declared dead as its result was stored; going on",
                budgeted.trial_id,
            )
        budgeted.outcome = (TrialState.FAIL, TRIAL_LOST)
    finally:
        if budgeted.lifeline is not None:
            budgeted.lifeline.close()


def _storage_error(exc: BaseException) -> StorageError | None:
    """The :class:`StorageError` (an outage outlasting ``--outage-timeout``, say) behind
    ``exc``: Optuna may raise another error while handling it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _declared_dead(study: optuna.Study, trial_id: int | None, exc: Exception) -> bool:
    """Optuna failed to store a result because heartbeats had failed the trial meanwhile
    (a FAIL trial refuses ``tell``: ValueError, UpdateFinishedTrialError, or Optuna's own
    assertion on that path)."""
    if trial_id is None:
        return False
    refused = (optuna.exceptions.UpdateFinishedTrialError, ValueError, AssertionError)
    if not isinstance(exc, refused):
        return False
    return study_storage(study).get_trial(trial_id).state == TrialState.FAIL


def _fail_refused(study: optuna.Study, budgeted: _BudgetedObjective, exc: Exception) -> bool:
    """Fail the trial whose end the storage refused to store, with the refusal as its
    reason; False if there is no such trial (nothing ran, or its end was stored).

    Optuna stores a trial's end in one write with the writes it kept: a parameter whose
    distribution differs from the study's (``ValueError`` from Optuna's
    ``check_distribution_compatibility``), or any other refusal, then leaves the trial
    RUNNING and raises (through its own ``AssertionError``). A worker's storage lets go of
    a trial's kept writes once its end was tried, stored or not, so the FAIL and its
    reason are stored alone.
    """
    trial_id = budgeted.trial_id
    if trial_id is None:
        return False
    storage = study_storage(study)
    stored = storage.get_trial(trial_id)
    if stored.state != TrialState.RUNNING:
        return False
    reason = f"the storage refused the trial's writes: {failure_reason(_refusal(exc))}"
    storage.set_trial_user_attr(trial_id, record.FAIL_REASON, reason)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    budgeted.outcome = (TrialState.FAIL, reason)
    _logger.warning("trial %d failed: %s; going on", stored.number, reason)
    return True


def _refusal(exc: BaseException) -> BaseException:
    """The storage's own error behind ``exc``: Optuna raises an ``AssertionError`` ("Should
    not reach.") while handling it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if not isinstance(current, AssertionError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return exc


def _requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a copy of a trial a stop request interrupted, as Optuna does for stale trials
    (same params; ``failed_trial``/``retry_history`` system attrs), minus the user attrs,
    which describe the interrupted run (its ``fail_reason`` above all), not the copy."""
    fresh = copy.deepcopy(trial)
    fresh.user_attrs = {}
    RequeueStaleTrial(max_retry=None)(study, fresh)


def _progress_bar(total: int, study: optuna.Study, progress: bool | None) -> tqdm | None:
    if not (show_progress() if progress is None else progress):
        return None
    return progress_bar(total, count_budget(study))
