"""The one declared interface for a trial's writes, and the storages that keep them.

A worker's storage (:class:`storage._rdb.worker_cache.WorkerCachedStorage` on a database,
:class:`storage._grpc.worker_client.BufferingGrpcProxy` through the proxy) stores a trial's writes
in a few transactions instead of one per write. The worker reaches that through
:class:`TrialWriter`, by name: following a write from ``nas_objectives/objective.py`` to its
SQL statement passes through ``Lifeline.set_user_attrs`` / ``Lifeline.publish``,
``TrialWriter.set_trial_user_attrs`` / ``TrialWriter.publish``, and
``storage._trial_writes.write_trial``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import optuna


@runtime_checkable
class TrialWriter(Protocol):
    """How a worker writes the trials it runs."""

    def keep_writes(self, trial_id: int) -> None:
        """Keep the writes to ``trial_id`` (a RUNNING trial this process runs) until it is
        published, reports an intermediate value, or ends."""

    def publish(self, trial_id: int) -> None:
        """Store the trial's kept writes now, in one transaction."""

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Set several user attributes at once (kept, if the trial's writes are)."""

    def surely_alive(self, trial_id: int) -> bool:
        """Whether this process's heartbeats prove nobody has declared ``trial_id`` dead,
        so a write need not read the trial first; False means "read it to know"."""


class DirectTrialWriter:
    """:class:`TrialWriter` for any other storage: every write is stored at once."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage

    def keep_writes(self, trial_id: int) -> None:
        """Nothing to keep: this storage stores each write at once."""

    def publish(self, trial_id: int) -> None:
        """Nothing to store: every write is stored already."""

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """One write per attribute, as Optuna's own calls make them."""
        for key, value in attrs.items():
            self._storage.set_trial_user_attr(trial_id, key, value)

    def surely_alive(self, trial_id: int) -> bool:
        """Nothing proves it here: read the trial to know."""
        return False


def trial_writer(storage: optuna.storages.BaseStorage) -> TrialWriter:
    """The :class:`TrialWriter` of ``storage`` (a study's storage): itself where it keeps
    trial writes, else a :class:`DirectTrialWriter`."""
    if isinstance(storage, TrialWriter):
        return storage
    return DirectTrialWriter(storage)
