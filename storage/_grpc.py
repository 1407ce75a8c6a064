"""Optuna's gRPC storage proxy: one server holds the database connections for a fleet."""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING

import optuna
from sqlalchemy.engine import URL

from storage._engine import missing_module
from storage._errors import StorageError
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S
from storage._url import redact_url

if TYPE_CHECKING:
    from storage._grpc_writes import BufferingGrpcProxy

_logger = logging.getLogger(__name__)
#: The gRPC service, beside Optuna's ``StorageService``, through which workers beat.
HEARTBEAT_SERVICE = "nas_study.Heartbeat"

#: Seconds ``open_storage("grpc://...")`` waits for the proxy to answer.
GRPC_CONNECT_TIMEOUT_S = 5.0


def require_grpc(url: str) -> None:
    """Raise :class:`StorageError` unless grpcio and protobuf are installed."""
    try:
        import google.protobuf  # noqa: F401
        import grpc  # noqa: F401
    except ModuleNotFoundError as exc:
        raise missing_module(url, "grpc", exc.name) from None


def grpc_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    from storage._grpc_writes import BufferingGrpcProxy  # imports grpc

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
