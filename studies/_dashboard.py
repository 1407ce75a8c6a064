"""``nas-study dashboard``: optuna-dashboard on the study storage, loopback unless a token
guards it. (Stub: filled in by issue 5.)"""

from __future__ import annotations

import argparse

from studies._cli_args import Parser, storage_arg


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("dashboard", help="serve optuna-dashboard on the study storage")
    storage_arg(p)


def command(args: argparse.Namespace, url: str) -> int:
    raise NotImplementedError
