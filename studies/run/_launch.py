"""The local launcher: N worker processes on this machine, one combined progress line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

import optuna
from tqdm.auto import tqdm

from storage import STORAGE_ENV_VAR
from studies._signals import on_stop_signals
from studies.run._open import count_budget

_logger = logging.getLogger(__name__)


def gpu_slots(gpus: Sequence[str], per_gpu: int = 1) -> list[str]:
    """Each GPU ``per_gpu`` times in a row: worker ``i`` takes slot ``i % len(slots)``.

    Example:
        >>> gpu_slots(["0", "1"], 2)
        ['0', '0', '1', '1']
    """
    return [gpu for gpu in gpus for _ in range(per_gpu)]


def launch_workers(
    study: optuna.Study,
    study_arg: str,
    storage_url: str,
    *,
    n_workers: int,
    budget: int,
    worker_args: Sequence[str] = (),
    gpus: Sequence[str] = (),
    progress: bool = False,
    poll_interval: float = 2.0,
) -> int:
    """Start ``n_workers`` ``nas-study worker`` processes and wait for all of them.

    * With ``gpus``, worker ``i`` sees only ``gpus[i % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``)
      and trains on ``cuda``.
    * Worker ``i`` gets ``--worker-index i``, so its sampler seed is the study seed + i.
    * The storage URL reaches the workers through ``$NAS_STUDY_STORAGE``, never their
      command line, so a password in it does not show in ``ps``.
    * SIGINT/SIGTERM are forwarded to every worker (which finish their trial cleanly); a
      second signal kills them.

    Returns:
        0 if every worker exited 0, else 1.
    """
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(n_workers):
        env = {**os.environ, STORAGE_ENV_VAR: storage_url}
        args = [sys.executable, "-m", "studies", "--quiet", "worker", study_arg]
        args += ["--worker-index", str(i), *worker_args]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
            args += ["--device", "cuda"]
        procs.append(subprocess.Popen(args, env=env))
    _logger.info("launched %d workers: pids %s", n_workers, " ".join(str(p.pid) for p in procs))

    signals_seen = 0
    stopping = threading.Event()

    def forward(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        stopping.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL if signals_seen > 1 else signal.SIGTERM)

    bar = tqdm(total=budget, initial=count_budget(study), unit="trial") if progress else None
    last_done = -1
    with on_stop_signals(forward):
        while any(p.poll() is None for p in procs):
            done = count_budget(study)
            alive = sum(p.poll() is None for p in procs)
            if bar is not None:
                bar.n = done
                bar.set_postfix_str(f"{alive}/{n_workers} workers")
            elif done != last_done:
                _logger.info(
                    "%d/%d trials complete or pruned, %d workers running", done, budget, alive
                )
            last_done = done
            stopping.wait(poll_interval)  # woken early by a signal
            stopping.clear()
    if bar is not None:
        bar.n = count_budget(study)
        bar.close()
    codes = [p.wait() for p in procs]
    failed = [(p.pid, c) for p, c in zip(procs, codes, strict=True) if c != 0]
    for pid, code in failed:
        _logger.error("worker pid %d exited with status %d", pid, code)
    _logger.info("%d/%d trials complete or pruned", count_budget(study), budget)
    return 1 if failed else 0
