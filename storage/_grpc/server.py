"""``serve_storage``: Optuna's gRPC proxy in front of a database, with heartbeats.

Optuna's proxy server speaks Optuna's wire protocol, unchanged. Beside it, the same server
answers a small ``nas_study.Heartbeat`` service (JSON messages, so no generated code):
``Settings`` tells a client the interval to beat at, ``Record`` records one beat. And this
process, which holds the database, fails the stale trials of every study and queues their
copies, every heartbeat interval, so a worker killed behind the proxy loses nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import optuna

from storage._errors import StorageError, StorageURLError
from storage._grpc.common import HEARTBEAT_SERVICE, grpc_address, require_grpc
from storage._grpc.proxy_cache import ProxyCachedStorage, proxy_cached_storage
from storage._heartbeat import DEFAULT_HEARTBEAT, HeartbeatSettings
from storage._open import open_rdb_storage, wait_for_storage
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S
from storage._trial_writes import writes_from_json
from storage._url import DEFAULT_GRPC_PORT, parse_storage_url, redact_url
from storage.optuna_compat import make_grpc_server

if TYPE_CHECKING:
    import grpc

_logger = logging.getLogger(__name__)

#: Threads answering gRPC calls; the database pool holds as many connections.
SERVER_THREADS = 10


def serve_storage(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_GRPC_PORT,
    heartbeat: HeartbeatSettings | None = DEFAULT_HEARTBEAT,
    outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
    ready: threading.Event | None = None,
) -> None:
    """Serve the database at ``url`` to ``grpc://HOST:PORT`` clients until killed.

    Workers then open ``grpc://HOST:PORT`` instead of the database, so a large fleet shares
    this process's few pooled connections rather than holding its own. Blocks forever.

    Args:
        url: The database to serve (sqlite, postgresql or mysql).
        host: Address to listen on; ``0.0.0.0`` for every interface.
        port: Port to listen on.
        heartbeat: Heartbeat settings of the served storage (see :func:`open_storage`):
            clients beat at its interval, and this process fails the trials that have had
            no beat for its grace period, and queues their copies. ``None``: no heartbeats.
        outage_timeout: Seconds a database outage is waited out, at start-up too.
        ready: Set once the server listens (for tests and embedding).

    Raises:
        StorageURLError: ``url`` is malformed, or is itself a ``grpc://`` proxy.
        StorageError: the database cannot be opened, grpcio is missing, or the address
            cannot be listened on.

    Example:
        ``serve_storage("postgresql://optuna@db/optuna", host="0.0.0.0", port=13000)``
    """
    parsed = parse_storage_url(url)
    if parsed.get_backend_name() == "grpc":
        raise StorageURLError(
            f"storage URL {redact_url(url)!r}: serve a database, not another gRPC proxy"
        )
    require_grpc(url)
    storage = wait_for_storage(
        lambda: open_rdb_storage(
            url,
            parsed,
            heartbeat=heartbeat,
            pool_size=SERVER_THREADS,
            outage_timeout=outage_timeout,
        ),
        url,
        timeout=outage_timeout,
        wait=True,
    )
    address = grpc_address(host, port)
    _logger.info("starting the gRPC proxy for storage %s on grpc://%s", redact_url(url), address)
    # Optuna's cache keeps finished trials in memory; the database still decides.
    cached = proxy_cached_storage(storage)
    stop = threading.Event()
    try:
        try:
            server = make_grpc_server(
                cached, host, port, ThreadPoolExecutor(max_workers=SERVER_THREADS)
            )
        except RuntimeError as exc:
            if "bind" not in str(exc).lower():
                raise
            raise StorageError(
                f"cannot listen on {address} to serve storage {redact_url(url)}: "
                "the port is in use or the address is not this machine's"
            ) from None
        server.add_generic_rpc_handlers((_heartbeat_service(cached, heartbeat),))
        server.start()
        # Workers could not beat through the proxy while it was down: their grace period
        # counts from now, when they can reach it again.
        storage.outage.connected_since = time.monotonic()
        if heartbeat is not None:
            threading.Thread(
                target=fail_stale_trials_forever,
                args=(cached, heartbeat.interval, stop),
                name="stale-trials",
                daemon=True,
            ).start()
        _logger.info("listening on grpc://%s", address)
        if ready is not None:
            ready.set()
        server.wait_for_termination()
    finally:
        stop.set()
        storage.engine.dispose()


def fail_stale_trials_forever(
    storage: optuna.storages.BaseStorage, interval: float, stop: threading.Event
) -> None:
    """Every ``interval`` seconds until ``stop``, fail the stale trials of every study in
    ``storage`` and queue their copies (the storage's heartbeat callback)."""
    studies: dict[str, optuna.Study] = {}
    last_error = ""
    while not stop.wait(interval):
        try:
            for frozen in storage.get_all_studies():
                study = studies.get(frozen.study_name)
                if study is None:
                    study = optuna.Study(study_name=frozen.study_name, storage=storage)
                    studies[frozen.study_name] = study
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
            last_error = ""
        except Exception as exc:  # a study deleted meanwhile, the database gone for good
            # One line per kind of failure, not one per interval; the next round retries.
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if message != last_error:
                _logger.warning("failing stale trials: %s", message)
            last_error = message
            studies.clear()


def _heartbeat_service(
    storage: ProxyCachedStorage, heartbeat: HeartbeatSettings | None
) -> grpc.GenericRpcHandler:
    import grpc

    def settings(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        if heartbeat is None:
            return {}
        grace = heartbeat.grace_period or 2 * heartbeat.interval
        return {"interval": heartbeat.interval, "grace_period": grace}

    def record(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        if heartbeat is not None:
            storage.record_heartbeat(int(request["trial_id"]))
        return {}

    def set_user_attrs(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        # A trial's user attributes in one call and one transaction, where Optuna's
        # protocol takes one call (and one transaction) per key.
        try:
            storage.rdb.set_trial_user_attrs(int(request["trial_id"]), dict(request["attrs"]))
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return {}

    def write_trial(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        # A worker's buffered writes to its trial (and its end), in one call and one
        # transaction, where Optuna's protocol takes one call per parameter, attribute and
        # value (storage._grpc.worker_client).
        writes, state, values = writes_from_json(request)
        # Through the proxy's cache, which knows the study's distributions.
        try:
            stored = storage.write_trial(int(request["trial_id"]), writes, state, values)
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ValueError as exc:  # a distribution the study's trials contradict
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return {"stored": bool(stored)}

    def trial_by_token(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        # A client's look-up of the trial its creation made, when the answer was lost.
        return {"trial_id": storage.rdb.trial_by_token(str(request["token"]))}

    def claim(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        # A worker takes a WAITING trial and beats for it, in one transaction.
        try:
            claimed = storage.rdb.claim_trial(int(request["trial_id"]))
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return {"claimed": bool(claimed)}

    def handler(method: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=lambda data: json.loads(data or b"{}"),
            response_serializer=lambda message: json.dumps(message).encode(),
        )

    return grpc.method_handlers_generic_handler(
        HEARTBEAT_SERVICE,
        {
            "Settings": handler(settings),
            "Record": handler(record),
            "SetUserAttrs": handler(set_user_attrs),
            "WriteTrial": handler(write_trial),
            "TrialByToken": handler(trial_by_token),
            "Claim": handler(claim),
        },
    )
