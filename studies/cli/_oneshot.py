"""``nas-study oneshot``: DARTS searches over a cell study, their cells enqueued as trials.

The search (torch) and the worker side (:mod:`studies.run`) are imported inside the
handler, so building the parser (``nas-study --help``) never loads them.
"""

from __future__ import annotations

import argparse
import logging

from nas_objectives._cell_graph import to_nb201
from storage import open_storage, redact_url
from studies.cli._args import Parser, positive_int, storage_arg
from studies.results import format_rows
from studies.spec import resolve_spec

_logger = logging.getLogger("nas_study")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive, got 0")
    return value


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "oneshot",
        help="search a cell study by DARTS and enqueue the derived cells as trials",
        description=(
            "Run DARTS searches over the study's cell space, one per lambda of a sweep from "
            "0 (accuracy only) to --lambda-max (cost strongly penalised), and enqueue each "
            "derived cell into the study; workers then train them like any trial. Several "
            "processes running the same sweep on one storage share its lambdas: none runs twice."
        ),
    )
    p.set_defaults(handler=_cmd_oneshot)
    p.add_argument("study", help="catalog name or study file of a cell study")
    storage_arg(p)
    p.add_argument(
        "--candidates",
        type=positive_int,
        default=4,
        metavar="K",
        help="searches (lambdas) in the sweep (default 4)",
    )
    p.add_argument(
        "--lambda-max",
        type=_non_negative_float,
        default=1.0,
        metavar="L",
        help="weight of the normalised cost at the sweep's end (default 1)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        metavar="E",
        help="supernet epochs per search (default 10)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="B",
        help="batch of each half of the training split (default 64)",
    )
    p.add_argument(
        "--second-order",
        action="store_true",
        help="DARTS' second-order (unrolled) alpha gradient; default first order",
    )
    p.add_argument(
        "--no-guard",
        action="store_true",
        help="no beta-DARTS regulariser against collapse into skips and pools",
    )
    p.add_argument(
        "--beta-weight",
        type=_non_negative_float,
        default=1.0,
        metavar="W",
        help="final weight of the beta-DARTS regulariser (default 1)",
    )
    p.add_argument(
        "--arch-lr",
        type=_positive_float,
        default=3e-4,
        metavar="LR",
        help="Adam learning rate of alpha (DARTS: 3e-4)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="base seed of the sweep (default: the study's); lambda i uses N + i",
    )
    p.add_argument("--study-name", metavar="NAME", help="name in the storage (default: the file's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")


def _cmd_oneshot(args: argparse.Namespace, url: str) -> int:
    from nas_objectives import load_dataset
    from studies.oneshot import SearchSettings, check_oneshot_space, run_oneshot
    from studies.run import open_study, resolve_device

    spec = resolve_spec(args.study)
    check_oneshot_space(spec)  # before any database or dataset is touched
    device = resolve_device(args.device)
    settings = SearchSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        second_order=args.second_order,
        guard=not args.no_guard,
        beta_weight=args.beta_weight,
        alpha_lr=args.arch_lr,
        seed=spec.seed if args.seed is None else args.seed,
        augment=spec.objective.augment,
    )
    data = load_dataset(
        spec.dataset.name,
        device=device,
        data_dir=args.data_dir or spec.dataset.data_dir,
        val_fraction=spec.dataset.val_fraction,
        seed=spec.seed,  # split as the workers split: the search never sees their validation
        family=spec.objective.space.model.family,
        **spec.dataset.reader_options(),
    )
    storage = open_storage(url, heartbeat=None)
    study = open_study(spec, storage, study_name=args.study_name)
    _logger.info(
        "oneshot on study %r (%s) at %s: %d candidates, %s",
        study.study_name,
        spec.path,
        redact_url(url),
        args.candidates,
        settings.method,
    )
    proposals = run_oneshot(
        spec,
        study,
        data,
        candidates=args.candidates,
        settings=settings,
        lambda_max=args.lambda_max,
    )
    rows = [
        {
            "lambda": round(p.lambda_, 4),
            "state": p.state,
            "macro": " ".join(f"{k}={v}" for k, v in p.params.items() if not k.startswith("edge_")),
            "arch": to_nb201(p.cell) if p.cell else p.reason,
            "cost": int(p.cost) if p.cell else "",
            "seconds": round(p.seconds, 1),
        }
        for p in proposals
    ]
    if rows:
        print(format_rows(rows))
    else:
        print("nothing left to search: every lambda of this sweep was claimed already")
    enqueued = sum(p.state == "enqueued" for p in proposals)
    _logger.info(
        "enqueued %d cell(s) into %r; run workers to train them", enqueued, study.study_name
    )
    return 0 if all(p.state == "enqueued" for p in proposals) else 1
