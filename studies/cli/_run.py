"""``nas-study run``, ``worker``, ``launch`` and ``serve-storage``: the commands that run a
study, or serve its storage.

The options they share are declared once (:func:`_study_args`) and parsed into one
:class:`~studies.run.RunOptions`, which ``launch`` forwards whole to its workers.

torch and the worker loop (:mod:`studies.run`) are imported inside the handlers: building
the parser, as ``nas-study --help`` and every read-only command do, never loads them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from storage import open_storage, redact_url, serve_storage
from studies._signals import stop_on_signals
from studies.cli._args import (
    Parser,
    memory_budget,
    non_negative_int,
    positive_float,
    positive_int,
    storage_arg,
)
from studies.cli._inspect import print_best
from studies.errors import StudyRunError
from studies.spec import DEFAULT_STUDY, resolve_spec

_logger = logging.getLogger("nas_study")


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    run = sub.add_parser("run", help="create or join a study, run trials, print the Pareto set")
    run.set_defaults(handler=_cmd_run)
    _study_args(run, worker=False)

    worker = sub.add_parser("worker", help="join a study and run trials until its budget is met")
    worker.set_defaults(handler=_cmd_worker)
    _study_args(worker, worker=True)
    worker.add_argument(
        "--worker-index", type=int, default=0, metavar="I", help="sampler seed offset (default 0)"
    )

    launch = sub.add_parser("launch", help="start N local workers on one study")
    launch.set_defaults(handler=_cmd_launch)
    _study_args(launch, worker=True)
    launch.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="workers to start (default with --gpus: GPUs x --workers-per-gpu)",
    )
    launch.add_argument(
        "--gpus", metavar="LIST", help="e.g. 0,1,2,3: one GPU per worker, round-robin"
    )
    launch.add_argument(
        "--workers-per-gpu",
        type=positive_int,
        default=1,
        metavar="K",
        help="trials trained side by side on each GPU (default 1; same as --gpus 0,0,1,1)",
    )

    serve = sub.add_parser("serve-storage", help="run Optuna's gRPC proxy in front of a database")
    serve.set_defaults(handler=_cmd_serve_storage)
    storage_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=positive_int, default=13000)
    _heartbeat_args(serve)
    _outage_arg(serve)


def _study_args(p: argparse.ArgumentParser, *, worker: bool) -> None:
    """Options shared by run, worker and launch: one meaning each, everywhere. Each is a
    field of :class:`RunOptions` of the same name."""
    p.add_argument(
        "study",
        nargs="?",
        default=DEFAULT_STUDY,
        help=f"catalog name or study file (default: {DEFAULT_STUDY})",
    )
    storage_arg(p)
    p.add_argument(
        "--n-trials",
        type=positive_int,
        metavar="N",
        help="the study's global budget: COMPLETE + PRUNED trials across all workers",
    )
    if worker:
        p.add_argument(
            "--max-trials", type=positive_int, metavar="N", help="at most N trials in this worker"
        )
    p.add_argument("--timeout", type=positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--study-name", metavar="NAME", help="name in the storage (default: the file's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")
    p.add_argument(
        "--device-memory-budget",
        type=memory_budget,
        metavar="SHARE|SIZE",
        help="device memory the dataset may take, as a share of free memory or a size "
        "(default 0.5); a bigger dataset stays in pinned host memory",
    )
    p.add_argument(
        "--cuda-graphs",
        choices=("on", "off"),
        help="on: capture each trial's training step once as a CUDA graph and replay it "
        "(small models on a big GPU); falls back to eager per trial, and stores why "
        "(default off)",
    )
    p.add_argument("--seed", type=int, metavar="N", help="study seed (sampler and training)")
    p.add_argument("--epochs", type=positive_int, metavar="E", help="override epochs per trial")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads for PyTorch in each worker (default: PyTorch's; launch: cores/workers)",
    )
    _heartbeat_args(p)
    _outage_arg(p)


def _outage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--outage-timeout",
        type=positive_float,
        metavar="S",
        help="seconds to wait out a database or proxy outage before giving up (default 600); "
        "worker, launch and serve-storage also wait this long for a storage that does not "
        "answer at start-up, run only for one that answers it is starting up",
    )


def _heartbeat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--heartbeat-interval", type=positive_int, metavar="S", help="seconds between heartbeats"
    )
    p.add_argument(
        "--grace-period",
        type=positive_int,
        metavar="S",
        help="seconds without a heartbeat before a trial is declared dead and re-queued",
    )
    p.add_argument(
        "--max-retry",
        type=non_negative_int,
        metavar="N",
        help="re-queue a dead worker's trial at most N times",
    )


def _work(args: argparse.Namespace, url: str, *, worker: bool) -> int:
    """``run`` and ``worker``: the same loop; ``run`` also prints the Pareto set."""
    import torch

    from studies.run import RunOptions, count_budget, resolve_device, run_study

    spec = resolve_spec(args.study)
    options = RunOptions.from_args(args)
    resolve_device(options.device)  # a bad --device is refused before a database is created
    # A worker may start while its database restarts (a Slurm array, a pod during a
    # failover): it waits. An interactive `run` fails fast on a URL that never answered.
    storage = open_storage(
        url,
        heartbeat=options.heartbeat(spec),
        outage_timeout=options.outage_seconds,
        wait=worker,
    )
    if options.threads:
        torch.set_num_threads(options.threads)
    with stop_on_signals() as stop:
        report = run_study(
            spec,
            storage,
            options,
            progress=False if worker else None,
            stop=stop,
            on_start=lambda study: _logger.info(
                "study %r (%s) on %s", study.study_name, spec.path, redact_url(url)
            ),
        )
    study = report.study
    _logger.info(
        "ran %d trial(s) here; the study has %d/%d complete or pruned%s",
        report.ran,
        count_budget(study),
        report.budget,
        " (stopped by a signal)" if report.stopped else "",
    )
    if report.stopped_for_failures:
        print(
            f"nas-study: error: stopped after {report.failed} failed trials in a row; "
            f"last reason: {report.last_failure}",
            file=sys.stderr,
        )
    if not worker:
        print_best(study, "table")
    return 1 if report.stopped_for_failures else 0


def _cmd_run(args: argparse.Namespace, url: str) -> int:
    return _work(args, url, worker=False)


def _cmd_worker(args: argparse.Namespace, url: str) -> int:
    return _work(args, url, worker=True)


def _cmd_launch(args: argparse.Namespace, url: str) -> int:
    from studies.run import (
        RunOptions,
        gpu_slots,
        launch_workers,
        open_study,
        resolve_device,
        show_progress,
    )

    if args.workers_per_gpu > 1 and not args.gpus:
        raise StudyRunError(f"launch: --workers-per-gpu {args.workers_per_gpu} needs --gpus")
    if args.workers is None and not args.gpus:
        raise StudyRunError("launch: give --workers N, or --gpus LIST (one worker per GPU)")
    spec = resolve_spec(args.study)
    options = RunOptions.from_args(args)
    resolve_device(options.device)  # a bad --device is refused before a database is created
    storage = open_storage(
        url, heartbeat=options.heartbeat(spec), outage_timeout=options.outage_seconds, wait=True
    )
    # Create the study here, so a bad file or storage fails once, before any worker starts.
    study = open_study(spec, storage, study_name=options.study_name)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else []
    slots = gpu_slots(gpus, args.workers_per_gpu)
    n_workers = args.workers or len(slots)
    if options.threads is None and (not gpus or n_workers > len(gpus)):
        # N processes on the CPU each with one thread per core would oversubscribe it many
        # times over (seen here: trials 10-20x slower); share the cores out instead, also
        # between the workers that share a GPU.
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        options = dataclasses.replace(options, threads=threads)
    _logger.info("study %r on %s: %d workers", study.study_name, redact_url(url), n_workers)
    return launch_workers(
        study,
        args.study,
        url,
        n_workers=n_workers,
        budget=options.n_trials or spec.n_trials,
        worker_args=options.worker_argv(),
        gpus=slots,
        progress=show_progress(),
    )


def _cmd_serve_storage(args: argparse.Namespace, url: str) -> int:
    from studies.run import RunOptions

    options = RunOptions.from_args(args)
    serve_storage(
        url,
        host=args.host,
        port=args.port,
        heartbeat=options.heartbeat(None),
        outage_timeout=options.outage_seconds,
    )
    return 0
