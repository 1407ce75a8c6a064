"""``nas-study dashboard``: serve optuna-dashboard on a storage."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from storage import open_storage, redact_url
from studies.cli._args import Parser, storage_arg
from studies.results import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    TOKEN_ENV_VAR,
    DashboardServer,
    make_dashboard_server,
    serve_dashboard,
)

_logger = logging.getLogger(__name__)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (any free port) to 65535, got {value}")
    return value


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("dashboard", help="serve optuna-dashboard on the study storage")
    p.set_defaults(handler=command)
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

    server = make_dashboard_server(
        storage, host=args.host, port=args.port, token=token, read_only=args.read_only
    )
    serve_dashboard(server, on_ready=ready)
    print("nas-study: dashboard stopped", file=sys.stderr)
    return 0
