"""``workers_per_gpu``: real ``nas-study launch`` runs with K workers on GPU 0, for a window.

Each run is ``python -m studies launch STUDY --gpus 0 --workers-per-gpu K`` (on a CPU:
``--workers K --device cpu``) on a fresh study, the storage URL in ``$NAS_STUDY_STORAGE``
as a user sets it. The window opens when the study's first trial starts (read from the
storage) and lasts ``window_s``; then the launcher gets SIGTERM, which it forwards to its
workers, and is waited for up to ``stop_timeout_s`` before its process group is killed.
The study is read back with Optuna: finished trials (COMPLETE + PRUNED) that ended within
the window, per hour of window. Trials cut short by the stop are FAIL ("worker stopped")
and not counted.

The studies are the catalog's ``fashion-mlp`` and ``fashion-cnn`` as shipped, with
``--epochs`` and ``--n-trials`` from the settings. The smoke run narrows their spaces (a
copy of the file with a few lines replaced) and ends each launch by ``--n-trials``
instead: its window then ends with its last finished trial.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks._gpu.settings import FAMILIES, Settings
from nas_objectives import record
from storage import STORAGE_ENV_VAR, open_storage, redact_url
from studies.spec import catalog_dir, resolve_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.5
#: A run is only started when the budget holds its window and this much more (start-up).
MIN_STARTUP_S = 15.0
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_file(family: str, overrides: dict[str, str], folder: Path) -> str:
    """The catalog study of ``family``, or a copy of it with ``overrides`` lines replaced."""
    name = FAMILIES[family]
    if not overrides:
        return name
    text = (catalog_dir() / f"{name}.toml").read_text()
    for key, value in overrides.items():
        text, found = re.subn(rf"^{key}\s*=.*$", f"{key} = {value}", text, count=1, flags=re.M)
        if not found:
            raise ValueError(f"{name}.toml has no line {key!r} to override")
    path = folder / f"{name}-small.toml"
    path.write_text(text)
    resolve_spec(str(path))  # a bad override fails here, not in every worker
    return str(path)


def launch_command(s: Settings, study: str, study_name: str, k: int) -> list[str]:
    cmd = [sys.executable, "-m", "studies", "launch", study, "--study-name", study_name]
    cmd += ["--epochs", str(s.launch_epochs), "--n-trials", str(s.launch_trials)]
    cmd += ["--data-dir", s.data_dir, "--seed", str(s.seed)]
    if s.cuda:
        cmd += ["--gpus", "0", "--workers-per-gpu", str(k)]
    else:
        cmd += ["--workers", str(k), "--device", "cpu"]
    if s.launch_cuda_graphs is not None:
        cmd += ["--cuda-graphs", s.launch_cuda_graphs]
    return cmd


def _first_start(storage: optuna.storages.BaseStorage, name: str) -> dt.datetime | None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None  # the launcher has not created it yet
    starts = [t.datetime_start for t in storage.get_all_trials(study_id, deepcopy=False)]
    return min((d for d in starts if d is not None), default=None)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """SIGTERM to the launcher (it forwards it), then SIGKILL to its group past ``timeout``."""
    begin = time.monotonic()
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its workers
            proc.wait(10)
    stop_s = round(time.monotonic() - begin, 3)
    return {"exit_code": proc.returncode, "stop_s": stop_s, "killed": killed}


def one_launch(s: Settings, family: str, k: int, folder: Path, deadline: float) -> dict[str, Any]:
    """Launch ``family``'s study with ``k`` workers, measure its window, stop it."""
    run_id = uuid.uuid4().hex[:8]
    study_name = f"gpu-checks-{family}-k{k}-{run_id}"
    url = s.storage_url or f"sqlite:///{folder / f'{family}-k{k}.db'}"
    # Opened here first: the schema exists before the launcher and this poller use it.
    storage = open_storage(url, heartbeat=None)
    study = study_file(family, s.study_overrides.get(family, {}), folder)
    cmd = launch_command(s, study, study_name, k)
    # CI: no progress bar in the log (only its lines, which say how far the launch got).
    env = {**os.environ, STORAGE_ENV_VAR: url, "NAS_STUDY_OFFLINE": "1", "CI": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log_path = folder / f"{family}-k{k}.log"
    launched = dt.datetime.now()
    with log_path.open("wb") as log:
        # A session of its own: if it will not stop, its whole group (workers too) is killed.
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    begin = time.monotonic()
    stop_at = min(begin + s.startup_timeout_s + s.window_s, deadline)
    first: dt.datetime | None = None
    window_end: dt.datetime | None = None
    ended_by = "startup_timeout"
    try:
        while True:
            if first is None:
                first = _first_start(storage, study_name)
                if first is not None:
                    window_end = first + dt.timedelta(seconds=s.window_s)
            if proc.poll() is not None:
                ended_by = "launcher_exited"
                break
            now = dt.datetime.now()
            if window_end is not None and now >= window_end:
                ended_by = "window"
                break
            if time.monotonic() >= stop_at:
                ended_by = "startup_timeout" if first is None else "budget"
                break
            time.sleep(POLL_S)  # polling the storage and the clock, not synchronising
        end = min(dt.datetime.now(), window_end) if window_end else dt.datetime.now()
    finally:
        stopped = _stop(proc, s.stop_timeout_s)
    trials: list[optuna.trial.FrozenTrial] = []
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        if s.storage_url:  # a shared database keeps no benchmark studies
            optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:
        pass  # the launcher failed before it created the study: its log tail says why
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()
    if ended_by == "launcher_exited":
        # The study's budget (--n-trials) was met before the window closed: the window
        # ends with its last trial, not with the launcher's exit some seconds later.
        end = max((t.datetime_complete for t in trials if t.datetime_complete), default=end)
    result = _summary(trials, first, end, launched, k)
    result.update(
        family=family,
        study=study if family not in s.study_overrides else f"{FAMILIES[family]} (narrowed)",
        command=shlex.join(["nas-study", *cmd[3:]]),
        ended_by=ended_by,
        **stopped,
    )
    troubled = ended_by in ("startup_timeout", "budget") or stopped["exit_code"] != 0
    if troubled or not result["finished"]:
        result["log_tail"] = log_path.read_text(errors="replace").splitlines()[-20:]
    return result


def _summary(
    trials: list[optuna.trial.FrozenTrial],
    first: dt.datetime | None,
    end: dt.datetime,
    launched: dt.datetime,
    k: int,
) -> dict[str, Any]:
    states = collections.Counter(t.state.name for t in trials)
    steps = collections.Counter(
        str(t.user_attrs.get(record.TRAIN_STEP, "(not recorded)")) for t in trials
    )
    finished = [
        t
        for t in trials
        if t.state in FINISHED and t.datetime_complete is not None and t.datetime_complete <= end
    ]
    span = (end - first).total_seconds() if first is not None else 0.0
    durations = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in finished
        if t.datetime_start is not None and t.datetime_complete is not None
    ]

    def offset(d: dt.datetime | None) -> float | None:
        return None if d is None or first is None else round((d - first).total_seconds(), 3)

    return {
        "workers_per_gpu": k,
        # From the launcher's start to the first trial's.
        "startup_s": round((first - launched).total_seconds(), 3) if first else None,
        "window_s": span,
        "finished": len(finished),
        "trials_per_hour": len(finished) / span * 3600 if span > 0 else None,
        "median_trial_s": statistics.median(durations) if durations else None,
        "states": dict(states),
        "train_steps": dict(steps),
        # Per trial: start and end, seconds from the first start, and its state.
        "trials": [
            [offset(t.datetime_start), offset(t.datetime_complete), t.state.name] for t in trials
        ],
    }


def workers_per_gpu(
    s: Settings, deadline: float, on_progress: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Every K of ``s.workers_per_gpu`` for every family, while the budget holds a window."""
    runs: dict[str, dict[str, Any]] = {family: {} for family in s.families}
    skipped: list[str] = []
    out: dict[str, Any] = {
        "window_limit_s": s.window_s,
        "launch_epochs": s.launch_epochs,
        "launch_trials": s.launch_trials,
        "storage": redact_url(s.storage_url) if s.storage_url else "a fresh SQLite file per run",
        "cuda_graphs": s.launch_cuda_graphs or "the CLI's default",
        "rate": "COMPLETE + PRUNED trials ended within the window, per hour of window (from "
        "the first trial's start)",
        "runs": runs,
        "skipped_for_time": skipped,
    }
    with tempfile.TemporaryDirectory(prefix="gpu-checks-launch-") as tmp:
        for k in s.workers_per_gpu:  # K outermost: a budget cut loses the largest K
            for family in s.families:
                if deadline - time.monotonic() < s.window_s + MIN_STARTUP_S:
                    skipped.append(f"{family} K={k}")
                    continue
                folder = Path(tmp) / f"{family}-k{k}"
                folder.mkdir()
                try:
                    runs[family][str(k)] = one_launch(s, family, k, folder, deadline)
                except Exception as exc:
                    runs[family][str(k)] = {"error": f"{type(exc).__name__}: {exc}"}
                out.update(_best(runs))
                on_progress(out)
    return out


def _best(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rates = {
        family: {k: r.get("trials_per_hour") for k, r in by_k.items()}
        for family, by_k in runs.items()
    }
    best = {}
    for family, by_k in rates.items():
        known = {k: v for k, v in by_k.items() if v is not None}
        best[family] = int(max(known, key=known.__getitem__)) if known else None
    return {"trials_per_hour": rates, "best_k": best}
