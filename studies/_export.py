"""``nas-study export`` and ``nas-study evaluate``: a trial's model, retrained and written
to a directory, and its test accuracy. (Stub: issue 5.)"""

from __future__ import annotations

import argparse

from studies._cli_args import Parser, storage_arg


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("export", help="retrain a trial's model and write it to a directory")
    p.add_argument("study")
    storage_arg(p)
    e = sub.add_parser("evaluate", help="report an exported model's test accuracy")
    e.add_argument("dir")


def command_export(args: argparse.Namespace, url: str) -> int:
    raise NotImplementedError


def command_evaluate(args: argparse.Namespace, url: str) -> int:
    raise NotImplementedError
