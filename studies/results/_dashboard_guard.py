"""The guard in front of optuna-dashboard: an access token (header or cookie), loopback
only without one, read-only mode, and no changes posted from another site.

optuna-dashboard has no login and its API can delete studies, hence all of this.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import optuna

from studies.errors import StudyRunError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Environment variable holding the access token (kept out of ``ps``, unlike ``--token``).
TOKEN_ENV_VAR = "NAS_STUDY_DASHBOARD_TOKEN"


#: Shortest token accepted: guessing one must be hopeless.
MIN_TOKEN_LENGTH = 16


_TOKEN_HINT = 'make one with: python -c "import secrets; print(secrets.token_urlsafe())"'


# Characters that pass unchanged through a URL query and a cookie value.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")


_SAFE_METHODS = frozenset({"GET", "HEAD"})


_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 possibly in brackets) is loopback:
    ``localhost``, 127.0.0.0/8 or ``::1``."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    """Return ``token`` if it is long enough and URL/cookie safe, else raise
    :class:`StudyRunError` with a hint on how to make one."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise StudyRunError(
            f"dashboard token is {len(token)} characters, at least {MIN_TOKEN_LENGTH} needed; "
            + _TOKEN_HINT
        )
    if not _TOKEN_CHARS.fullmatch(token):
        raise StudyRunError(
            "dashboard token may hold only letters, digits and . _ ~ -; " + _TOKEN_HINT
        )
    return token


def _cookie_name(token: str) -> str:
    # One name per token, so dashboards on other ports of the same host (cookies ignore the
    # port) do not overwrite each other's cookie.
    return "nas_study_dashboard_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _reply(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [body]


def _same_origin(environ: WSGIEnvironment) -> bool:
    """False for a request a browser sent on behalf of another site (its ``Origin`` differs
    from the ``Host`` it was sent to): the classic CSRF form post."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin:
        return True  # not a browser's cross-site request (curl, same-origin GET, ...)
    return urlsplit(origin).netloc.lower() == environ.get("HTTP_HOST", "").lower()


def _host_name(environ: WSGIEnvironment) -> str:
    # No Host header: not a browser, so not a DNS-rebinding page either.
    try:
        return urlsplit("//" + environ.get("HTTP_HOST", "localhost")).hostname or ""
    except ValueError:  # e.g. an unclosed "[::1"
        return ""


def _redirect_path(environ: WSGIEnvironment) -> str:
    """The request's own path, quoted again (WSGI hands it over decoded) and with one
    leading slash, so that it can neither break the header nor point at another host."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return "/" + quote(path.encode("latin-1").lstrip(b"/"), safe="/:@!$&'()*+,;=-._~")


def dashboard_app(
    storage: optuna.storages.BaseStorage,
    *,
    token: str | None = None,
    read_only: bool = False,
) -> WSGIApplication:
    """optuna-dashboard's WSGI app on ``storage``, guarded.

    * With ``token``, every request must carry it: either ``Authorization: Bearer TOKEN``
      or the cookie that a ``?token=TOKEN`` link sets (HttpOnly, SameSite=Strict) before it
      redirects to the same URL without the token. Anything else gets 401 and no content.
    * Without a token, only requests addressed to a loopback ``Host`` are served, so a web
      page cannot reach the dashboard through DNS rebinding.
    * Changes (any method but GET and HEAD) from another site's page are refused (403),
      and with ``read_only`` all of them are.

    Args:
        storage: The study storage, from :func:`storage.open_storage`.
        token: The access token (see :func:`check_token`), or ``None`` for none.
        read_only: Refuse every request that could change the storage.

    Example:
        >>> from storage import open_storage
        >>> app = dashboard_app(open_storage("sqlite:///:memory:"), read_only=True)
    """
    import optuna_dashboard  # here, not at the top: every nas-study command imports this module

    inner = optuna_dashboard.wsgi(storage)
    cookie = _cookie_name(token) if token is not None else ""
    expected = token.encode() if token is not None else b""

    def matches(given: str) -> bool:
        return hmac.compare_digest(given.encode(), expected)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if token is None:
            if not is_loopback(_host_name(environ)):
                return _reply(start_response, "403 Forbidden", "forbidden: not a loopback host")
        else:
            query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            given = [v for k, v in query if k == "token"]
            if given:
                if method not in _SAFE_METHODS or not matches(given[-1]):
                    return _reply(start_response, "401 Unauthorized", "unauthorized")
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = _redirect_path(environ)
                secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
                return _reply(
                    start_response,
                    "303 See Other",
                    "signed in",
                    [
                        ("Location", location + (f"?{rest}" if rest else "")),
                        (
                            "Set-Cookie",
                            f"{cookie}={token}; Path=/; HttpOnly; SameSite=Strict{secure}",
                        ),
                    ],
                )
            if not _authorized(environ, cookie, matches):
                return _reply(
                    start_response,
                    "401 Unauthorized",
                    "unauthorized: open the dashboard link with ?token=..., "
                    "or send 'Authorization: Bearer TOKEN'",
                    [("WWW-Authenticate", 'Bearer realm="nas-study dashboard"')],
                )
        if method not in _SAFE_METHODS:
            if read_only:
                return _reply(start_response, "403 Forbidden", "forbidden: read-only dashboard")
            if not _same_origin(environ):
                return _reply(start_response, "403 Forbidden", "forbidden: cross-origin request")
        return inner(environ, start_response)

    return app


def _authorized(environ: WSGIEnvironment, cookie: str, matches: Callable[[str], bool]) -> bool:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and matches(value.strip()):
        return True
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return False
    morsel = jar.get(cookie)
    return morsel is not None and matches(morsel.value)
