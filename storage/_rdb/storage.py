"""An ``RDBStorage`` that waits out a database outage and creates each trial exactly once.

It reaches into Optuna's RDB internals (its table models and session helper) for its own
creation and claim transactions, as Optuna's ``RDBStorage`` makes its own: one of the few
modules on Optuna's private API (listed in ``pyproject.toml``).


A worker trains for minutes between two storage calls. Meanwhile the database may restart,
fail over, or close idle connections; without a retry the next call raises and the worker
dies with its trial. Each storage method here retries such transient errors with exponential
backoff, and lets every other error through at once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import optuna
import sqlalchemy
from optuna.storages._rdb import models as _models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from storage._engine import transient_cause
from storage._errors import StorageError, first_line
from storage._heartbeat import BeatLog, HeartbeatSettings, RequeueStaleTrial
from storage._once import log_already_created, new_running_template, take_marks, tell_once
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S, OutageClock
from storage._rdb.stale import fail_stale_trials_at_once
from storage._retry_loop import RetryLoop, public_methods, retry_methods
from storage._trial_writes import TrialWrites, write_trial
from storage._url import redact_text, redact_url
from storage.optuna_compat import RDB_PRIVATE_CALLS

_logger = logging.getLogger(__name__)

# Methods that never touch the database, or must not be repeated half-way (a migration).
_NOT_RETRIED = frozenset(
    {
        "check_trial_is_updatable",
        "get_failed_trial_callback",
        "get_heartbeat_interval",
        "get_heartbeat_stale_trial_callback",
        "record_heartbeat",
        "remove_session",
        "upgrade",
    }
)


#: nas-study's one table beside Optuna's: the creation token of each trial created through
#: nas-study's storages, so a creation retried after its commit's answer was lost finds the
#: trial it made (:mod:`storage._once`) instead of making a second. Users, ``copy_study`` and
#: ``trials_dataframe`` never see it; Optuna's migrations leave a table they do not know.
TOKENS = sqlalchemy.Table(
    "nas_study_trial_tokens",
    sqlalchemy.MetaData(),
    sqlalchemy.Column("token", sqlalchemy.String(32), primary_key=True),
    sqlalchemy.Column("trial_id", sqlalchemy.Integer, nullable=False, index=True),
)


def create_tokens_table(storage: optuna.storages.RDBStorage) -> None:
    """Create :data:`TOKENS` unless it exists (another process may be creating it now)."""
    try:
        TOKENS.create(storage.engine, checkfirst=True)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        if "already exists" not in str(exc).lower() and not isinstance(
            exc, sqlalchemy.exc.IntegrityError
        ):
            raise


def create_trial_once(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    template: FrozenTrial,
    token: str,
    beat: bool,
) -> FrozenTrial:
    """One attempt at Optuna's trial-creation transaction, without its own retry loop, which
    also stores the creation ``token`` and, if ``beat``, the trial's first heartbeat.

    ``RDBStorage._create_new_trial`` retries a failed commit up to five times by itself; a
    commit that succeeded but whose answer was lost would then leave a second trial. A
    worker's trial beats from its creation on, in the same transaction, so a worker killed
    before its heartbeat thread's first beat leaves a trial that Optuna's own stale rule
    fails (a trial that never beat is never failed by it).
    """
    with _create_scoped_session(storage.scoped_session) as session:
        # The study row lock numbers trials densely, as in Optuna.
        _models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        row = storage._get_prepared_new_trial(study_id, template, session)
        session.execute(sqlalchemy.insert(TOKENS).values(token=token, trial_id=row.trial_id))
        if beat and template.state == TrialState.RUNNING:
            session.add(_models.TrialHeartbeatModel(trial_id=row.trial_id))
        frozen = copy.deepcopy(template)
        frozen.number = int(row.number)
        frozen.datetime_start = cast(datetime, row.datetime_start)
        frozen._trial_id = int(row.trial_id)
        return frozen


def claim_trial(storage: optuna.storages.RDBStorage, trial_id: int, beat: bool) -> bool:
    """``set_trial_state_values(trial_id, RUNNING)`` as Optuna's (False if the trial is no
    longer WAITING; ``UpdateFinishedTrialError`` if it ended) that, if ``beat``, records the
    trial's first heartbeat in the same transaction (see :func:`create_trial_once`)."""
    try:
        with _create_scoped_session(storage.scoped_session) as session:
            trial = _models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            storage.check_trial_is_updatable(trial_id, trial.state)
            if trial.state != TrialState.WAITING:
                return False
            trial.state = TrialState.RUNNING
            trial.datetime_start = datetime.now()
            if beat:
                found = _models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                if found is None:
                    session.add(_models.TrialHeartbeatModel(trial_id=trial_id))
                else:
                    found.heartbeat = session.execute(sqlalchemy.func.now()).scalar_one()
    except sqlalchemy.exc.IntegrityError:
        return False
    return True


def trial_with_token(storage: optuna.storages.RDBStorage, token: str) -> int | None:
    """The id of the trial created with creation ``token``, if it was created."""
    query = sqlalchemy.select(TOKENS.c.trial_id).where(TOKENS.c.token == token)
    with storage.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else int(found)


class RetryingRDBStorage(RetryLoop, optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage`` whose methods wait out a database outage.

    A call that meets a transient error is retried, sleeping 0.2, 0.4, 0.8, ... seconds (at
    most :data:`MAX_DELAY_S`) in between, until the outage has lasted ``outage_timeout``
    seconds; then it raises :class:`StorageError`. One warning is logged per outage, not per
    retry (see :class:`OutageClock`). Other errors are raised at once. A failed attempt's
    transaction was rolled back, so its retry starts clean, except when the connection was
    lost after the server committed but before it answered:

    * ``create_new_trial`` tags each new trial with a unique token and, before a retry,
      looks it up, so a creation that had committed is not made twice (:mod:`storage._once`);
    * ``set_trial_state_values`` retried after its commit finds the trial finished as asked,
      and returns True instead of raising ``UpdateFinishedTrialError``;
    * attribute and value writes are idempotent.

    Heartbeats never block or raise for an outage (a beat that fails is skipped, the next
    one is on time), and stale trials are handled by :mod:`storage._rdb.stale`: a RUNNING trial
    that never beat counts from its start; nothing is declared stale within a grace period
    after an outage this process saw end, because nobody could beat during it; and a dead
    trial is failed and its copy queued in one transaction.

    It is an ``RDBStorage`` in every other respect: caching by Optuna's ``_CachedStorage``,
    pickling.
    """

    def __init__(
        self,
        url: str,
        *,
        engine_kwargs: dict[str, Any] | None = None,
        heartbeat: HeartbeatSettings | None = None,
        skip_compatibility_check: bool = False,
        skip_table_creation: bool = False,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
        shown_url: str | None = None,
    ) -> None:
        """Open the database at ``url`` (see ``RDBStorage``).

        Args:
            url: The SQLAlchemy URL, password included.
            engine_kwargs: ``create_engine`` arguments.
            heartbeat: Heartbeat settings; ``None`` disables heartbeats.
            skip_compatibility_check: Open a database whose schema is not Optuna's head.
            skip_table_creation: Create no missing tables.
            outage_timeout: Seconds an outage may last before a call gives up.
            shown_url: How log lines name the storage (default: ``url``, password masked).
        """
        self._shown_url = redact_url(shown_url or url)
        # Kept to mask the password wherever a driver message repeats it.
        self._secret_url = url
        self.outage = OutageClock(self._shown_url, outage_timeout)
        self.beats = BeatLog()
        # Optuna warns that heartbeats are experimental, as it does for its own storage
        # (the CLI, whose users cannot act on it, filters it out).
        super().__init__(
            url,
            engine_kwargs=engine_kwargs,
            skip_compatibility_check=skip_compatibility_check,
            skip_table_creation=skip_table_creation,
            **(heartbeat.rdb_kwargs() if heartbeat is not None else {}),
        )
        if not skip_table_creation:
            create_tokens_table(self)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("outage", None)  # holds a lock
        state.pop("beats", None)  # this process's beats, and a lock
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.outage = OutageClock(self._shown_url)
        self.beats = BeatLog()

    def _failed(self, name: str, exc: Exception) -> float:
        """Seconds left to retry ``name`` after ``exc``; raises it if permanent, or a
        :class:`StorageError` once the outage has lasted too long."""
        cause = transient_cause(exc)
        if cause is None:
            raise exc
        reason = redact_text(first_line(cause), self._secret_url)
        left = self.outage.failed(name, reason)
        if left <= 0:
            raise StorageError(
                f"storage {self._shown_url}: unreachable for {self.outage.timeout:g} s "
                f"(--outage-timeout), giving up on {name}: {reason}"
            ) from None
        return left

    def record_heartbeat(self, trial_id: int) -> None:
        """One beat; during an outage it is skipped, so the heartbeat thread stays on time
        and the trial's end never waits for a beat's retries."""
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            cause = transient_cause(exc)
            if cause is None:
                raise
            self.outage.failed("record_heartbeat", redact_text(first_line(cause), self._secret_url))
        else:
            self.outage.succeeded()
            self.beats.beat(trial_id)

    def surely_alive(self, trial_id: int) -> bool:
        """Whether this process's beats prove that nobody has declared ``trial_id`` dead
        (see :class:`BeatLog`); False means "read the trial to know"."""
        interval = self.get_heartbeat_interval()
        if interval is None:
            return False
        grace = self.grace_period if self.grace_period is not None else 2 * interval
        return self.beats.surely_alive(trial_id, grace, interval)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None, worker: bool = False
    ) -> FrozenTrial:
        """Optuna's trial creation, made exactly once across retries by a creation token
        (:mod:`storage._once`); a ``worker``'s RUNNING trial (or one whose template carries
        the worker mark, sent by a gRPC worker) beats from its creation on
        (:func:`create_trial_once`)."""
        template, token, marked_worker = take_marks(template_trial)
        if template is None:
            template = new_running_template()
        beat = (worker or marked_worker) and self.heartbeat_interval is not None
        return self._call_with_retry(
            "create_new_trial",
            lambda: create_trial_once(self, study_id, template, token, beat),
            before_retry=lambda: self._already_created(token),
        )

    def _already_created(self, token: str) -> tuple[bool, Any]:
        found = trial_with_token(self, token)
        if found is None:
            return False, None
        log_already_created(self._shown_url, found)
        return True, optuna.storages.RDBStorage.get_trial(self, found)

    def trial_by_token(self, token: str) -> int | None:
        """The id of the trial created with ``token``, if any (the proxy answers its
        clients' look-ups with it)."""
        return cast(
            "int | None",
            self._call_with_retry("trial_by_token", lambda: trial_with_token(self, token)),
        )

    def claim_trial(self, trial_id: int, worker: bool = True) -> bool:
        """Take the WAITING trial to run it (``set_trial_state_values(RUNNING)``); a
        ``worker``'s claim records the trial's first beat in the same transaction."""
        beat = worker and self.heartbeat_interval is not None
        return bool(self._call_with_retry("claim_trial", lambda: claim_trial(self, trial_id, beat)))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        base = optuna.storages.RDBStorage
        attempt = tell_once(
            lambda: base.set_trial_state_values(self, trial_id, state, values),
            lambda: base.get_trial(self, trial_id),
            state,
            values,
        )
        return bool(self._call_with_retry("set_trial_state_values", attempt))

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Set several user attributes in one transaction (idempotent, so it is retried
        like every write)."""
        self._call_with_retry(
            "set_trial_user_attrs",
            lambda: write_trial(self, trial_id, TrialWrites(user_attrs=dict(attrs))),
        )

    def write_trial(
        self,
        trial_id: int,
        writes: TrialWrites,
        state: TrialState | None = None,
        values: Sequence[float] | None = None,
        completed_at: datetime | None = None,
    ) -> bool:
        """``writes`` (and the trial's end, unless ``state`` is ``None``) in one transaction
        (:func:`storage._trial_writes.write_trial`), retried like every write; a retried end
        that had committed is not an error, as for ``set_trial_state_values``."""
        if state is None:
            return bool(
                self._call_with_retry("write_trial", lambda: write_trial(self, trial_id, writes))
            )
        base = optuna.storages.RDBStorage
        attempt = tell_once(
            lambda: write_trial(self, trial_id, writes, state, values, completed_at),
            lambda: base.get_trial(self, trial_id),
            state,
            values,
        )
        return bool(self._call_with_retry("write_trial", attempt))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials, none within a grace period after an outage; with
        nas-study's own callback, each is failed and its copy queued in one transaction
        here (:mod:`storage._rdb.stale`), and Optuna finds it failed already."""
        assert self.heartbeat_interval is not None
        grace = self.grace_period or 2 * self.heartbeat_interval
        if self.outage.quiet_for() < grace:
            return []
        base = optuna.storages.RDBStorage
        stale = cast(
            "list[int]",
            self._call_with_retry(
                "_get_stale_trial_ids", lambda: base._get_stale_trial_ids(self, study_id)
            ),
        )
        callback = self.heartbeat_stale_trial_callback
        if not stale or not isinstance(callback, RequeueStaleTrial):
            return stale
        return cast(
            "list[int]",
            self._call_with_retry(
                "fail_stale_trials",
                lambda: fail_stale_trials_at_once(self, study_id, stale, callback),
            ),
        )


# Every public method of the storage, plus the private ones that Optuna's _CachedStorage
# calls instead (see optuna_compat), retries unless written out above.
retry_methods(
    RetryingRDBStorage,
    optuna.storages.RDBStorage,
    [*public_methods(optuna.storages.RDBStorage, _NOT_RETRIED), *RDB_PRIVATE_CALLS],
)
