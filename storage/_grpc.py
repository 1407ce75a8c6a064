"""Optuna's gRPC storage proxy: one server holds the database connections for a fleet."""

from __future__ import annotations

import warnings

import optuna
from sqlalchemy.engine import URL

from storage._engine import missing_module
from storage._errors import StorageError
from storage._url import redact_url

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


def open_grpc_proxy(url: str, parsed: URL) -> optuna.storages.BaseStorage:
    """A client of the proxy at ``grpc://HOST:PORT``, once the proxy has answered.

    Raises:
        StorageError: grpcio is missing, or no proxy answers within
            :data:`GRPC_CONNECT_TIMEOUT_S` seconds.
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
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=parsed.port)
    try:
        proxy.wait_server_ready(timeout=GRPC_CONNECT_TIMEOUT_S)
    except ConnectionError:
        proxy.close()
        raise StorageError(
            f"cannot reach the gRPC storage proxy at {address} (storage {redact_url(url)}) "
            f"within {GRPC_CONNECT_TIMEOUT_S:g} s: is `nas-study serve-storage` running there?"
        ) from None
    return proxy
