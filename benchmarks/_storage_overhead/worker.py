"""The worker side of ``storage_overhead.py``: the timed objective, the statement and RPC
counters, and the loop each pool process runs (plain Optuna or nas-study's ``run_trials``).

Imported by the spawned pool processes, so it keeps to what a worker needs.
"""

from __future__ import annotations

import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import optuna
import sqlalchemy

from storage import worker_cached_storage
from storage.optuna_compat import study_storage

N_PARAMS = 10
N_STEPS = 5


def objective(trial: optuna.trial.Trial) -> float:
    """10 parameters, 5 intermediate values, a float; no training."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    momentum = trial.suggest_float("momentum", 0.8, 0.99)
    n_layers = trial.suggest_int("n_layers", 1, 4)
    units = trial.suggest_int("units", 16, 512, log=True)
    epochs = trial.suggest_int("epochs", 1, 10)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    activation = trial.suggest_categorical("activation", ["relu", "gelu", "tanh"])
    optimizer = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    loss = 1.0 + lr * 10 + weight_decay + dropout * (1 - momentum) + n_layers / units
    loss += epochs / batch_size + (activation == "gelu") * 0.01 + (optimizer == "sgd") * 0.02
    for step in range(N_STEPS):
        loss *= 0.9
        trial.report(loss, step)
    return loss


# --------------------------------------------------------------------------- worker side


class Counter:
    """Statements, connection checkouts and gRPC calls of one process, across its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statements = 0
        self.checkouts = 0
        self.rpcs = 0

    def reset(self) -> None:
        with self._lock:
            self.statements = self.checkouts = self.rpcs = 0

    def statement(self, *_: Any) -> None:
        with self._lock:
            self.statements += 1

    def checkout(self, *_: Any) -> None:
        with self._lock:
            self.checkouts += 1

    def rpc(self) -> None:
        with self._lock:
            self.rpcs += 1


class CountingStub:
    """A gRPC stub whose every call is counted first."""

    def __init__(self, stub: Any, counter: Counter) -> None:
        self._stub = stub
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter.rpc()
            return method(*args, **kwargs)

        return call


def rdb_engine(storage: optuna.storages.BaseStorage) -> sqlalchemy.engine.Engine | None:
    """The SQLAlchemy engine under an ``RDBStorage``, bare or in Optuna's ``_CachedStorage``."""
    for candidate in (storage, getattr(storage, "_backend", None)):
        engine = getattr(candidate, "engine", None)
        if isinstance(engine, sqlalchemy.engine.Engine):
            return engine
    return None


def instrument(storage: optuna.storages.BaseStorage, counter: Counter) -> dict[str, Any]:
    """Count ``storage``'s statements (RDB) or RPCs (gRPC proxy); say what is counted."""
    engine = rdb_engine(storage)
    if engine is not None:
        sqlalchemy.event.listen(engine, "before_cursor_execute", counter.statement)
        sqlalchemy.event.listen(engine, "checkout", counter.checkout)
        return {"counts": "statements", "pre_ping": bool(getattr(engine.pool, "_pre_ping", False))}
    stub = getattr(storage, "_stub", None)
    cache = getattr(storage, "_cache", None)
    if stub is not None:
        counting = CountingStub(stub, counter)
        storage._stub = counting  # type: ignore[attr-defined]
        if cache is not None and hasattr(cache, "grpc_client"):
            cache.grpc_client = counting
        # nas-study's side service on the proxy: heartbeats, batched attributes, WriteTrial.
        side = getattr(storage, "_beats", None)
        for name in ("record", "set_user_attrs", "write_trial"):
            if side is not None and hasattr(side, name):
                setattr(side, name, _counted(getattr(side, name), counter))
        return {"counts": "rpcs", "pre_ping": False}
    return {"counts": "nothing", "pre_ping": False}


def _counted(method: Any, counter: Counter) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        counter.rpc()
        return method(*args, **kwargs)

    return call


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    engine = rdb_engine(storage)
    if engine is not None:
        engine.dispose()
    close = getattr(storage, "close", None)
    if callable(close):
        close()


@dataclass(frozen=True)
class Job:
    """One worker's part of one configuration."""

    loop: str  # one of LOOPS
    url: str  # the URL the loop opens: an RDB URL, or grpc://HOST:PORT
    study_name: str
    n_trials: int  # plain: this process's trials; nas-study: the global budget
    seed: int
    sampler: str
    poll_interval: float


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def grpc_host_port(url: str) -> tuple[str, int]:
    parsed = sqlalchemy.engine.make_url(url)
    assert parsed.host is not None and parsed.port is not None
    return parsed.host, parsed.port


def open_for(job: Job) -> optuna.storages.BaseStorage | str:
    """What the loop hands to ``create_study``."""
    import storage as nas_storage

    if job.loop == "plain":
        if job.url.startswith("grpc://"):
            host, port = grpc_host_port(job.url)
            return optuna.storages.GrpcStorageProxy(host=host, port=port)
        return job.url  # Optuna's own default: RDBStorage(url) in a _CachedStorage
    if job.loop == "plain_heartbeat":
        # Optuna's heartbeats at nas-study's default settings, so both sides beat alike.
        hb = nas_storage.DEFAULT_HEARTBEAT
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                job.url, heartbeat_interval=hb.interval, grace_period=hb.grace_period
            )
    # What a nas-study worker's study uses (studies.run.open_study): its trial cache.
    if job.loop == "nas_study":
        return worker_cached_storage(nas_storage.open_storage(job.url))
    return worker_cached_storage(nas_storage.open_storage(job.url, heartbeat=None))


def run_job(job: Job, jobs: Connection, results: Any, index: int) -> None:
    from studies import run_trials

    counter = Counter()
    study = optuna.create_study(
        storage=open_for(job),
        study_name=job.study_name,
        direction="minimize",
        sampler=make_sampler(job.sampler, job.seed),
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    info = instrument(study_storage(study), counter)
    results.put(("ready", index, None))
    if jobs.recv() != "go":
        close_storage(study_storage(study))
        return
    counter.reset()
    start = time.monotonic()
    ran = job.n_trials
    if job.loop.startswith("plain"):
        study.optimize(objective, n_trials=job.n_trials)
    else:
        report = run_trials(
            study,
            objective,
            budget=job.n_trials,
            progress=False,
            poll_interval=job.poll_interval,
        )
        ran = report.ran
    end = time.monotonic()
    results.put(
        (
            "done",
            index,
            {
                "start": start,
                "end": end,
                "ran": ran,
                "statements": counter.statements,
                "checkouts": counter.checkouts,
                "rpcs": counter.rpcs,
                **info,
            },
        )
    )
    close_storage(study_storage(study))


def worker_main(index: int, jobs: Connection, results: Any) -> None:
    """A pool worker: run each job it receives until it receives ``None``."""
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import studies  # noqa: F401  # pay for importing torch once, before any timing

    while True:
        job = jobs.recv()
        if job is None:
            return
        try:
            run_job(job, jobs, results, index)
        except Exception:
            results.put(("error", index, traceback.format_exc()))
