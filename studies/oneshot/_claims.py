"""Which process runs which lambda of a sweep: claims kept in the storage.

The claims of study ``S`` are the trials of a small companion study ``S:oneshot-claims``
(one objective, never sampled), one trial per lambda of a sweep, tagged by user attributes
``sweep`` (a key of the sweep's settings), ``lambda_index`` and ``lambda``.

* **Posting** (every process, at start): each lambda of the sweep without a claim trial
  yet is enqueued as a WAITING trial. Two processes starting together may both post one;
  the duplicate is resolved when claimed.
* **Claiming**: a process takes a WAITING claim by Optuna's own state transition,
  ``storage.set_trial_state_values(trial_id, RUNNING)``. The storage makes it atomic
  (a row lock on PostgreSQL and MySQL, SQLite's single writer, the proxy's one storage);
  it is how Optuna's workers take enqueued trials, so exactly one process wins each claim.
* **Canonical claim**: the claim trial of lambda ``i`` that runs is the lowest-numbered
  one not marked a duplicate. A process that wins any other claim of ``i`` marks it FAIL
  as a duplicate and moves on, so lambda ``i`` is searched at most once whatever the
  interleaving: the canonical trial is fixed once posted, and only its one winner runs it.
* **Done**: COMPLETE with the derived cell in its user attributes; a search that fails
  (a NaN) is FAIL with its reason, and is not retried by a later sweep of the same key.

A process killed mid-search leaves its claim RUNNING: that lambda is not searched again
(by design, no search twice); start a sweep with another ``--seed`` to redo it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import record
from storage.optuna_compat import study_storage, trial_id

#: The companion study that holds the claims of study ``name``.
CLAIMS_SUFFIX = ":oneshot-claims"
SWEEP = "sweep"
LAMBDA_INDEX = "lambda_index"
LAMBDA = "lambda"
DUPLICATE = "duplicate of a lower-numbered claim"


@dataclass(frozen=True)
class Claim:
    """A lambda this process holds: run it, then :meth:`Claims.done` or :meth:`Claims.failed`."""

    trial_id: int
    index: int
    value: float


class Claims:
    """The claims of one sweep (``key``) over ``lambdas`` for the study ``study_name``."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        key: str,
        lambdas: Sequence[float],
    ) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                storage=storage,
                study_name=study_name + CLAIMS_SUFFIX,
                load_if_exists=True,  # Optuna resolves the race of two creators
            )
        self.storage = study_storage(self.study)
        self.key = key
        self.lambdas = tuple(float(x) for x in lambdas)

    def _mine(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        trials = self.study.get_trials(deepcopy=False, states=states)
        return [t for t in trials if t.user_attrs.get(SWEEP) == self.key]

    def post(self) -> None:
        """Enqueue a claim for every lambda of the sweep that has none yet."""
        posted = {t.user_attrs.get(LAMBDA_INDEX) for t in self._mine()}
        for i, value in enumerate(self.lambdas):
            if i not in posted:
                attrs = {SWEEP: self.key, LAMBDA_INDEX: i, LAMBDA: value}
                self.study.enqueue_trial({}, user_attrs=attrs)

    def __iter__(self) -> Iterator[Claim]:
        """Claim the sweep's lambdas one at a time, until none is left to take."""
        while True:
            claim = self._take()
            if claim is None:
                return
            yield claim

    def _take(self) -> Claim | None:
        for t in sorted(self._mine((TrialState.WAITING,)), key=lambda t: t.number):
            if not self.storage.set_trial_state_values(trial_id(t), TrialState.RUNNING):
                continue  # another process took it first
            index = int(t.user_attrs[LAMBDA_INDEX])
            if not self._canonical(t.number, index):
                self.storage.set_trial_user_attr(trial_id(t), record.FAIL_REASON, DUPLICATE)
                self.storage.set_trial_state_values(trial_id(t), TrialState.FAIL)
                continue
            return Claim(trial_id(t), index, float(t.user_attrs[LAMBDA]))
        return None

    def _canonical(self, number: int, index: int) -> bool:
        same = [
            t.number
            for t in self._mine()
            if t.user_attrs.get(LAMBDA_INDEX) == index
            and t.user_attrs.get(record.FAIL_REASON) != DUPLICATE
        ]
        return min(same, default=number) >= number

    def done(self, claim: Claim, attrs: dict[str, Any]) -> None:
        """Record the claim's result and mark it COMPLETE."""
        for k, v in attrs.items():
            self.storage.set_trial_user_attr(claim.trial_id, k, v)
        self.storage.set_trial_state_values(claim.trial_id, TrialState.COMPLETE, [claim.value])

    def failed(self, claim: Claim, reason: str) -> None:
        """Record why the claim's search failed and mark it FAIL."""
        self.storage.set_trial_user_attr(claim.trial_id, record.FAIL_REASON, reason[:500])
        self.storage.set_trial_state_values(claim.trial_id, TrialState.FAIL)

    def states(self) -> dict[int, str]:
        """The state of each lambda index of the sweep (its canonical claim's)."""
        out: dict[int, str] = {}
        for t in sorted(self._mine(), key=lambda t: t.number):
            index = int(t.user_attrs[LAMBDA_INDEX])
            if index not in out and t.user_attrs.get(record.FAIL_REASON) != DUPLICATE:
                out[index] = t.state.name
        return out
