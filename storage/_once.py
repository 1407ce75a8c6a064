"""Exactly once: a write retried after its commit must not be applied twice.

A connection lost after the server committed but before it answered looks like any other
failed call. Retried, ``create_new_trial`` would leave a second trial, which nobody runs
and which holds a slot of the budget until it is declared dead. So every creation carries
a unique token, stored in nas-study's own table in the creating transaction
(:data:`storage._rdb.storage.TOKENS`), and a retry first looks for a trial with it. The
token is never a system attribute: users, ``copy_study`` and ``trials_dataframe`` do not
see it.

A gRPC client must look its token up itself across a proxy restart, so it chooses the
token and sends it, and whether the trial is a worker's, as two marks in the template's
system attributes; the proxy's database storage takes them off (:func:`take_marks`) before
anything is stored.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

_logger = logging.getLogger("storage")

#: Template mark (never stored): the creation's token, chosen by a gRPC client.
CREATE_TOKEN_ATTR = "nas_study:create_token"
#: Template mark (never stored): the trial is a worker's, so it beats from its creation.
WORKER_ATTR = "nas_study:worker"
#: What the log line says when a retried creation had committed (the chaos soak counts it).
ALREADY_CREATED = "had committed before its answer was lost"


def mark_template(template: FrozenTrial | None, token: str, *, worker: bool) -> FrozenTrial:
    """A copy of ``template`` (a plain new RUNNING trial if ``None``) carrying the marks a
    gRPC client sends: the creation ``token`` and whether the trial is a ``worker``'s."""
    marked = copy.deepcopy(template) if template is not None else new_running_template()
    marked.system_attrs[CREATE_TOKEN_ATTR] = token
    if worker:
        marked.system_attrs[WORKER_ATTR] = True
    return marked


def take_marks(template: FrozenTrial | None) -> tuple[FrozenTrial | None, str, bool]:
    """``template`` without the marks of :func:`mark_template`, its token (a fresh one if
    it has none) and whether it is a worker's trial. A template without marks is returned
    as it is, start time included."""
    if template is None or not (
        CREATE_TOKEN_ATTR in template.system_attrs or WORKER_ATTR in template.system_attrs
    ):
        return template, new_token(), False
    bare = copy.copy(template)
    bare.system_attrs = {
        k: v for k, v in template.system_attrs.items() if k not in (CREATE_TOKEN_ATTR, WORKER_ATTR)
    }
    token = str(template.system_attrs.get(CREATE_TOKEN_ATTR) or new_token())
    worker = bool(template.system_attrs.get(WORKER_ATTR, False))
    if bare.datetime_start is None and bare.state == TrialState.RUNNING:
        bare.datetime_start = datetime.now()  # as Optuna's default template has it
    return bare, token, worker


def new_running_template() -> FrozenTrial:
    """The template Optuna's ``_create_new_trial`` uses when given none: a new RUNNING
    trial starting now."""
    return FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )


def new_token() -> str:
    """A fresh creation token."""
    return uuid.uuid4().hex


def log_already_created(shown_url: str, trial_id: int) -> None:
    """The one log line of a retried creation that had committed."""
    _logger.info(
        "storage %s: create_new_trial %s; using trial id %d", shown_url, ALREADY_CREATED, trial_id
    )


def tell_once(
    tell: Callable[[], bool],
    get_trial: Callable[[], FrozenTrial],
    state: TrialState,
    values: Sequence[float] | None,
) -> Callable[[], bool]:
    """One attempt of a result write, for a retry loop: from the second attempt on, a
    write refused because the trial already ended exactly so is success (the first
    attempt had committed before its answer was lost). What the RDB storage and the gRPC
    client share."""
    retried = False

    def attempt() -> bool:
        nonlocal retried
        try:
            return tell()
        except UpdateFinishedTrialError:
            if retried and finished_as_asked(get_trial(), state, values):
                return True
            raise
        finally:
            retried = True

    return attempt


def finished_as_asked(
    stored: FrozenTrial, state: TrialState, values: Sequence[float] | None
) -> bool:
    """Whether ``stored`` already ended with ``state`` and ``values``: a retried tell whose
    first attempt had committed."""
    if stored.state != state:
        return False
    if values is None:
        return stored.values is None
    return stored.values is not None and [float(v) for v in values] == list(stored.values)
