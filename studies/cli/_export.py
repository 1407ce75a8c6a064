"""``nas-study export`` and ``nas-study evaluate``: a trial's model, retrained and written
to a directory, and its test accuracy.

What needs torch (retraining, writing, loading a model; the device) is imported inside
the handlers, so building the parser (``nas-study --help``) never loads it.
"""

from __future__ import annotations

import argparse
import json
import logging

from nas_objectives import ExportError, record
from storage import open_storage, redact_url
from studies.cli._args import Parser, load_named_study, positive_int, storage_arg
from studies.results import BEST, format_rows, metric_names, replay_trial, select_trial, stored_spec

_logger = logging.getLogger(__name__)


#: ``--trial best``.


def _trial_arg(text: str) -> int | str:
    if text == BEST:
        return BEST
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a trial number or 'best', got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"trial numbers start at 0, got {value}")
    return value


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("export", help="retrain a trial's model and write it to a directory")
    p.set_defaults(handler=command_export)
    p.add_argument("study", help="study name in the storage, or a catalog name or study file")
    p.add_argument(
        "--trial",
        type=_trial_arg,
        required=True,
        metavar="N|best",
        help="trial number, or 'best': the most accurate Pareto-optimal trial",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    storage_arg(p)
    p.add_argument(
        "--max-params",
        type=positive_int,
        metavar="P",
        help="with --trial best: only trials with at most P parameters",
    )
    p.add_argument(
        "--epochs", type=positive_int, metavar="E", help="default: the epochs the trial ran"
    )
    p.add_argument(
        "--seed", type=int, metavar="S", help="study seed (default: the study file's); +trial"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")
    p.add_argument("--force", action="store_true", help="overwrite an export in a non-empty DIR")
    p.add_argument("--torchscript", action="store_true", help="also write model.torchscript.pt")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs onnx)")

    e = sub.add_parser("evaluate", help="report an exported model's test accuracy")
    e.set_defaults(handler=command_evaluate)
    e.add_argument("dir", help="an export directory")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    e.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")
    e.add_argument("--format", choices=("table", "json"), default="table")


def command_export(args: argparse.Namespace, url: str) -> int:
    from nas_objectives import (
        TrainingError,
        check_export_dir,
        check_export_formats,
        count_params,
        load_dataset,
        retrain,
        save_export,
    )
    from studies.run import resolve_device

    # Everything that can be refused is refused before the study is read or anything trains.
    check_export_formats(torchscript=args.torchscript, onnx=args.onnx)
    out = check_export_dir(args.out, force=args.force)
    if args.max_params is not None and args.trial != BEST:
        raise ExportError("--max-params only applies with --trial best")
    device = resolve_device(args.device)
    study = load_named_study(open_storage(url, heartbeat=None, create=False), args.study, url)
    spec = stored_spec(study)
    trial = select_trial(study, args.trial, max_params=args.max_params)
    data = load_dataset(
        spec.dataset.name,
        device=device,
        data_dir=args.data_dir or spec.dataset.data_dir,
        val_fraction=spec.dataset.val_fraction,
        seed=spec.seed,
        **spec.dataset.reader_options(),
    )
    layout, settings = replay_trial(spec, trial, data)
    # The trial stores the seed it trained with (a `run --seed` included); older trials
    # and an explicit --seed fall back to study seed + trial number, as the objective does.
    stored = trial.user_attrs.get(record.SEED)
    if args.seed is not None or not isinstance(stored, int):
        seed = (spec.seed if args.seed is None else args.seed) + trial.number
    else:
        seed = stored
    epochs = args.epochs or trial.user_attrs.get(record.EPOCHS_RUN) or spec.objective.epochs
    n_samples = len(data.y_train) + len(data.y_val)
    _logger.info(
        "retraining trial %d of %r for %d epoch(s) on train+validation (%d samples, %s)",
        trial.number,
        study.study_name,
        epochs,
        n_samples,
        device,
    )
    try:
        model, result = retrain(
            layout,
            settings,
            data,
            epochs=epochs,
            seed=seed,
            augment=spec.objective.augment,
            min_steps=spec.objective.space.training.min_steps,
        )
    except TrainingError as exc:  # a NaN loss, say: the trial's settings, not a bug here
        raise ExportError(f"trial {trial.number}: retraining failed: {exc}") from None
    n_params = count_params(model)
    stored_params = trial.user_attrs.get(record.PARAMS)
    if stored_params is not None and stored_params != n_params:
        raise ExportError(
            f"trial {trial.number}: the rebuilt model has {n_params} parameters, the trial "
            f"stored {stored_params}"
        )
    names = metric_names(study)
    values = dict(zip(names, trial.values or [], strict=False))
    save_export(
        out,
        model,
        layout,
        dataset=spec.dataset.name,
        val_fraction=spec.dataset.val_fraction,
        dataset_options={**spec.dataset.reader_options(), "seed": spec.seed},
        normalization={"mean": list(data.mean), "std": list(data.std), "scale": data.scale},
        classes=data.classes,
        training={
            "seed": seed,
            "epochs": epochs,
            "split": "train+validation",
            "n_samples": n_samples,
            "device": str(device),
            "optimizer_settings": settings.to_dict(),
            "train_seconds": round(result.train_seconds, 4),
        },
        provenance={
            "study": study.study_name,
            "trial": trial.number,
            "values": values,
            "arch": trial.user_attrs.get(record.ARCH, ""),
            "params": stored_params,
            "study_seed": seed - trial.number,
            "storage": redact_url(url),
        },
        metrics={
            "trial_values": values,
            "train_loss": [ep.train_loss for ep in result.history],
            "train_seconds": round(result.train_seconds, 4),
        },
        force=args.force,
        torchscript=args.torchscript,
        onnx=args.onnx,
    )
    print(
        f"exported trial {trial.number} of {study.study_name!r} to {out}: "
        f"{layout.summary()} | {settings.summary()}; {n_params} params, {epochs} epoch(s) "
        f"on train+validation, seed {seed}"
    )
    return 0


def command_evaluate(args: argparse.Namespace, url: str) -> int:
    from nas_objectives import evaluate_export
    from studies.run import resolve_device

    result = evaluate_export(args.dir, device=resolve_device(args.device), data_dir=args.data_dir)
    row = result.to_dict()
    if args.format == "json":
        print(json.dumps(row, indent=2))
    else:
        print(format_rows([row]))
    return 0
