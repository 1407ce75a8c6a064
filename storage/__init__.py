"""Where studies live: resolving a storage URL, hiding its secrets, opening the storage.

Nothing outside this package builds an Optuna storage object.

Example:
    >>> from storage import HeartbeatSettings, open_storage
    >>> s = open_storage("sqlite:///:memory:", heartbeat=HeartbeatSettings(interval=30))
"""

from __future__ import annotations

from storage._check import StorageStatus, check_storage
from storage._errors import (
    MultiHostSQLiteWarning,
    StorageError,
    StorageUnavailableError,
    StorageURLError,
)
from storage._grpc.server import serve_storage
from storage._heartbeat import DEFAULT_HEARTBEAT, HeartbeatSettings, RequeueStaleTrial
from storage._open import open_storage
from storage._outage import DEFAULT_OUTAGE_TIMEOUT_S
from storage._rdb.worker_cache import worker_cached_storage
from storage._url import (
    DEFAULT_GRPC_PORT,
    DEFAULT_STORAGE_URL,
    STORAGE_ENV_VAR,
    SUPPORTED_BACKENDS,
    parse_storage_url,
    redact_text,
    redact_url,
    resolve_storage_url,
)
from storage._writes import DirectTrialWriter, TrialWriter, trial_writer

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HEARTBEAT",
    "DEFAULT_OUTAGE_TIMEOUT_S",
    "DEFAULT_STORAGE_URL",
    "STORAGE_ENV_VAR",
    "SUPPORTED_BACKENDS",
    "DirectTrialWriter",
    "HeartbeatSettings",
    "MultiHostSQLiteWarning",
    "RequeueStaleTrial",
    "StorageError",
    "StorageStatus",
    "StorageURLError",
    "StorageUnavailableError",
    "TrialWriter",
    "check_storage",
    "open_storage",
    "parse_storage_url",
    "redact_text",
    "redact_url",
    "resolve_storage_url",
    "serve_storage",
    "trial_writer",
    "worker_cached_storage",
]
