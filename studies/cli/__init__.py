"""The ``nas-study`` command line.

Every expected problem (a bad study file, an unreachable or unknown storage, a missing
dataset, a bad option) ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import optuna
import torch

from nas_objectives import DatasetError, ExportError
from storage import (
    HeartbeatSettings,
    StorageError,
    check_storage,
    open_storage,
    redact_text,
    redact_url,
    resolve_storage_url,
    serve_storage,
)
from studies import _dashboard, _export, _report
from studies._catalog import DEFAULT_STUDY, catalog, resolve_spec
from studies._cli_args import (
    Parser,
    load_named_study,
    non_negative_int,
    positive_float,
    positive_int,
    storage_arg,
)
from studies._launch import launch_workers, stop_on_signals
from studies._results import (
    FORMATS,
    best_trials,
    format_rows,
    metric_names,
    summary_rows,
    trial_rows,
)
from studies._runner import (
    StudyRunError,
    count_budget,
    open_study,
    resolve_device,
    run_study,
    show_progress,
)
from studies._spec import HeartbeatSpec, StudySpec, StudySpecError

_EXPECTED = (StudySpecError, StorageError, DatasetError, StudyRunError, ExportError)
_logger = logging.getLogger("nas_study")
_OWN_LOGGERS = ("nas_study", "studies", "storage", "nas_objectives")


def _study_args(p: argparse.ArgumentParser, *, worker: bool) -> None:
    """Options shared by run, worker and launch: one meaning each, everywhere."""
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
    p.add_argument("--seed", type=int, metavar="N", help="study seed (sampler and training)")
    p.add_argument("--epochs", type=positive_int, metavar="E", help="override epochs per trial")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads for PyTorch in each worker (default: PyTorch's; launch: cores/workers)",
    )
    _heartbeat_args(p)


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas-study",
        description="Hyperparameter and neural-architecture search on a shared Optuna database.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every trial")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="create or join a study, run trials, print the Pareto set")
    _study_args(run, worker=False)

    worker = sub.add_parser("worker", help="join a study and run trials until its budget is met")
    _study_args(worker, worker=True)
    worker.add_argument(
        "--worker-index", type=int, default=0, metavar="I", help="sampler seed offset (default 0)"
    )

    launch = sub.add_parser("launch", help="start N local workers on one study")
    _study_args(launch, worker=True)
    launch.add_argument("--workers", type=positive_int, required=True, metavar="N")
    launch.add_argument(
        "--gpus", metavar="LIST", help="e.g. 0,1,2,3: one GPU per worker, round-robin"
    )

    sub.add_parser("catalog", help="list the shipped study files")

    studies = sub.add_parser("studies", help="list the studies in a storage")
    storage_arg(studies)

    best = sub.add_parser("best", help="print the Pareto set (or the best trial)")
    best.add_argument("study", help="study name in the storage, or a catalog name or study file")
    storage_arg(best)
    best.add_argument("--format", choices=FORMATS, default="table")

    serve = sub.add_parser("serve-storage", help="run Optuna's gRPC proxy in front of a database")
    storage_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=positive_int, default=13000)
    _heartbeat_args(serve)

    check = sub.add_parser("storage", help="storage maintenance")
    check_sub = check.add_subparsers(dest="storage_command", required=True, parser_class=Parser)
    check_url = check_sub.add_parser("check", help="connect and report the schema version")
    check_url.add_argument("url", metavar="URL")

    _dashboard.add_parser(sub)
    _report.add_parser(sub)
    _export.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-study``; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    url = getattr(args, "url", None) or resolve_storage_url(getattr(args, "storage", None))
    try:
        return _COMMANDS[args.command](args, url)
    except _EXPECTED as exc:
        print(f"nas-study: error: {redact_text(str(exc), url)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas-study: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool, quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
        force=True,  # main() may run more than once in a process (tests, notebooks)
    )
    # Our own loggers speak at INFO; other libraries' INFO lines (kaleido's browser, say)
    # are not for our users, so the root logger stays at WARNING.
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
    # Per-trial lines are noise under a progress bar; keep them for logs and --verbose.
    chatty = verbose or not (quiet or show_progress())
    optuna.logging.set_verbosity(optuna.logging.INFO if chatty else optuna.logging.WARNING)


def _heartbeat(args: argparse.Namespace, spec: StudySpec | None) -> HeartbeatSettings:
    """The study file's heartbeat settings, overridden by the command line."""
    base = spec.heartbeat if spec is not None else HeartbeatSpec()
    interval = args.heartbeat_interval or base.interval
    grace = args.grace_period or (
        base.grace_period if args.heartbeat_interval is None else 3 * interval
    )
    if grace <= interval:
        raise StudyRunError(
            f"--grace-period {grace} must be longer than the heartbeat interval {interval}"
        )
    retry = base.max_retry if args.max_retry is None else args.max_retry
    return HeartbeatSettings(interval=interval, grace_period=grace, max_retry=retry)


def _work(args: argparse.Namespace, url: str, *, worker: bool) -> int:
    """``run`` and ``worker``: the same loop; ``run`` also prints the Pareto set."""
    spec = resolve_spec(args.study)
    resolve_device(args.device)  # a bad --device is refused before a database is created
    storage = open_storage(url, heartbeat=_heartbeat(args, spec))
    if args.threads:
        torch.set_num_threads(args.threads)
    with stop_on_signals() as stop:
        report = run_study(
            spec,
            storage,
            n_trials=args.n_trials,
            max_trials=getattr(args, "max_trials", None),
            timeout=args.timeout,
            study_name=args.study_name,
            device=args.device,
            data_dir=args.data_dir,
            seed=args.seed,
            worker_index=getattr(args, "worker_index", 0),
            epochs=args.epochs,
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
        _print_best(study, "table")
    return 1 if report.stopped_for_failures else 0


def _cmd_run(args: argparse.Namespace, url: str) -> int:
    return _work(args, url, worker=False)


def _cmd_worker(args: argparse.Namespace, url: str) -> int:
    return _work(args, url, worker=True)


def _cmd_launch(args: argparse.Namespace, url: str) -> int:
    spec = resolve_spec(args.study)
    resolve_device(args.device)  # a bad --device is refused before a database is created
    storage = open_storage(url, heartbeat=_heartbeat(args, spec))
    # Create the study here, so a bad file or storage fails once, before any worker starts.
    study = open_study(spec, storage, study_name=args.study_name)
    forwarded: list[str] = []
    if args.threads is None and not args.gpus:
        # N processes on the CPU each with one thread per core would oversubscribe it many
        # times over (seen here: trials 10-20x slower); share the cores out instead.
        args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    for flag in (
        "n_trials",
        "max_trials",
        "timeout",
        "study_name",
        "data_dir",
        "seed",
        "epochs",
        "threads",
        "heartbeat_interval",
        "grace_period",
        "max_retry",
    ):
        value = getattr(args, flag)
        if value is not None:
            forwarded += [f"--{flag.replace('_', '-')}", str(value)]
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else []
    if not gpus:
        forwarded += ["--device", args.device]
    _logger.info("study %r on %s: %d workers", study.study_name, redact_url(url), args.workers)
    return launch_workers(
        study,
        args.study,
        url,
        n_workers=args.workers,
        budget=args.n_trials or spec.n_trials,
        worker_args=forwarded,
        gpus=gpus,
        progress=show_progress(),
    )


def _cmd_serve_storage(args: argparse.Namespace, url: str) -> int:
    serve_storage(url, host=args.host, port=args.port, heartbeat=_heartbeat(args, None))
    return 0


def _cmd_storage(args: argparse.Namespace, url: str) -> int:
    status = check_storage(url)
    print(f"storage:        {status.url}")
    print(f"backend:        {status.backend}")
    print(f"schema version: {status.schema_version}")
    print(f"this optuna:    {status.head_version}")
    print(f"studies:        {status.n_studies}")
    if status.needs_upgrade:
        print(f"upgrade needed: run `optuna storage upgrade --storage {status.url}`")
        return 1
    print("upgrade needed: no")
    return 0


def _print_best(study: optuna.Study, fmt: str) -> None:
    trials = best_trials(study)
    rows = trial_rows(study, trials)
    if fmt == "json":  # the full per-epoch validation curve, as every worker shared it
        for row, t in zip(rows, trials, strict=True):
            row["val_accuracy"] = t.user_attrs.get("val_accuracy", [])
    if fmt == "table":
        kind = "Pareto-optimal trials" if len(study.directions) > 1 else "Best trial"
        print(f"{kind} of {study.study_name!r} ({', '.join(metric_names(study))}):")
    print(format_rows(rows, fmt))


def _cmd_catalog(args: argparse.Namespace, url: str) -> int:
    rows = [
        {
            "name": s.name,
            "dataset": s.dataset.name,
            "family": s.objective.space.model.family,
            "objectives": ",".join(s.objectives),
            "trials": s.n_trials,
            "description": s.description,
        }
        for s in catalog()
    ]
    print(format_rows(rows))
    return 0


def _cmd_studies(args: argparse.Namespace, url: str) -> int:
    print(format_rows(summary_rows(open_storage(url, heartbeat=None, create=False))))
    return 0


def _cmd_best(args: argparse.Namespace, url: str) -> int:
    storage = open_storage(url, heartbeat=None, create=False)
    _print_best(load_named_study(storage, args.study, url), args.format)
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "worker": _cmd_worker,
    "launch": _cmd_launch,
    "catalog": _cmd_catalog,
    "studies": _cmd_studies,
    "best": _cmd_best,
    "serve-storage": _cmd_serve_storage,
    "storage": _cmd_storage,
    "dashboard": _dashboard.command,
    "report": _report.command,
    "export": _export.command_export,
    "evaluate": _export.command_evaluate,
}


if __name__ == "__main__":
    sys.exit(main())
