"""Which storage URL to use, what it names, and how to show one without its secrets."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage._errors import StorageURLError

#: Environment variable that names the storage when ``--storage`` is not given.
STORAGE_ENV_VAR = "NAS_STUDY_STORAGE"
#: The embedded default: a SQLite file in the current directory.
DEFAULT_STORAGE_URL = "sqlite:///nas-study.db"

#: The database schemes that become an Optuna ``RDBStorage``, as SQLAlchemy backend names.
RDB_BACKENDS = ("sqlite", "postgresql", "mysql")
#: Every scheme ``open_storage`` accepts: the databases and Optuna's gRPC proxy.
SUPPORTED_BACKENDS = (*RDB_BACKENDS, "grpc")
#: The port of ``grpc://HOST`` when none is given (Optuna's default).
DEFAULT_GRPC_PORT = 13000

_SECRET_KEYS = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)
_MASK = "***"


def resolve_storage_url(flag: str | None = None) -> str:
    """The one rule: ``--storage`` beats ``$NAS_STUDY_STORAGE`` beats ``sqlite:///nas-study.db``.

    Example:
        >>> resolve_storage_url("postgresql://db/optuna")
        'postgresql://db/optuna'
    """
    if flag:
        return flag
    return os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL


def redact_url(url: str) -> str:
    """``url`` with its password, and any query value that looks like a secret, masked.

    Example:
        >>> redact_url("postgresql://alice:s3cret@db:5432/optuna?sslpassword=x&connect_timeout=5")
        'postgresql://alice:***@db:5432/optuna?connect_timeout=5&sslpassword=***'
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy understands: mask anything between "://user:" and "@".
        return re.sub(r"(://[^:/@]*:)[^@]*@", rf"\g<1>{_MASK}@", url)
    secret_keys = [k for k in parsed.query if _SECRET_KEYS.search(k)]
    if secret_keys:
        parsed = parsed.update_query_dict(dict.fromkeys(secret_keys, _MASK))
    # SQLAlchemy percent-encodes the mask inside the query string; show it plainly.
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", _MASK)


def redact_text(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` (password, secret query values) masked."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        found = re.search(r"://[^:/@]*:([^@]*)@", url)
        return text.replace(found.group(1), _MASK) if found and found.group(1) else text
    secrets = [parsed.password] if parsed.password else []
    secrets += [v for k, v in parsed.query.items() if isinstance(v, str) and _SECRET_KEYS.search(k)]
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), _MASK)
    return text


def parse_storage_url(url: str) -> URL:
    """Validate ``url`` and pick our default drivers (psycopg 3 for ``postgresql://``).

    ``grpc://HOST[:PORT]`` names an Optuna gRPC proxy; its port defaults to 13000.

    Raises:
        StorageURLError: not a URL, or a scheme other than sqlite, postgresql, mysql or grpc.

    Example:
        >>> parse_storage_url("postgresql://alice@db/optuna").drivername
        'postgresql+psycopg'
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageURLError(
            f"storage URL {redact_url(url)!r} is not a database URL (expected sqlite:///FILE, "
            "postgresql://USER@HOST/DB, mysql+pymysql://USER@HOST/DB or grpc://HOST:PORT)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StorageURLError(
            f"storage URL {redact_url(url)!r}: unknown scheme {parsed.drivername!r} "
            f"(supported: {', '.join(SUPPORTED_BACKENDS)})"
        )
    if backend == "grpc":
        if parsed.drivername != "grpc" or not parsed.host or parsed.database or parsed.query:
            raise StorageURLError(
                f"storage URL {redact_url(url)!r}: a gRPC proxy is named grpc://HOST:PORT, "
                "with no driver, database or options"
            )
        return parsed.set(port=parsed.port or DEFAULT_GRPC_PORT)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mysql":
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed
