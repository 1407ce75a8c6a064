"""``nas-study serve-storage``, counted: statements, database seconds and CPU per RPC.

``python -m benchmarks._fleet.proxy CONTROL_PORT serve-storage --port P`` installs the
counters, then hands everything after ``CONTROL_PORT`` to ``studies.cli.main``, the entry
point of ``nas-study`` (and of ``python -m studies``): the proxy measured is the product's,
configured from ``$NAS_STUDY_STORAGE`` as a user runs it. The counters are read and reset
over a line-based JSON socket on ``127.0.0.1:CONTROL_PORT`` (:class:`Proxy`, the parent's
side).

What is counted, in the proxy process:

* every RPC, by method (Optuna's ``StorageService`` and nas-study's ``Heartbeat``), with
  its handler's seconds, through a gRPC server interceptor (``grpc.server`` is wrapped
  before ``serve_storage`` builds its server);
* every SQL statement (SQLAlchemy ``before_cursor_execute`` on all engines), with its
  seconds until ``after_cursor_execute``, credited to the RPC that ran it or, outside any
  RPC, to ``outside_rpcs`` (the proxy's stale-trial sweep of every study in the database);
  and connection checkouts, each of which costs a ``pool_pre_ping`` round trip that is not
  a statement;
* the process's CPU seconds (all threads);
* between ``profile on`` and ``profile off``, a ``cProfile`` of the RPC handlers, timed by
  each thread's CPU clock (so waits on the database do not count), merged over threads.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import pstats
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds to wait for the proxy to answer after its start (it imports torch first).
START_TIMEOUT_S = 90.0
#: Seconds to wait for the proxy to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0


class Counters:
    """RPCs, statements and database seconds by RPC method, across the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.profiling = False
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._by_method: dict[str, dict[str, float]] = {}
            self._cpu0 = time.process_time()
            self._wall0 = time.monotonic()
            self._profiles: list[cProfile.Profile] = []

    def _row(self, method: str) -> dict[str, float]:
        row = self._by_method.get(method)
        if row is None:
            row = self._by_method[method] = {
                "calls": 0,
                "seconds": 0.0,
                "statements": 0,
                "db_seconds": 0.0,
                "checkouts": 0,
            }
        return row

    def call(self, method: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` (a unary RPC's behaviour), timed and credited to ``method``."""

        @functools.wraps(handler)
        def timed(request: Any, context: Any) -> Any:
            self._local.method = method
            profile = self._thread_profile() if self.profiling else None
            start = time.perf_counter()
            try:
                if profile is None:
                    return handler(request, context)
                profile.enable()
                try:
                    return handler(request, context)
                finally:
                    profile.disable()
            finally:
                seconds = time.perf_counter() - start
                self._local.method = None
                with self._lock:
                    row = self._row(method)
                    row["calls"] += 1
                    row["seconds"] += seconds

        return timed

    def _thread_profile(self) -> cProfile.Profile:
        profile: cProfile.Profile | None = getattr(self._local, "profile", None)
        if profile is None or profile not in self._profiles:  # new thread, or reset since
            # CPU seconds of this thread: waits on the database are not where CPU goes.
            profile = self._local.profile = cProfile.Profile(time.thread_time)
            with self._lock:
                self._profiles.append(profile)
        return profile

    def profile(self) -> dict[str, Any]:
        """The handlers' profile since profiling was switched on (:func:`profile_tables`)."""
        with self._lock:
            profiles = list(self._profiles)
        return profile_tables(profiles)

    def _current(self) -> str:
        return getattr(self._local, "method", None) or "outside_rpcs"

    def before_statement(self, *_: Any) -> None:
        self._local.statement_start = time.perf_counter()

    def after_statement(self, *_: Any) -> None:
        start = getattr(self._local, "statement_start", None)
        seconds = 0.0 if start is None else time.perf_counter() - start
        with self._lock:
            row = self._row(self._current())
            row["statements"] += 1
            row["db_seconds"] += seconds

    def checkout(self, *_: Any) -> None:
        with self._lock:
            self._row(self._current())["checkouts"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "cpu_seconds": time.process_time() - self._cpu0,
                "wall_seconds": time.monotonic() - self._wall0,
                "by_method": {name: dict(row) for name, row in self._by_method.items()},
            }


def profile_tables(profiles: list[cProfile.Profile], top: int = 25) -> dict[str, Any]:
    """The ``top`` functions of ``profiles`` (merged) by own and by cumulative seconds."""
    profiles = [p for p in profiles if p.getstats()]
    if not profiles:
        return {"by_own_time": [], "by_cumulative_time": []}
    stats = pstats.Stats(profiles[0])
    for extra in profiles[1:]:
        stats.add(extra)
    rows: list[dict[str, Any]] = [
        {
            "function": f"{_short(file)}:{line}({name})",
            "calls": calls,
            "own_s": round(own, 4),
            "cumulative_s": round(cumulative, 4),
        }
        for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    return {
        "by_own_time": sorted(rows, key=lambda r: -r["own_s"])[:top],
        "by_cumulative_time": sorted(rows, key=lambda r: -r["cumulative_s"])[:top],
    }


def _short(file: str) -> str:
    """A source path from its package on (``optuna/storages/_cached_storage.py``)."""
    for root in ("site-packages/", f"{REPO_ROOT}/"):
        if root in file:
            return file.split(root, 1)[1]
    return file


def _install(counters: Counters) -> None:
    """Count every statement, checkout and RPC of this process from now on."""
    import grpc
    import sqlalchemy

    engine = sqlalchemy.engine.Engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", counters.before_statement)
    sqlalchemy.event.listen(engine, "after_cursor_execute", counters.after_statement)
    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "checkout", counters.checkout)

    class Timing(grpc.ServerInterceptor):
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            method = str(details.method).rsplit("/", 1)[-1]
            return grpc.unary_unary_rpc_method_handler(
                counters.call(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    # Optuna's make_server calls grpc.server(pool) and offers no interceptors.
    server = grpc.server
    grpc.server = functools.partial(server, interceptors=[Timing()])


def _serve_control(port: int, counters: Counters) -> None:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            command = self.rfile.readline().decode().strip()
            if command == "reset":
                counters.reset()
                reply: dict[str, Any] = {}
            elif command == "snapshot":
                reply = counters.snapshot()
            elif command == "profile on":
                counters.reset()
                counters.profiling = True
                reply = {}
            elif command == "profile off":
                counters.profiling = False
                reply = counters.profile()
            else:
                reply = {"error": f"unknown command {command!r}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()


def main(argv: list[str]) -> int:
    """Install the counters and the control socket, then run ``nas-study ARGV[1:]``."""
    counters = Counters()
    _install(counters)
    _serve_control(int(argv[0]), counters)
    from studies.cli import main as nas_study

    return nas_study(argv[1:])


# --------------------------------------------------------------------------- parent side


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """The counted ``serve-storage`` for ``database_url`` in a subprocess, on free ports.

    Use as a context manager: it is started, polled until clients can open it, and stopped
    by its PID at the end. ``log`` collects its output.
    """

    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.control_port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``grpc://`` URL that workers open."""
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks._fleet.proxy",
            str(self.control_port),
            "serve-storage",
            "--port",
            str(self.port),
        ]

    def __enter__(self) -> Proxy:
        env = {**os.environ, "NAS_STUDY_STORAGE": self.database_url}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        from storage import StorageError, open_storage

        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"serve-storage exited at start (status {self.proc.returncode}): {self.tail()}"
                )
            try:
                client = open_storage(self.url)
            except StorageError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"serve-storage did not answer within {START_TIMEOUT_S:g} s: {self.tail()}"
                    ) from None
                continue  # open_storage itself waits up to 5 s for the proxy
            try:
                client.get_all_studies()  # it reaches its database too
            finally:
                client.close()  # type: ignore[attr-defined]
            self.control("snapshot")
            return

    def control(self, command: str) -> dict[str, Any]:
        """Send ``reset``, ``snapshot``, ``profile on`` or ``profile off`` to the proxy's
        control socket; its JSON answer."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=30) as sock:
            sock.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        assert isinstance(reply, dict)
        return reply

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
