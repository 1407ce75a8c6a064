"""``nas-study dashboard``: optuna-dashboard on the study storage, loopback unless a token
guards it.

optuna-dashboard has no authentication of its own and its API can rename and delete
studies, so anything beyond this machine's loopback needs an access token, which a small
WSGI middleware checks on every request.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from studies._signals import on_stop_signals
from studies.errors import StudyRunError
from studies.results._dashboard_guard import (
    _TOKEN_HINT,
    TOKEN_ENV_VAR,
    check_token,
    dashboard_app,
    is_loopback,
)

if TYPE_CHECKING:
    pass

_logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


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
    server: DashboardServer,
    *,
    on_ready: Callable[[DashboardServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``server`` (from :func:`make_dashboard_server`) until SIGINT/SIGTERM, or until
    ``stop`` is set, then shut it down.

    Signal handlers are installed only when called from the main thread; elsewhere, set
    ``stop`` to end it. ``on_ready`` is called once the socket listens (the CLI prints
    ``server.link`` there).
    """
    if stop is None:
        stop = threading.Event()
    with on_stop_signals(lambda signum: stop.set()):
        try:
            thread = server.start()
            if on_ready is not None:
                on_ready(server)
            while not stop.wait(0.5):  # a timed wait, so the main thread still runs handlers
                if not thread.is_alive():
                    break
        finally:
            server.shutdown()
