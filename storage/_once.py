"""Exactly once: a write retried after its commit must not be applied twice.

A connection lost after the server committed but before it answered looks like any other
failed call. Retried, ``create_new_trial`` would leave a second trial, which nobody runs
and which holds a slot of the budget until it is declared dead. So every new trial carries
a unique token (a system attribute), and a retry first looks for a trial with it.
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

#: System attribute of each trial created through nas-study: its creation's unique token.
CREATE_TOKEN_ATTR = "nas_study:create_token"
#: What the log line says when a retried creation had committed (the chaos soak counts it).
ALREADY_CREATED = "had committed before its answer was lost"


def tag_template(template: FrozenTrial | None) -> FrozenTrial:
    """A copy of ``template`` (a plain new RUNNING trial if ``None``) carrying a token.

    A token set already is kept: a gRPC client sets its own, so that it can look it up
    itself across a proxy restart. Re-queued copies never carry their original's
    (:func:`without_token`), so a token in a template is always a fresh one.
    """
    if template is None:
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
            system_attrs={CREATE_TOKEN_ATTR: new_token()},
            intermediate_values={},
            trial_id=-1,
        )
    tagged = copy.deepcopy(template)
    tagged.system_attrs.setdefault(CREATE_TOKEN_ATTR, new_token())
    if tagged.state == TrialState.RUNNING:
        # It starts here and now: the zombie rule counts its age from this clock.
        tagged.datetime_start = datetime.now()
    return tagged


def new_token() -> str:
    """A fresh creation token."""
    return uuid.uuid4().hex


def without_token(trial: FrozenTrial) -> FrozenTrial:
    """``trial`` without its creation token, to be the template of a copy."""
    if CREATE_TOKEN_ATTR not in trial.system_attrs:
        return trial
    bare = copy.copy(trial)
    bare.system_attrs = {k: v for k, v in trial.system_attrs.items() if k != CREATE_TOKEN_ATTR}
    return bare


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
