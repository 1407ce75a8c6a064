"""What the proxy (:mod:`storage._grpc.server`) and its clients (:mod:`storage._grpc.client`,
:mod:`storage._grpc.worker_client`) share, importable without grpcio: the name of the side
service beside Optuna's, the connect timeout, and the check that grpcio is installed."""

from __future__ import annotations

from storage._engine import missing_module

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
