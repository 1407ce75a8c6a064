"""``serve_storage``: run Optuna's gRPC proxy in front of a database."""

from __future__ import annotations

import logging
import warnings
from concurrent.futures import ThreadPoolExecutor

import optuna

from storage._errors import StorageError, StorageURLError
from storage._grpc import grpc_address, require_grpc
from storage._heartbeat import DEFAULT_HEARTBEAT, HeartbeatSettings
from storage._open import open_rdb_storage
from storage._url import DEFAULT_GRPC_PORT, parse_storage_url, redact_url

_logger = logging.getLogger(__name__)

#: Threads answering gRPC calls; the database pool holds as many connections.
SERVER_THREADS = 10


def serve_storage(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_GRPC_PORT,
    heartbeat: HeartbeatSettings | None = DEFAULT_HEARTBEAT,
) -> None:
    """Serve the database at ``url`` to ``grpc://HOST:PORT`` clients until killed.

    Workers then open ``grpc://HOST:PORT`` instead of the database, so a large fleet shares
    this process's few pooled connections rather than holding its own. Blocks forever.

    Args:
        url: The database to serve (sqlite, postgresql or mysql).
        host: Address to listen on; ``0.0.0.0`` for every interface.
        port: Port to listen on.
        heartbeat: Heartbeat settings of the served storage (see :func:`open_storage`).

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
    storage = open_rdb_storage(url, parsed, heartbeat=heartbeat, pool_size=SERVER_THREADS)
    address = grpc_address(host, port)
    _logger.info("starting the gRPC proxy for storage %s on grpc://%s", redact_url(url), address)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Optuna's cache keeps finished trials in memory; the database still decides.
            optuna.storages.run_grpc_proxy_server(
                optuna.storages.get_storage(storage),
                host=host,
                port=port,
                thread_pool=ThreadPoolExecutor(max_workers=SERVER_THREADS),
            )
    except RuntimeError as exc:
        if "bind" not in str(exc).lower():
            raise
        raise StorageError(
            f"cannot listen on {address} to serve storage {redact_url(url)}: "
            "the port is in use or the address is not this machine's"
        ) from None
    finally:
        storage.engine.dispose()
