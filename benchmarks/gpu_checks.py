r"""Every GPU check and benchmark of issue 14 in one command, within a time budget (JSON).

Run once on a lent GPU (an H200), in about five and a half minutes:

    python -m benchmarks.gpu_checks --out-dir "$OUT"

The lent machine has Python 3.12 with torch, torchvision, scikit-learn and grpcio, but not
optuna, SQLAlchemy, alembic, colorlog, Mako, greenlet or plotly, and fetches nothing. So
first, here, in the repository root (``.whl/`` is ignored; about 16 MB):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        optuna==5.1.0 SQLAlchemy==2.1.9 alembic==1.20.1 colorlog==6.12.0 Mako==1.4.3 \
        greenlet==3.5.6 plotly==7.1.0

then one device run with ``carry=[".whl"]`` and ``timeout_s`` 400:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 \
        && python3 -m benchmarks.gpu_checks --out-dir "$OUT"

(Checked here only by importing every module the run needs with imports outside that
package list refused; the run itself has not met a device yet.)

On a CPU, in tiny sizes, in about a minute (what ``tests/test_gpu_checks.py`` runs; also
the mode chosen when CUDA is absent):

    python -m benchmarks.gpu_checks --smoke --device cpu --out-dir /tmp/gpu-checks

Nothing is downloaded: synthetic Fashion-MNIST IDX files (class-dependent images, the
format torchvision reads) are written to ``--data-dir`` (a temporary folder by default;
never ``--out-dir``, whose files are copied back from the device machine). The checks, each
a section of ``gpu_checks.json`` with its own ``status`` and ``seconds``:

1. ``mlp_throughput``: MLP 784-256-128-10 at batch 256: samples/s of the project's trainer
   eager (a), with CUDA-graph capture (b), and of the usual ``DataLoader`` loop (c), from
   ``benchmarks/train_throughput.py``; ratios, and the issue's targets ``meets_1m`` (b >=
   1,000,000 samples/s) and ``meets_30x`` (b >= 30 x c).
2. ``capture_equality``: seeded runs of a small MLP (dropout 0 and 0.2, constant and cosine
   schedules, AdamW and SGD with momentum), eager against captured: per-epoch training
   losses, their largest relative difference (``all_agree``: within 1e-3) and the captured
   run's ``train_step`` ("cuda_graph" on CUDA, "eager (why)" elsewhere).
3. ``cnn_throughput``: a fashion-cnn-sized CNN, eager and captured, NCHW and channels_last.
4. ``workers_per_gpu``: real ``nas-study launch`` runs of fashion-mlp and fashion-cnn with
   ``--gpus 0 --workers-per-gpu K``, K = 1, 2, 4, 8, each for ``--window-s`` seconds from
   its first trial's start: finished trials per hour, and the best K per family
   (``benchmarks/_gpu/launch.py``).
5. ``cuda_oom``: a trial that runs out of GPU memory fails with the reason recorded, its
   memory comes back, and the next trial completes (``benchmarks/_gpu/oom.py``); on a CPU,
   ``applicable`` is false.

Checks 1-3 and 5 each run in a child process of their own, so one that crashes or hangs
costs only itself (``benchmarks/_gpu/child.py``), and keeps what it measured before
(``partial_result``); 5 runs before 4. Before each check (and each launch of 4) the
remaining ``--budget-s`` is checked: what no longer fits is recorded under
``skipped_for_time``, never dropped. The JSON is rewritten after every check (and every
launch), so a run stopped from outside (SIGTERM is handled) still leaves its results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from benchmarks._common import positive_int, reproduce, write_report
from benchmarks._gpu import oom
from benchmarks._gpu.child import CheckFailedError, child_main, run_child
from benchmarks._gpu.launch import workers_per_gpu
from benchmarks._gpu.settings import ALLOWANCE_S, CHECKS, FAMILIES, SMOKE, Settings
from benchmarks.train_throughput import _device_name, _pick_device
from nas_objectives.testing import write_mnist_like
from storage import redact_url

REPORT_NAME = "gpu_checks.json"
#: A check is not started with less than this left of the budget.
MIN_CHECK_S = 10.0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, help=f"where {REPORT_NAME} is written")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (chosen on a CPU)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--budget-s", type=_positive_float, default=330.0)
    parser.add_argument("--checks", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--data-dir", type=Path, help="where the IDX files go (a temp folder)")
    parser.add_argument("--window-s", type=_positive_float, help="seconds of trials per launch")
    parser.add_argument("--n-trials", type=positive_int, help="--n-trials of each launch")
    parser.add_argument("--launch-epochs", type=positive_int, help="--epochs of each launch")
    parser.add_argument("--workers-per-gpu", type=positive_int, nargs="+", metavar="K")
    parser.add_argument("--families", nargs="+", choices=tuple(FAMILIES))
    parser.add_argument("--launch-cuda-graphs", choices=("on", "off"), help="default: unset")
    parser.add_argument("--storage-url", help="the launches' storage (a SQLite file each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check-limit-s",
        type=_positive_float,
        help="a lower ceiling for each check's child process (default: its allowance)",
    )
    parser.add_argument("--child", choices=CHECKS, help=argparse.SUPPRESS)
    parser.add_argument("--child-config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and args.out_dir is None:
        parser.error("--out-dir is required")
    return args


def build_settings(args: argparse.Namespace, device: torch.device, data_dir: Path) -> Settings:
    """The preset (full, or smoke on a CPU or with ``--smoke``) with the flags applied."""
    smoke = args.smoke or device.type != "cuda"
    values: dict[str, Any] = dict(SMOKE) if smoke else {}
    flags = {
        "window_s": args.window_s,
        "launch_trials": args.n_trials,
        "launch_epochs": args.launch_epochs,
        "workers_per_gpu": tuple(args.workers_per_gpu or ()) or None,
        "families": tuple(args.families or ()) or None,
        "launch_cuda_graphs": args.launch_cuda_graphs,
        "storage_url": args.storage_url,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    return Settings(
        smoke=smoke, device=device.type, data_dir=str(data_dir), seed=args.seed, **values
    )


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, the device and its memory."""
    env: dict[str, Any] = {
        "device": device.type,
        "device_name": _device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for package in ("torchvision", "optuna"):
        env[package] = metadata.version(package)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["total_memory_bytes"] = props.total_memory
        env["total_memory_gib"] = round(props.total_memory / 2**30, 2)
        env["compute_capability"] = f"{props.major}.{props.minor}"
    return env


class Run:
    """The report of one run, rewritten to ``out`` after every change."""

    def __init__(self, out: Path, budget_s: float, head: dict[str, Any]) -> None:
        self.out = out
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.report: dict[str, Any] = {
            **head,
            "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None,
            "wall_s": None,
            "budget_s": budget_s,
            "check_seconds": {},
            "skipped_for_time": [],
            "summary": {},
            **{name: {"status": "pending"} for name in CHECKS},
        }

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.report["wall_s"] = round(time.monotonic() - self.start, 2)
        self.report["summary"] = summary(self.report)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.report, indent=2))
        os.replace(tmp, self.out)  # a reader never sees half a file

    def record(self, name: str, section: dict[str, Any], seconds: float) -> None:
        self.report[name] = {**section, "seconds": round(seconds, 2)}
        self.report["check_seconds"][name] = round(seconds, 2)
        self.save()


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline facts of every check that has them."""
    get = lambda name, key: report.get(name, {}).get(key)  # noqa: E731
    return {
        "meets_1m": get("mlp_throughput", "meets_1m"),
        "meets_30x": get("mlp_throughput", "meets_30x"),
        "ratio_graphs_over_dataloader": get("mlp_throughput", "ratio_graphs_over_dataloader"),
        "capture_losses_agree": get("capture_equality", "all_agree"),
        "capture_train_steps_ok": get("capture_equality", "all_train_steps_ok"),
        "cnn_fastest": get("cnn_throughput", "fastest"),
        "cuda_oom_passed": get("cuda_oom", "passed"),
        "best_workers_per_gpu": get("workers_per_gpu", "best_k"),
        "status": {name: report.get(name, {}).get("status") for name in CHECKS},
    }


def run_checks(
    run: Run,
    settings: Settings,
    chosen: list[str],
    folder: Path,
    check_limit_s: float | None = None,
) -> None:
    for name in CHECKS:
        if name not in chosen:
            run.record(name, {"status": "skipped", "reason": "not chosen (--checks)"}, 0.0)
            continue
        left = run.left()
        if left < MIN_CHECK_S:
            run.report["skipped_for_time"].append(name)
            reason = f"time budget spent: {max(left, 0):.0f} s of {run.report['budget_s']} s left"
            run.record(name, {"status": "skipped", "reason": reason}, 0.0)
            continue
        began = time.monotonic()
        run.record(name, {"status": "running"}, 0.0)
        section: dict[str, Any]
        try:
            if name == "workers_per_gpu":

                def progress(partial: dict[str, Any], began: float = began) -> None:
                    section = {"status": "running", **partial}
                    run.record("workers_per_gpu", section, time.monotonic() - began)

                section = {"status": "ok", **workers_per_gpu(settings, run.deadline, progress)}
                run.report["skipped_for_time"] += [
                    f"workers_per_gpu: {r}" for r in section["skipped_for_time"]
                ]
            elif name == "cuda_oom" and oom.not_applicable(settings):
                section = {"status": "ok", **oom.cuda_oom(settings)}
            else:
                full_s, smoke_s = ALLOWANCE_S[name]
                limit = min(smoke_s if settings.smoke else full_s, left, check_limit_s or left)
                section = {"status": "ok", **run_child(name, settings, limit, folder)}
        except CheckFailedError as exc:
            section = {"status": "error", "error": str(exc), "log_tail": exc.log_tail}
            if exc.partial is not None:  # what it measured before it failed
                section["partial_result"] = exc.partial
        except Exception as exc:
            section = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        run.record(name, section, time.monotonic() - began)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C: children are stopped and the report is written."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the checks, print the JSON report and write it to ``--out-dir``."""
    args = parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.child_config, args.child_out)
        return {}
    device = _pick_device(args.device)
    _stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="gpu-checks-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        settings = build_settings(args, device, data_dir)
        given = sys.argv[1:] if argv is None else argv
        head = {
            "benchmark": "gpu_checks",
            "command": reproduce("benchmarks.gpu_checks", given),
            "mode": "smoke" if settings.smoke else "full",
            "mode_reason": "--smoke" if args.smoke else ("no CUDA" if settings.smoke else None),
            **environment(device),
            "settings": {
                **settings.to_json(),
                "storage_url": redact_url(args.storage_url) if args.storage_url else None,
                "check_limit_s": args.check_limit_s,
            },
        }
        run = Run(args.out_dir / REPORT_NAME, args.budget_s, head)
        began = time.monotonic()
        write_mnist_like(
            data_dir, "FashionMNIST", n_train=settings.n_train, n_test=settings.n_test, seed=0
        )
        run.report["data"] = (
            f"synthetic Fashion-MNIST IDX files, {settings.n_train} train / {settings.n_test} "
            f"test 28x28 images, written in {time.monotonic() - began:.1f} s"
        )
        run.save()
        try:
            run_checks(run, settings, args.checks, Path(tmp), args.check_limit_s)
        except KeyboardInterrupt as exc:
            run.report["interrupted"] = str(exc) or "KeyboardInterrupt"
            for name in CHECKS:
                if run.report[name]["status"] == "running":
                    run.report[name]["status"] = "interrupted"
        finally:
            run.report["finished_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            run.save()
    write_report(run.report, run.out)
    return run.report


if __name__ == "__main__":
    main()
