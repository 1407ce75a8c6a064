"""A fleet of real ``nas-study worker`` processes on one study, and the faults thrown at it.

Faults, each on its own random schedule, for ``duration`` seconds:

* ``kill -9`` of a random worker, replaced at once by a new one;
* SIGSTOP of a random worker for longer than the grace period, then SIGCONT (a frozen,
  not dead, machine: its trial is declared dead meanwhile);
* a PostgreSQL crash-restart (``pg_ctlcluster ... stop -m immediate``, then ``start``; the
  server is always started again, also when the soak fails);
* in proxy mode, ``kill -9`` of ``nas-study serve-storage`` and a new one on the same port.

Then the faults stop, and the workers finish the budget and exit by themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._chaos.audit import audit_study
from storage._once import ALREADY_CREATED  # the line a retried creation logs

_logger = logging.getLogger(__name__)

#: The PostgreSQL cluster crash-restarted by default, as ``pg_lsclusters`` names it.
MAIN_CLUSTER = "15/main"


def _pg_ctl(cluster: str) -> list[str]:
    version, _, name = cluster.partition("/")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name]


def _port_of(cluster: str) -> str:
    """The port a cluster listens on, from its ``postgresql.conf`` (5432 when unset)."""
    conf = Path("/etc/postgresql", *cluster.split("/", 1), "postgresql.conf")
    for line in conf.read_text().splitlines() if conf.exists() else []:
        key, _, value = line.partition("=")
        if key.strip() == "port":
            return value.split("#", 1)[0].strip()
    return "5432"


STUDY = """\
name = "{name}"
objectives = ["accuracy"]
dataset = "digits"
epochs = {epochs}
n_trials = {budget}
seed = 7

[model]
depth = [1, 2]
width = [4, 32]

[training]
batch_size = [64, 128]

[sampler]
name = "random"

[pruner]
name = "median"

[heartbeat]
interval = {interval}
grace_period = {grace}
max_retry = 100
"""


@dataclass(frozen=True)
class ChaosConfig:
    """One soak. Intervals are ``(low, high)`` seconds, drawn uniformly between events."""

    mode: str  # "postgres" (workers on the database) or "proxy" (through serve-storage)
    database_url: str
    workdir: Path
    duration: float = 300.0
    workers: int = 3
    budget: int = 150
    epochs: int = 40
    interval: int = 1
    grace: int = 4
    kill_every: tuple[float, float] = (10.0, 60.0)
    freeze_every: tuple[float, float] = (40.0, 90.0)
    db_restart_every: tuple[float, float] = (60.0, 150.0)
    db_down: tuple[float, float] = (1.0, 8.0)
    proxy_restart_every: tuple[float, float] = (45.0, 120.0)
    drain_timeout: float = 300.0
    outage_timeout: float = 300.0
    seed: int = 0
    keep_study: bool = False
    #: The cluster that serves ``database_url`` (``VERSION/NAME``, as ``pg_lsclusters``
    #: shows it); a long soak can crash a cluster of its own while tests use the main one.
    cluster: str = MAIN_CLUSTER


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    log: Path
    killed: bool = False
    frozen_until: float | None = None

    @property
    def tag(self) -> str:
        return f"{socket.gethostname()}:{self.proc.pid}"


@dataclass
class _Fleet:
    cfg: ChaosConfig
    study_file: Path
    url: str
    workers: list[_Worker] = field(default_factory=list)
    proxy: subprocess.Popen[bytes] | None = None
    proxy_port: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "kills": 0,
            "freezes": 0,
            "db_restarts": 0,
            "proxy_restarts": 0,
            "workers_started": 0,
        }
    )

    def start_worker(self) -> None:
        n = self.counts["workers_started"]
        log = self.cfg.workdir / f"worker-{n}.log"
        env = {**os.environ, "CI": "true", "NAS_STUDY_OFFLINE": "1", "NAS_STUDY_STORAGE": self.url}
        args = [sys.executable, "-m", "studies", "worker", str(self.study_file)]
        args += ["--threads", "1", "--worker-index", str(n)]
        args += ["--outage-timeout", str(self.cfg.outage_timeout)]
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.workers.append(_Worker(proc, log))
        self.counts["workers_started"] += 1

    def alive(self) -> list[_Worker]:
        return [w for w in self.workers if w.proc.poll() is None and w.frozen_until is None]

    def kill_one(self, rng: random.Random) -> None:
        candidates = self.alive()
        if not candidates:
            return
        victim = rng.choice(candidates)
        victim.killed = True
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        self.counts["kills"] += 1
        self.start_worker()

    def freeze_one(self, rng: random.Random) -> None:
        candidates = self.alive()
        if len(candidates) < 2:
            return
        victim = rng.choice(candidates)
        victim.proc.send_signal(signal.SIGSTOP)
        victim.frozen_until = time.monotonic() + self.cfg.grace + 3 + rng.uniform(0, 3)
        self.counts["freezes"] += 1

    def thaw_due(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.frozen_until is not None and now >= w.frozen_until:
                w.proc.send_signal(signal.SIGCONT)
                w.frozen_until = None

    def thaw_all(self) -> None:
        for w in self.workers:
            if w.frozen_until is not None:
                w.proc.send_signal(signal.SIGCONT)
                w.frozen_until = None

    def restart_database(self, rng: random.Random) -> None:
        with database_down(self.cfg.cluster):
            time.sleep(rng.uniform(*self.cfg.db_down))  # how long the database stays down
        self.counts["db_restarts"] += 1

    def start_proxy(self) -> None:
        log = self.cfg.workdir / f"proxy-{self.counts['proxy_restarts']}.log"
        env = {**os.environ, "NAS_STUDY_STORAGE": self.cfg.database_url}
        args = [sys.executable, "-m", "studies", "serve-storage", "--port", str(self.proxy_port)]
        args += ["--heartbeat-interval", str(self.cfg.interval)]
        args += ["--grace-period", str(self.cfg.grace), "--max-retry", "100"]
        args += ["--outage-timeout", str(self.cfg.outage_timeout)]
        with log.open("wb") as out:
            self.proxy = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.proxy_port, timeout=120, proc=self.proxy)

    def restart_proxy(self, rng: random.Random) -> None:
        assert self.proxy is not None
        self.proxy.send_signal(signal.SIGKILL)
        self.proxy.wait()
        time.sleep(rng.uniform(0.5, 3.0))  # the proxy stays down this long
        self.counts["proxy_restarts"] += 1
        self.start_proxy()

    def stop_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait()


@contextlib.contextmanager
def database_down(cluster: str = MAIN_CLUSTER) -> Iterator[None]:
    """Crash PostgreSQL (immediate stop: no checkpoint, clients cut off) for the block, and
    start it again whatever happens."""
    subprocess.run([*_pg_ctl(cluster), "stop", "-m", "immediate"], check=False, capture_output=True)
    try:
        yield
    finally:
        ensure_database_running(cluster)


def ensure_database_running(cluster: str = MAIN_CLUSTER) -> None:
    """Start PostgreSQL unless it runs, and wait until it accepts connections."""
    status = subprocess.run([*_pg_ctl(cluster), "status"], check=False, capture_output=True)
    if status.returncode != 0:
        subprocess.run([*_pg_ctl(cluster), "start"], check=False, capture_output=True)
    ready_cmd = ["pg_isready", "-h", "127.0.0.1", "-p", _port_of(cluster), "-q"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = subprocess.run(ready_cmd, check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.2)  # polling the server, with a deadline
    raise RuntimeError("PostgreSQL did not come back within 60 s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve-storage exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # polling the port, with a deadline
    raise RuntimeError(f"serve-storage did not listen on port {port} within {timeout} s")


def run_chaos(cfg: ChaosConfig) -> dict[str, Any]:
    """Run one soak and return its figures (see ``benchmarks/chaos.py``)."""
    rng = random.Random(cfg.seed)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    name = f"chaos-{cfg.mode}-{uuid.uuid4().hex[:8]}"
    study_file = cfg.workdir / f"{name}.toml"
    study_file.write_text(
        STUDY.format(
            name=name,
            epochs=cfg.epochs,
            budget=cfg.budget,
            interval=cfg.interval,
            grace=cfg.grace,
        )
    )
    fleet = _Fleet(cfg, study_file, cfg.database_url)
    started = time.monotonic()
    try:
        if cfg.mode == "proxy":
            fleet.proxy_port = free_port()
            fleet.start_proxy()
            fleet.url = f"grpc://127.0.0.1:{fleet.proxy_port}"
        for _ in range(cfg.workers):
            fleet.start_worker()
        _chaos_phase(fleet, rng, started)
        chaos_seconds = time.monotonic() - started
        fleet.thaw_all()
        drained = _drain(fleet)
    finally:
        fleet.thaw_all()
        ensure_database_running(cfg.cluster)
        for w in fleet.workers:
            if w.proc.poll() is None:
                w.killed = True
                w.proc.kill()
                w.proc.wait()
        fleet.stop_proxy()
    killed = {w.tag for w in fleet.workers if w.killed}
    crashed = [w for w in fleet.workers if not w.killed and w.proc.returncode != 0]
    report = {
        "mode": cfg.mode,
        "study": name,
        "workers": cfg.workers,
        "epochs_per_trial": cfg.epochs,
        "heartbeat_interval_s": cfg.interval,
        "grace_period_s": cfg.grace,
        "chaos_seconds": round(chaos_seconds, 1),
        "drain_seconds": round(time.monotonic() - started - chaos_seconds, 1),
        "drained": drained,
        **fleet.counts,
        "workers_crashed": len(crashed),
        "crash_tails": [_tail(w.log) for w in crashed],
        "retried_creations_that_had_committed": sum(
            w.log.read_text(errors="replace").count(ALREADY_CREATED) for w in fleet.workers
        ),
        "tracebacks_in_worker_logs": sum(_tracebacks(w.log) for w in fleet.workers),
        **audit_study(cfg.database_url, name, cfg.budget, killed),
    }
    if not cfg.keep_study:
        _delete_study(cfg.database_url, name)
    return report


def _chaos_phase(fleet: _Fleet, rng: random.Random, started: float) -> None:
    cfg = fleet.cfg
    now = time.monotonic()
    due = {
        "kill": now + rng.uniform(*cfg.kill_every),
        "freeze": now + rng.uniform(*cfg.freeze_every),
        "db": now + rng.uniform(*cfg.db_restart_every),
    }
    if cfg.mode == "proxy":
        due["proxy"] = now + rng.uniform(*cfg.proxy_restart_every)
    while time.monotonic() - started < cfg.duration:
        fleet.thaw_due()
        if all(w.proc.poll() is not None for w in fleet.workers):
            return  # the budget is met: every worker has finished
        now = time.monotonic()
        event = min(due, key=lambda k: due[k])
        if due[event] > now:
            time.sleep(min(due[event] - now, 0.2))  # the schedule's own pace
            continue
        if event == "kill":
            fleet.kill_one(rng)
            due["kill"] = now + rng.uniform(*cfg.kill_every)
        elif event == "freeze":
            fleet.freeze_one(rng)
            due["freeze"] = now + rng.uniform(*cfg.freeze_every)
        elif event == "db":
            fleet.restart_database(rng)
            due["db"] = time.monotonic() + rng.uniform(*cfg.db_restart_every)
        else:
            fleet.restart_proxy(rng)
            due["proxy"] = time.monotonic() + rng.uniform(*cfg.proxy_restart_every)


def _drain(fleet: _Fleet) -> bool:
    """Wait for every worker to exit by itself; False if some outlived the drain timeout."""
    deadline = time.monotonic() + fleet.cfg.drain_timeout
    for w in fleet.workers:
        try:
            w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            return False
    return True


def _tracebacks(log: Path) -> int:
    """Tracebacks in a worker's log, but for Optuna's report of a failed trial (a trial
    started after the budget was taken, say), which is how Optuna logs any failed trial."""
    lines = log.read_text(errors="replace").splitlines()
    return sum(
        1
        for i, line in enumerate(lines)
        if line.startswith("Traceback") and not (i and "failed with parameters" in lines[i - 1])
    )


def _tail(log: Path, lines: int = 6) -> str:
    return "\n".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def _delete_study(url: str, name: str) -> None:
    import optuna

    from storage import open_storage

    with contextlib.suppress(Exception):
        optuna.delete_study(study_name=name, storage=open_storage(url, heartbeat=None))
