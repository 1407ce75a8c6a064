"""The client of ``nas-study serve-storage``: Optuna's gRPC proxy client, plus heartbeats
and outage retries. Imported only once grpcio is known to be installed."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from storage._errors import StorageError
from storage._grpc.common import GRPC_CONNECT_TIMEOUT_S, HEARTBEAT_SERVICE
from storage._heartbeat import BeatLog
from storage._once import log_already_created, mark_template, new_token, tell_once
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S, OutageClock
from storage._retry_loop import RetryLoop, public_methods, retry_methods
from storage.optuna_compat import BaseHeartbeat, reconnect_grpc_proxy

_logger = logging.getLogger(__name__)
# The proxy is restarting or unreachable, or a call outlived its deadline.
_TRANSIENT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_NOT_RETRIED = frozenset(
    {"close", "wait_server_ready", "get_failed_trial_callback", "remove_session"}
)


class HeartbeatGrpcProxy(RetryLoop, optuna.storages.GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC proxy client, which also beats through the proxy and waits out its
    outages.

    * Heartbeats go to the proxy's ``nas_study.Heartbeat`` service (next to Optuna's own,
      whose wire protocol is unchanged), at the proxy's interval. The proxy fails stale
      trials and queues their copies itself, so this client never does.
    * A call that finds the proxy unavailable (restarting, unreachable) is retried on a
      fresh channel for up to ``outage_timeout`` seconds, with one warning per outage.
    * ``create_new_trial`` and ``set_trial_state_values`` are applied exactly once across
      such retries (see :mod:`storage._once`).
    * Any other gRPC failure becomes a one-line :class:`StorageError`.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        shown_url: str,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
    ) -> None:
        self._address = f"{host}:{port}"
        self._shown_url = shown_url
        self.outage = OutageClock(shown_url, outage_timeout)
        self.beats = BeatLog()
        self._heartbeat_interval: int | None = None
        self._grace_period: float | None = None
        self._batch_attrs = True  # until the proxy answers that it has no SetUserAttrs
        self._nas_proxy = True  # until the proxy answers that it has no nas_study service
        self._worker = False  # a worker's client: its trials beat from their creation
        super().__init__(host=host, port=port)
        self._beats = HeartbeatChannel(self._address)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        for key in ("_beats", "outage", "beats"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.outage = OutageClock(self._shown_url)
        self.beats = BeatLog()
        self._beats = HeartbeatChannel(self._address)

    def close(self) -> None:
        super().close()
        self._beats.close()

    def fetch_heartbeat_settings(self) -> None:
        """Ask the proxy for its heartbeat interval (none from Optuna's own proxy server)."""
        try:
            settings = self._beats.settings()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise ConnectionError(str(exc.details())) from None
            _logger.warning(
                "the gRPC storage proxy at %s records no heartbeats (it is not "
                "`nas-study serve-storage`): the trials of killed workers stay RUNNING",
                self._address,
            )
            settings = {}
            self._nas_proxy = False
        interval = settings.get("interval")
        self._heartbeat_interval = int(interval) if interval else None
        grace = settings.get("grace_period")
        self._grace_period = float(grace) if grace else None

    def record_heartbeat(self, trial_id: int) -> None:
        """One beat through the proxy; skipped while the proxy is unreachable."""
        assert self._heartbeat_interval is not None
        try:
            self._beats.record(trial_id, timeout=max(self._heartbeat_interval, 5))
        except grpc.RpcError as exc:
            if exc.code() not in _TRANSIENT_CODES:
                raise
            self.outage.failed("record_heartbeat", str(exc.details()))
            self._beats.reconnect()
        except ValueError:
            pass  # "closed channel": the storage was closed; this thread ends with the trial
        else:
            self.outage.succeeded()
            self.beats.beat(trial_id)

    def surely_alive(self, trial_id: int) -> bool:
        """Whether this process's beats prove that the proxy cannot have declared
        ``trial_id`` dead (see :class:`BeatLog`); False means "read the trial to know"."""
        if self._grace_period is None or self._heartbeat_interval is None:
            return False
        return self.beats.surely_alive(trial_id, self._grace_period, self._heartbeat_interval)

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes in one call (the proxy's ``SetUserAttrs``), or one call
        each where the proxy is Optuna's own server, which has no such call."""
        base = optuna.storages.GrpcStorageProxy

        def attempt() -> None:
            if not self._batch_attrs:
                for key, value in attrs.items():
                    base.set_trial_user_attr(self, trial_id, key, value)
                return
            try:
                self._beats.set_user_attrs(trial_id, attrs)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise UpdateFinishedTrialError(str(exc.details())) from None
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise KeyError(str(exc.details())) from None
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    if exc.code() in _TRANSIENT_CODES:
                        self._beats.reconnect()
                    raise
                self._batch_attrs = False
                attempt()

        self._call_with_retry("set_trial_user_attrs", attempt)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []  # the proxy fails stale trials itself, on its own clock

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Optuna's creation, exactly once across retries where the proxy is nas-study's:
        the template carries a token (and, for a worker, the worker mark) that the proxy's
        storage takes off and stores in its own table (:mod:`storage._once`)."""
        base = optuna.storages.GrpcStorageProxy
        if not self._nas_proxy:
            return int(
                self._call_with_retry(
                    "create_new_trial",
                    lambda: base.create_new_trial(self, study_id, template_trial),
                )
            )
        token = new_token()
        template = mark_template(template_trial, token, worker=self._worker)

        def already_created() -> tuple[bool, Any]:
            found = self._beats.trial_by_token(token)
            if found is None:
                return False, None
            log_already_created(self._shown_url, found)
            return True, found

        return int(
            self._call_with_retry(
                "create_new_trial",
                lambda: base.create_new_trial(self, study_id, template),
                before_retry=already_created,
            )
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        base = optuna.storages.GrpcStorageProxy
        if state == TrialState.RUNNING and values is None and self._worker and self._nas_proxy:
            # A worker's claim: the proxy records its first beat in the same transaction.
            return bool(self._call_with_retry("claim_trial", lambda: self._beats.claim(trial_id)))
        attempt = tell_once(
            lambda: base.set_trial_state_values(self, trial_id, state, values),
            lambda: base.get_trial(self, trial_id),
            state,
            values,
        )
        return bool(self._call_with_retry("set_trial_state_values", attempt))

    def _reconnect(self) -> None:
        # A channel that lost its server waits out gRPC's reconnect backoff.
        reconnect_grpc_proxy(self)

    def _failed(self, name: str, exc: Exception) -> float:
        if not isinstance(exc, grpc.RpcError):
            raise exc
        details = str(exc.details() or exc.code()).strip().splitlines()[0]
        if exc.code() not in _TRANSIENT_CODES:
            raise StorageError(
                f"the gRPC storage proxy at {self._address} (storage {self._shown_url}) "
                f"failed {name}: {details}"
            ) from None
        left = self.outage.failed(name, details)
        if left <= 0:
            raise StorageError(
                f"the gRPC storage proxy at {self._address} (storage {self._shown_url}) has "
                f"been unreachable for {self.outage.timeout:g} s (--outage-timeout), giving "
                f"up on {name}: {details}"
            ) from None
        return left


class HeartbeatChannel:
    """The client side of the proxy's ``nas_study.Heartbeat`` service (JSON over gRPC).

    Shared by every heartbeat thread of the process; a reconnect swaps in a new channel
    before closing the old one, so no beat meets a closed channel.
    """

    def __init__(self, address: str) -> None:
        self._address = address
        self._lock = threading.Lock()
        self._channel, self._record, self._settings = self._open()

    def _open(self) -> tuple[grpc.Channel, Any, Any]:
        channel = grpc.insecure_channel(self._address)

        def method(name: str) -> Any:
            return channel.unary_unary(
                f"/{HEARTBEAT_SERVICE}/{name}",
                request_serializer=_dump,
                response_deserializer=_load,
            )

        self._set_user_attrs = method("SetUserAttrs")
        self._write_trial = method("WriteTrial")
        self._trial_by_token = method("TrialByToken")
        self._claim = method("Claim")
        return channel, method("Record"), method("Settings")

    def record(self, trial_id: int, *, timeout: float) -> None:
        self._record({"trial_id": trial_id}, timeout=timeout)

    def set_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        self._set_user_attrs({"trial_id": trial_id, "attrs": attrs})

    def write_trial(self, message: dict[str, Any]) -> bool:
        return bool(self._write_trial(message)["stored"])

    def trial_by_token(self, token: str) -> int | None:
        found = self._trial_by_token({"token": token})["trial_id"]
        return None if found is None else int(found)

    def claim(self, trial_id: int) -> bool:
        try:
            return bool(self._claim({"trial_id": trial_id})["claimed"])
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise UpdateFinishedTrialError(str(exc.details())) from None
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise KeyError(str(exc.details())) from None
            raise

    def settings(self) -> dict[str, Any]:
        return dict(self._settings({}, timeout=GRPC_CONNECT_TIMEOUT_S))

    def reconnect(self) -> None:
        with self._lock:
            old = self._channel
            self._channel, self._record, self._settings = self._open()
        # A beat still in flight on the old channel fails as UNAVAILABLE and is skipped.
        threading.Timer(GRPC_CONNECT_TIMEOUT_S, old.close).start()

    def close(self) -> None:
        self._channel.close()


def _dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _load(data: bytes) -> dict[str, Any]:
    loaded = json.loads(data or b"{}")
    assert isinstance(loaded, dict)
    return loaded


retry_methods(
    HeartbeatGrpcProxy,
    optuna.storages.GrpcStorageProxy,
    public_methods(optuna.storages.GrpcStorageProxy, _NOT_RETRIED),
)
