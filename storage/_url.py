"""Which storage URL to use, and how to show one without its secrets."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: Environment variable that names the storage when ``--storage`` is not given.
STORAGE_ENV_VAR = "NAS_STUDY_STORAGE"
#: The embedded default: a SQLite file in the current directory.
DEFAULT_STORAGE_URL = "sqlite:///nas-study.db"

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
