"""The one-line form of an error, shared by every message this package writes."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``str(exc)``, else the exception's type name.

    Example:
        >>> first_line(ValueError("bad value\\nmore detail"))
        'bad value'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
