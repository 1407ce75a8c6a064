"""Where studies live: resolving a storage URL, hiding its secrets, opening the storage.

Nothing outside this package builds an Optuna storage object.
"""

from __future__ import annotations

from storage._open import (
    SUPPORTED_BACKENDS,
    StorageError,
    StorageURLError,
    open_storage,
    parse_storage_url,
)
from storage._url import (
    DEFAULT_STORAGE_URL,
    STORAGE_ENV_VAR,
    redact_text,
    redact_url,
    resolve_storage_url,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "STORAGE_ENV_VAR",
    "SUPPORTED_BACKENDS",
    "StorageError",
    "StorageURLError",
    "open_storage",
    "parse_storage_url",
    "redact_text",
    "redact_url",
    "resolve_storage_url",
]
