"""``nas-study report``: write a study's report."""

from __future__ import annotations

import argparse

from storage import open_storage
from studies.cli._args import Parser, load_named_study, storage_arg
from studies.results import REPORT_FORMATS as FORMATS
from studies.results import write_report


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a study")
    p.set_defaults(handler=command)
    p.add_argument("study", help="study name in the storage, or a catalog name or study file")
    storage_arg(p)
    p.add_argument(
        "--out", metavar="PATH", help="file to write (default: <study name>-report.<format>)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="html",
        help="html: the whole report, opens offline (default); png: the Pareto front, or the "
        "optimization history of a single-objective study (needs kaleido)",
    )


def command(args: argparse.Namespace, url: str) -> int:
    study = load_named_study(open_storage(url, heartbeat=None, create=False), args.study, url)
    path = write_report(study, args.out, args.format)
    print(f"report of {study.study_name!r} written to {path}")
    return 0
