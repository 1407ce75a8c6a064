"""``nas-study catalog``, ``studies``, ``best`` and ``storage check``: the commands that only
read. None of them creates a database: a missing SQLite file is an error."""

from __future__ import annotations

import argparse

import optuna

from nas_objectives import record
from storage import check_storage, open_storage
from studies.cli._args import Parser, load_named_study, storage_arg
from studies.results import (
    TABLE_FORMATS,
    best_trials,
    format_rows,
    metric_names,
    summary_rows,
    trial_rows,
)
from studies.spec import catalog


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    sub.add_parser("catalog", help="list the shipped study files").set_defaults(
        handler=_cmd_catalog
    )

    studies = sub.add_parser("studies", help="list the studies in a storage")
    studies.set_defaults(handler=_cmd_studies)
    storage_arg(studies)

    best = sub.add_parser("best", help="print the Pareto set (or the best trial)")
    best.set_defaults(handler=_cmd_best)
    best.add_argument("study", help="study name in the storage, or a catalog name or study file")
    storage_arg(best)
    best.add_argument("--format", choices=TABLE_FORMATS, default="table")

    check = sub.add_parser("storage", help="storage maintenance")
    check_sub = check.add_subparsers(dest="storage_command", required=True, parser_class=Parser)
    check_url = check_sub.add_parser("check", help="connect and report the schema version")
    check_url.set_defaults(handler=_cmd_storage_check)
    check_url.add_argument("url", metavar="URL")


def print_best(study: optuna.Study, fmt: str) -> None:
    """Print the Pareto set (or the best trial) of ``study`` as a table, JSON or CSV."""
    trials = best_trials(study)
    rows = trial_rows(study, trials)
    if fmt == "json":  # the full per-epoch validation curve, as every worker shared it
        for row, t in zip(rows, trials, strict=True):
            row[record.VAL_ACCURACY] = t.user_attrs.get(record.VAL_ACCURACY, [])
    if fmt == "table":
        kind = "Pareto-optimal trials" if len(study.directions) > 1 else "Best trial"
        print(f"{kind} of {study.study_name!r} ({', '.join(metric_names(study))}):")
    print(format_rows(rows, fmt))


def _cmd_storage_check(args: argparse.Namespace, url: str) -> int:
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
    print_best(load_named_study(storage, args.study, url), args.format)
    return 0
