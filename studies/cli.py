"""The ``nas-study`` command line.

Every expected problem (a bad study file, an unreachable or unknown storage, a missing
dataset, a bad option) ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

import optuna

from nas_objectives import DatasetError
from storage import (
    StorageError,
    open_storage,
    redact_text,
    redact_url,
    resolve_storage_url,
)
from studies._catalog import DEFAULT_STUDY, catalog, resolve_spec
from studies._results import (
    FORMATS,
    best_trials,
    format_rows,
    metric_names,
    summary_rows,
    trial_rows,
)
from studies._runner import StudyRunError, count_budget, run_study, show_progress
from studies._spec import StudySpecError

_EXPECTED = (StudySpecError, StorageError, DatasetError, StudyRunError)
_logger = logging.getLogger("nas_study")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage first; keep it to the one line that matters.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="database URL; default: $NAS_STUDY_STORAGE, else sqlite:///nas-study.db",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nas-study",
        description="Hyperparameter and neural-architecture search on a shared Optuna database.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every trial")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="create or join a study and run its trials")
    run.add_argument(
        "study",
        nargs="?",
        default=DEFAULT_STUDY,
        help=f"catalog name or study file (default: {DEFAULT_STUDY})",
    )
    _storage_arg(run)
    run.add_argument(
        "--n-trials",
        type=_positive_int,
        metavar="N",
        help="the study's budget: COMPLETE + PRUNED trials across all workers",
    )
    run.add_argument("--timeout", type=_positive_float, metavar="S", help="stop after S seconds")
    run.add_argument(
        "--study-name", metavar="NAME", help="name in the storage (default: the file's name)"
    )
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")
    run.add_argument("--seed", type=int, metavar="N", help="sampler and training seed")
    run.add_argument("--epochs", type=_positive_int, metavar="E", help="override epochs per trial")

    sub.add_parser("catalog", help="list the shipped study files")

    studies = sub.add_parser("studies", help="list the studies in a storage")
    _storage_arg(studies)

    best = sub.add_parser("best", help="print the Pareto set (or the best trial)")
    best.add_argument("study", help="study name in the storage, or a catalog name or study file")
    _storage_arg(best)
    best.add_argument("--format", choices=FORMATS, default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-study``; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    url = resolve_storage_url(getattr(args, "storage", None))
    try:
        return _COMMANDS[args.command](args, url)
    except _EXPECTED as exc:
        print(f"nas-study: error: {redact_text(str(exc), url)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas-study: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # Per-trial lines are noise under a progress bar; keep them for logs and --verbose.
    quiet = show_progress() and not verbose
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)


def _cmd_run(args: argparse.Namespace, url: str) -> int:
    spec = resolve_spec(args.study)
    storage = open_storage(url)
    report = run_study(
        spec,
        storage,
        n_trials=args.n_trials,
        timeout=args.timeout,
        study_name=args.study_name,
        device=args.device,
        data_dir=args.data_dir,
        seed=args.seed,
        epochs=args.epochs,
        on_start=lambda study: print(
            f"study {study.study_name!r} ({spec.path}) on {redact_url(url)}", file=sys.stderr
        ),
    )
    study = report.study
    done = count_budget(study)
    print(
        f"ran {report.ran} trial(s) here; the study has {done}/{report.budget} complete or pruned",
        file=sys.stderr,
    )
    if report.stopped_for_failures:
        print(
            f"nas-study: error: stopped after {report.failed} failed trials in a row; "
            f"last reason: {report.last_failure}",
            file=sys.stderr,
        )
    _print_best(study, "table")
    return 1 if report.stopped_for_failures else 0


def _print_best(study: optuna.Study, fmt: str) -> None:
    rows = trial_rows(study, best_trials(study))
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
    print(format_rows(summary_rows(open_storage(url))))
    return 0


def _cmd_best(args: argparse.Namespace, url: str) -> int:
    storage = open_storage(url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    name = args.study
    if name not in names:
        with contextlib.suppress(StudySpecError):  # a catalog name or file names its study
            name = resolve_spec(args.study).name
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise StudyRunError(
                f"no study {args.study!r} in {redact_url(url)} (studies there: {known})"
            )
    _print_best(optuna.load_study(study_name=name, storage=storage), args.format)
    return 0


_COMMANDS = {"run": _cmd_run, "catalog": _cmd_catalog, "studies": _cmd_studies, "best": _cmd_best}


if __name__ == "__main__":
    sys.exit(main())
