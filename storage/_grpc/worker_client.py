"""A worker's trial writes through the gRPC proxy: three calls a trial, not one per write.

Optuna's proxy protocol takes one call, and on the proxy one transaction, per parameter,
attribute and intermediate value: about 16 for a digits trial, each a round trip and a
share of the proxy's CPU, which is what caps the trials a proxy serves each second.
A worker's client here keeps the writes to the trials it runs and sends them together in
one ``WriteTrial`` call of the proxy's ``nas_study.Heartbeat`` service, which stores them
in one transaction (:func:`storage._trial_writes.write_trial`), at the same three points
as a worker on a database (:class:`storage._rdb.worker_cache.WorkerCachedStorage`):

* when the trial is published (the objective does so once its architecture is built);
* at each intermediate value (other workers' pruners read those);
* with its end: the last writes and the state and values in one call.

``get_trial`` of a trial this process runs is read from the proxy with the pending writes
applied. A parameter whose distribution the study contradicts is refused when the writes
are sent, not when it is set. Against a proxy without ``WriteTrial`` (Optuna's own server,
an older nas-study) every write is sent as Optuna sends it.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Container, Sequence
from typing import Any

import grpc
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL

from storage._errors import StorageError
from storage._grpc.client import _TRANSIENT_CODES, HeartbeatGrpcProxy
from storage._grpc.common import GRPC_CONNECT_TIMEOUT_S, grpc_address, require_grpc
from storage._once import tell_once
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S
from storage._trial_writes import (
    KeptWrites,
    TrialWrites,
    apply_writes,
    store_kept,
    with_pending_writes,
    writes_to_json,
)
from storage._url import redact_url

_logger = logging.getLogger(__name__)


class BufferingGrpcProxy(HeartbeatGrpcProxy):
    """:class:`HeartbeatGrpcProxy` that, once :meth:`keep_trial_writes` is called (a
    worker's study), keeps the writes to the trials this process runs until they are
    published, reach an intermediate value, or end."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._has_write_call = True  # until the proxy answers that it has no WriteTrial
        self._kept: dict[int, KeptWrites] = {}
        self._kept_lock = threading.Lock()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_kept_lock", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._kept_lock = threading.Lock()

    def keep_trial_writes(self) -> BufferingGrpcProxy:
        """Make this a worker's client (its trials beat from their creation, and it keeps
        the writes of the trials it declares with :meth:`keep_writes`); returns ``self``."""
        self._worker = True
        return self

    def keep_writes(self, trial_id: int) -> None:
        """Keep the writes to ``trial_id``, a trial this worker runs, until it is published,
        reports an intermediate value, or ends."""
        with self._kept_lock:
            self._kept.setdefault(trial_id, KeptWrites())

    def _own(self, trial_id: int) -> KeptWrites | None:
        with self._kept_lock:
            return self._kept.get(trial_id)

    def _ended(self, trial_id: int) -> None:
        with self._kept_lock:
            self._kept.pop(trial_id, None)

    # Trials this process runs: created running, or claimed from the queue.

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        kept = self._own(trial_id)
        if kept is None or not state.is_finished():
            done = super().set_trial_state_values(trial_id, state, values)
            if state.is_finished():
                self._ended(trial_id)
            return done
        try:
            return self._send(trial_id, kept.pending, state, values)
        finally:
            self._ended(trial_id)

    def publish(self, trial_id: int) -> None:
        """Send the trial's pending writes now, in one call."""
        self._flush(trial_id, TrialWrites())

    def _flush(self, trial_id: int, extra: TrialWrites) -> None:
        store_kept(
            self._own(trial_id),
            extra,
            self._kept_lock,
            lambda writes: self._send(trial_id, writes),
            lambda: self._ended(trial_id),
        )

    def _send(
        self,
        trial_id: int,
        writes: TrialWrites,
        state: TrialState | None = None,
        values: Sequence[float] | None = None,
    ) -> bool:
        """``writes`` (and the end) in one ``WriteTrial`` call, retried through outages; a
        retried end that had been stored is success, as for ``set_trial_state_values``."""
        message = {"trial_id": trial_id, **writes_to_json(writes, state, values)}

        def call() -> bool:
            if not self._has_write_call:  # Optuna's calls, one by one
                return self._send_one_by_one(trial_id, writes, state, values)
            try:
                return self._beats.write_trial(message)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    raise UpdateFinishedTrialError(str(exc.details())) from None
                if code == grpc.StatusCode.NOT_FOUND:
                    raise KeyError(str(exc.details())) from None
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise ValueError(str(exc.details())) from None
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self._has_write_call = False
                    return self._send_one_by_one(trial_id, writes, state, values)
                if code in _TRANSIENT_CODES:
                    self._beats.reconnect()
                raise

        base = optuna.storages.GrpcStorageProxy
        attempt = call
        if state is not None:
            attempt = tell_once(call, lambda: base.get_trial(self, trial_id), state, values)
        return bool(self._call_with_retry("write_trial", attempt))

    def _send_one_by_one(
        self,
        trial_id: int,
        writes: TrialWrites,
        state: TrialState | None,
        values: Sequence[float] | None,
    ) -> bool:
        base = optuna.storages.GrpcStorageProxy
        stored = base.get_trial(self, trial_id)
        for name, (value, dist, _) in writes.params.items():
            if name not in stored.params:
                base.set_trial_param(self, trial_id, name, value, dist)
        if writes.user_attrs:
            HeartbeatGrpcProxy.set_trial_user_attrs(self, trial_id, writes.user_attrs)
        for key, value in writes.system_attrs.items():
            base.set_trial_system_attr(self, trial_id, key, value)
        for step, inter in writes.intermediate_values.items():
            base.set_trial_intermediate_value(self, trial_id, step, inter)
        if state is None:
            return True
        return bool(base.set_trial_state_values(self, trial_id, state, values))

    # The writes kept.

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._kept_lock:
            kept = self._kept.get(trial_id)
            if kept is not None:
                kept.pending.params[param_name] = (param_value_internal, distribution, None)
                return
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.set_trial_user_attrs(trial_id, {key: value})

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        with self._kept_lock:
            kept = self._kept.get(trial_id)
            if kept is not None:
                kept.pending.user_attrs.update(attrs)
                return
        super().set_trial_user_attrs(trial_id, attrs)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._kept_lock:
            kept = self._kept.get(trial_id)
            if kept is not None:
                kept.pending.system_attrs[key] = value
                return
        super().set_trial_system_attr(trial_id, key, value)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        if self._own(trial_id) is None:
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
            return
        self._flush(trial_id, TrialWrites(intermediate_values={step: intermediate_value}))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """The study's trials, those this process runs with their kept writes applied."""
        trials = super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        with self._kept_lock:
            pending = {i: k.pending for i, k in self._kept.items() if k.pending}
        return with_pending_writes(trials, pending)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial = super().get_trial(trial_id)
        with self._kept_lock:
            kept = self._kept.get(trial_id)
            if kept is not None and kept.pending and trial.state == TrialState.RUNNING:
                apply_writes(trial, kept.pending)
        return trial


def open_grpc_proxy(
    url: str,
    parsed: URL,
    *,
    outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
    wait: bool = False,
) -> BufferingGrpcProxy:
    """A client of the proxy at ``grpc://HOST:PORT``, once the proxy has answered.

    Without ``wait`` the proxy must answer within :data:`GRPC_CONNECT_TIMEOUT_S` seconds;
    with it (a worker), up to ``outage_timeout`` seconds, logged once.

    Raises:
        StorageError: grpcio is missing, or no proxy answers in time.
    """
    require_grpc(url)
    if parsed.username or parsed.password:
        raise StorageError(
            f"storage {redact_url(url)}: the gRPC proxy has no authentication; "
            "remove USER:PASSWORD@ from the URL"
        )
    assert parsed.host is not None and parsed.port is not None  # parse_storage_url checked
    address = grpc_address(parsed.host, parsed.port)
    # Optuna joins host and port with a colon, so an IPv6 host needs its brackets.
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = BufferingGrpcProxy(
            host=host, port=parsed.port, shown_url=redact_url(url), outage_timeout=outage_timeout
        )
    # A proxy may answer and then go away before its heartbeat settings are read (killed
    # or restarting): a worker keeps trying, the whole sequence, until its deadline.
    limit = outage_timeout if wait else min(GRPC_CONNECT_TIMEOUT_S, outage_timeout)
    deadline = time.monotonic() + limit
    warned = False
    while True:
        try:
            left = deadline - time.monotonic()
            proxy.wait_server_ready(timeout=max(min(GRPC_CONNECT_TIMEOUT_S, left), 0.1))
            proxy.fetch_heartbeat_settings()
            return proxy
        except ConnectionError:
            if wait and not warned:
                _logger.warning(
                    "cannot reach the gRPC storage proxy at %s yet; waiting up to %g s for it",
                    address,
                    outage_timeout,
                )
                warned = True
            if not wait or time.monotonic() >= deadline:
                proxy.close()
                waited = outage_timeout if wait else GRPC_CONNECT_TIMEOUT_S
                raise StorageError(
                    f"cannot reach the gRPC storage proxy at {address} (storage "
                    f"{redact_url(url)}) within {waited:g} s: is `nas-study serve-storage` "
                    "running there?"
                ) from None
