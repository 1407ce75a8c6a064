"""``nas-study dashboard``: optuna-dashboard on the study storage, loopback unless a token
guards it.

optuna-dashboard has no authentication of its own and its API can rename and delete
studies, so anything beyond this machine's loopback needs an access token, which a small
WSGI middleware checks on every request.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from socketserver import ThreadingMixIn
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from storage import open_storage, redact_url
from studies._cli_args import Parser, storage_arg
from studies._runner import StudyRunError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_logger = logging.getLogger(__name__)

#: Environment variable holding the access token (kept out of ``ps``, unlike ``--token``).
TOKEN_ENV_VAR = "NAS_STUDY_DASHBOARD_TOKEN"
#: Shortest token accepted: guessing one must be hopeless.
MIN_TOKEN_LENGTH = 16
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s - " + format, self.address_string(), *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # The page loads its script while it polls the API: answer requests side by side.
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class DashboardServer:
    """A running-ready dashboard HTTP server bound to its address (see :func:`make_server`).

    Attributes:
        url: The address it serves, e.g. ``http://127.0.0.1:8080/dashboard``.
        link: ``url`` with ``?token=...`` when a token guards it: the link to open.
    """

    def __init__(self, server: WSGIServer, url: str, link: str) -> None:
        self._server = server
        self._thread: threading.Thread | None = None
        self.url = url
        self.link = link

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` is called (from another thread)."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> threading.Thread:
        """Run :meth:`serve_forever` in a daemon thread, which is returned."""
        self._thread = threading.Thread(target=self.serve_forever, name="dashboard", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (and the thread of :meth:`start`) and close the socket."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._server.server_close()

    def close(self) -> None:
        """Close the socket of a server that never served."""
        self._server.server_close()


def make_dashboard_server(
    storage: optuna.storages.BaseStorage,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    read_only: bool = False,
) -> DashboardServer:
    """Bind the dashboard of ``storage`` to ``host:port`` (``port`` 0: a free one).

    Raises:
        StudyRunError: ``host`` is not loopback and no token is given, the token is too
            short, or the address cannot be listened on.
    """
    if token is not None:
        check_token(token)
    elif not is_loopback(host):
        raise StudyRunError(
            f"refusing to serve the dashboard on {host!r} without an access token: "
            "optuna-dashboard has no login and its API can delete studies; "
            f"pass --token or set ${TOKEN_ENV_VAR} ({_TOKEN_HINT}), "
            "or keep the default --host 127.0.0.1"
        )
    bare = host.removeprefix("[").removesuffix("]")
    server_class = _ThreadingServer6 if ":" in bare else _ThreadingServer
    app = dashboard_app(storage, token=token, read_only=read_only)
    try:
        server = make_server(
            bare, port, app, server_class=server_class, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise StudyRunError(
            f"cannot listen on {host}:{port} for the dashboard: {exc.strerror or exc}"
        ) from None
    shown = bare
    if bare in ("", "0.0.0.0", "::"):
        shown = socket.gethostname()  # every interface: name the machine, not 0.0.0.0
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{server.server_address[1]}/dashboard"
    link = f"{url}?token={token}" if token is not None else url
    return DashboardServer(server, url, link)


def serve_dashboard(
    storage: optuna.storages.BaseStorage,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    read_only: bool = False,
    on_ready: Callable[[DashboardServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the dashboard of ``storage`` until SIGINT/SIGTERM (or ``stop`` is set).

    Signal handlers are installed only when called from the main thread; elsewhere, set
    ``stop`` to end it. Arguments as in :func:`make_dashboard_server`; ``on_ready`` is
    called once the socket listens (the CLI prints ``server.link`` there).

    Raises:
        StudyRunError: as :func:`make_dashboard_server`.
    """
    server = make_dashboard_server(storage, host=host, port=port, token=token, read_only=read_only)
    if stop is None:
        stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread = server.start()
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.5):  # a timed wait, so the main thread still runs handlers
            if not thread.is_alive():
                break
    finally:
        server.shutdown()
        for s, old in previous.items():
            signal.signal(s, old)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (any free port) to 65535, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("dashboard", help="serve optuna-dashboard on the study storage")
    storage_arg(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default 127.0.0.1; any other than loopback needs a token)",
    )
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="default 8080; 0 picks a free port"
    )
    p.add_argument(
        "--token",
        metavar="T",
        help=f"access token every request must carry (better: ${TOKEN_ENV_VAR}, kept out of ps)",
    )
    p.add_argument(
        "--read-only", action="store_true", help="refuse every change (403), such as deletions"
    )


def command(args: argparse.Namespace, url: str) -> int:
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None
    storage = open_storage(url, heartbeat=None)  # it runs no trials, so it needs none

    def ready(server: DashboardServer) -> None:
        _logger.info(
            "optuna-dashboard for storage %s%s; stop with Ctrl-C",
            redact_url(url),
            " (read-only)" if args.read_only else "",
        )
        print(server.link, flush=True)

    serve_dashboard(
        storage,
        host=args.host,
        port=args.port,
        token=token,
        read_only=args.read_only,
        on_ready=ready,
    )
    print("nas-study: dashboard stopped", file=sys.stderr)
    return 0
