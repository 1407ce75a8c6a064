"""The ``nas-study`` command line: one parser, one module per group of commands.

Every expected problem (a bad study file, an unreachable or unknown storage, a missing
dataset, a bad option) ends with one line on stderr and exit status 2, never a traceback.

Only the commands that train or load models import torch and the worker loop, inside their
handlers: ``--help``, ``catalog``, ``studies``, ``best``, ``report`` and ``dashboard``
never do (``tests/studies/cli/test_cheap_commands.py`` checks it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

import optuna

from nas_objectives import DatasetError, ExportError
from storage import StorageError, redact_text, resolve_storage_url
from studies.cli import _dashboard, _export, _inspect, _oneshot, _report, _run
from studies.cli._args import Parser
from studies.errors import StudyRunError, StudySpecError

_EXPECTED = (StudySpecError, StorageError, DatasetError, StudyRunError, ExportError)
_OWN_LOGGERS = ("nas_study", "studies", "storage", "nas_objectives")
#: The command groups, in the order ``--help`` lists them.
_GROUPS = (_run, _oneshot, _inspect, _dashboard, _report, _export)
#: The commands that run trials, or serve those that do, and may draw progress bars.
_RUNS_TRIALS = frozenset({"run", "worker", "launch", "oneshot", "serve-storage"})


def build_parser() -> argparse.ArgumentParser:
    """The whole ``nas-study`` parser; each subcommand sets ``handler(args, url) -> int``."""
    parser = Parser(
        prog="nas-study",
        description="Hyperparameter and neural-architecture search on a shared Optuna database.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every trial")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nas-study``; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, args.quiet, runs_trials=args.command in _RUNS_TRIALS)
    url = getattr(args, "url", None) or resolve_storage_url(getattr(args, "storage", None))
    try:
        return int(args.handler(args, url))
    except _EXPECTED as exc:
        print(f"nas-study: error: {redact_text(str(exc), url)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas-study: interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool, quiet: bool, *, runs_trials: bool) -> None:
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
    # Optuna's "experimental" warnings (heartbeats, say) name APIs our users never call.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Per-trial lines are noise under a progress bar; keep them for logs and --verbose.
    # A command that runs no trial has none to log, and does not load the worker loop to ask.
    chatty = verbose or (runs_trials and not (quiet or _progress_bars()))
    optuna.logging.set_verbosity(optuna.logging.INFO if chatty else optuna.logging.WARNING)


def _progress_bars() -> bool:
    from studies.run import show_progress  # the worker loop: only for commands that run it

    return show_progress()


__all__ = ["build_parser", "main"]
