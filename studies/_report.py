"""``nas-study report``: one self-contained HTML report of a study. (Stub: issue 5.)"""

from __future__ import annotations

import argparse

from studies._cli_args import Parser, storage_arg


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a study")
    p.add_argument("study")
    storage_arg(p)


def command(args: argparse.Namespace, url: str) -> int:
    raise NotImplementedError
