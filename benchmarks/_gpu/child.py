"""Each in-process check in a child process of its own, with a hard time limit.

A CUDA error (an illegal access in a captured graph, say) poisons the whole process's CUDA
context, and a hang would eat the run's budget; in a child, either costs one check. The
child is ``python -m benchmarks.gpu_checks --child NAME --child-config FILE --child-out
FILE``; it writes its result as JSON, and its output goes to a log whose tail the parent
records on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._gpu.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


Save = Callable[[dict[str, Any]], None]
Check = Callable[[Settings, Save], dict[str, Any]]


class CheckFailedError(RuntimeError):
    """A check's child process failed or ran out of time; ``log_tail`` says how, and
    ``partial`` holds what the check had measured by then (or None)."""

    def __init__(self, message: str, log_tail: list[str], partial: dict[str, Any] | None):
        super().__init__(message)
        self.log_tail = log_tail
        self.partial = partial


def _check(name: str) -> Check:
    # Imported here, only what the check needs: a child's imports are part of its time.
    if name == "cuda_oom":
        from benchmarks._gpu.oom import cuda_oom

        return lambda settings, save: cuda_oom(settings)
    from benchmarks._gpu import training

    checks: dict[str, Check] = {
        "mlp_throughput": training.mlp_throughput,
        "capture_equality": training.capture_equality,
        "cnn_throughput": training.cnn_throughput,
    }
    return checks[name]


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # the parent never reads half a file


def child_main(name: str, config: Path, out: Path) -> None:
    """In the child: run check ``name`` with the settings in ``config``, write ``out``
    (after each of its runs too, marked ``partial``, in case the child never finishes)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def save(part: dict[str, Any]) -> None:
        _write(out, {**part, "partial": True})

    _write(out, _check(name)(Settings.read(config), save))


def run_child(name: str, settings: Settings, timeout: float, folder: Path) -> dict[str, Any]:
    """Run check ``name`` in a child process for at most ``timeout`` seconds.

    Raises:
        CheckFailedError: the child exited non-zero, wrote nothing, or ran out of time.
    """
    config, out, log_path = (folder / f"{name}.{ext}" for ext in ("settings.json", "json", "log"))
    settings.write(config)
    cmd = [sys.executable, "-m", "benchmarks.gpu_checks", "--child", name]
    cmd += ["--child-config", str(config), "--child-out", str(out)]
    env = {**os.environ, "NAS_STUDY_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with log_path.open("wb") as log:
        # A session of its own: a timed-out child is killed with anything it started.
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            message = f"timed out after {timeout:.0f} s"
            raise CheckFailedError(message, _tail(log_path), _read(out)) from None
        except BaseException:  # the parent itself is stopping: leave no child behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    result = _read(out)
    if code != 0 or result is None or result.get("partial"):
        tail = _tail(log_path)
        last = next((line for line in reversed(tail) if line.strip()), "")
        raise CheckFailedError(f"child exited with status {code}: {last}", tail, result)
    return result


def _read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _tail(path: Path, lines: int = 25) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:]
