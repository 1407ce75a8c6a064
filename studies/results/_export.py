"""``nas-study export`` and ``nas-study evaluate``: a trial's model, retrained and written
to a directory, and its test accuracy.

The study side only: finding the study and the trial, and replaying the study's search
space on the trial's stored parameters. Training, the file format, verification and
evaluation live in :mod:`nas_objectives.export`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import (
    ExportError,
    Layout,
    OptimizerSettings,
    TensorData,
    TrainingError,
    check_export_dir,
    check_export_formats,
    count_params,
    evaluate_export,
    load_dataset,
    retrain,
    save_export,
    suggest,
)
from storage import open_storage, redact_url
from studies._cli_args import Parser, load_named_study, positive_int, storage_arg
from studies._results import best_trials, format_rows, metric_names
from studies._runner import SPEC_ATTR, resolve_device
from studies._spec import StudySpec, spec_from_data

_logger = logging.getLogger(__name__)
#: ``--trial best``.
BEST = "best"


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
    e.add_argument("dir", help="an export directory")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    e.add_argument("--data-dir", metavar="DIR", help="where torchvision datasets are read")
    e.add_argument("--format", choices=("table", "json"), default="table")


def command_export(args: argparse.Namespace, url: str) -> int:
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
    )
    layout, settings = replay_trial(spec, trial, data)
    # The trial stores the seed it trained with (a `run --seed` included); older trials
    # and an explicit --seed fall back to study seed + trial number, as the objective does.
    stored = trial.user_attrs.get("seed")
    if args.seed is not None or not isinstance(stored, int):
        seed = (spec.seed if args.seed is None else args.seed) + trial.number
    else:
        seed = stored
    epochs = args.epochs or trial.user_attrs.get("epochs_run") or spec.objective.epochs
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
        model, result = retrain(layout, settings, data, epochs=epochs, seed=seed)
    except TrainingError as exc:  # a NaN loss, say: the trial's settings, not a bug here
        raise ExportError(f"trial {trial.number}: retraining failed: {exc}") from None
    n_params = count_params(model)
    stored_params = trial.user_attrs.get("params")
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
        normalization={"mean": list(data.mean), "std": list(data.std)},
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
            "arch": trial.user_attrs.get("arch", ""),
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
    result = evaluate_export(args.dir, device=resolve_device(args.device), data_dir=args.data_dir)
    row = result.to_dict()
    if args.format == "json":
        print(json.dumps(row, indent=2))
    else:
        print(format_rows([row]))
    return 0


def stored_spec(study: optuna.Study) -> StudySpec:
    """The study file ``study`` was created from, as stored with it.

    Raises:
        ExportError: the study carries no study file (nas-study did not create it).
        StudySpecError: the stored file is no longer valid.
    """
    source = study.user_attrs.get(SPEC_ATTR)
    if not isinstance(source, dict):
        raise ExportError(
            f"study {study.study_name!r} has no stored study file (user attribute "
            f"{SPEC_ATTR}): nas-study did not create it, so its trials cannot be rebuilt"
        )
    return spec_from_data(source, f"study {study.study_name!r} (stored study file)")


def select_trial(
    study: optuna.Study, which: int | str, *, max_params: int | None = None
) -> FrozenTrial:
    """Trial number ``which``, or for ``"best"`` the most accurate Pareto-optimal trial.

    ``"best"``: among the Pareto set (feasible trials only) the one with the highest
    ``accuracy`` (else ``f1``), then the fewest parameters, then the lowest number; in a
    single-objective study, the best feasible trial. ``max_params`` keeps only trials whose
    stored ``params`` are at most that. Only COMPLETE trials are exported: a PRUNED trial
    never finished training and has no values to report.

    Raises:
        ExportError: no such trial, a trial that is not COMPLETE, or none that qualifies.
    """
    name = study.study_name
    if which != BEST:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == which]
        if not found:
            n = len(study.get_trials(deepcopy=False))
            known = f"trials 0-{n - 1}" if n else "no trials"
            raise ExportError(f"study {name!r} has no trial {which} ({known})")
        trial = found[0]
        if trial.state != TrialState.COMPLETE:
            raise ExportError(
                f"trial {which} of study {name!r} is {trial.state.name}; only COMPLETE trials "
                f"can be exported"
            )
        return trial

    names = metric_names(study)
    if len(study.directions) == 1:
        pool = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values is not None and all(c <= 0 for c in t.constraints.values())
        ]
        index, maximize = 0, study.directions[0] == StudyDirection.MAXIMIZE
    else:
        pool = best_trials(study)
        quality = next((q for q in ("accuracy", "f1") if q in names), None)
        if quality is None:
            raise ExportError(
                f"study {name!r} has no accuracy objective (objectives: {', '.join(names)}); "
                f"pick a trial with --trial N"
            )
        index, maximize = names.index(quality), True
    if not pool:
        raise ExportError(f"study {name!r} has no COMPLETE feasible trial to export")
    if max_params is not None:
        under = [t for t in pool if _params(t) <= max_params]
        if not under:
            smallest = min(_params(t) for t in pool)
            raise ExportError(
                f"no {'best' if len(study.directions) == 1 else 'Pareto-optimal'} trial of "
                f"study {name!r} has at most {max_params} params (the smallest has "
                f"{smallest:g})"
            )
        pool = under
    sign = -1.0 if maximize else 1.0
    return min(pool, key=lambda t: (sign * t.values[index], _params(t), t.number))


def _params(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get("params")
    return float(value) if isinstance(value, (int, float)) else math.inf


def replay_trial(
    spec: StudySpec, trial: FrozenTrial, data: TensorData
) -> tuple[Layout, OptimizerSettings]:
    """Rebuild ``trial``'s layout and optimizer settings from its stored parameters, through
    the study's own search space, and check them against what the trial stored.

    Raises:
        ExportError: the parameters do not fit the space, or the replay differs from the
            trial's stored ``layout``/``optimizer_settings``.
    """
    where = f"trial {trial.number}"
    fixed = optuna.trial.FixedTrial(dict(trial.params), number=trial.number)
    try:
        layout, settings = suggest(fixed, spec.objective.space, data.input_shape, data.num_classes)
    except ValueError as exc:
        raise ExportError(
            f"{where}: its stored parameters do not fit the study's search space: {exc}"
        ) from None
    unused = sorted(set(trial.params) - set(fixed.params))
    if unused:
        raise ExportError(
            f"{where}: the study's search space does not use its parameter(s) "
            f"{', '.join(unused)}; the stored study file does not match the trial"
        )
    changed = sorted(n for n, d in fixed.distributions.items() if trial.distributions.get(n) != d)
    if changed:
        raise ExportError(
            f"{where}: the study's search space gives other ranges for {', '.join(changed)} "
            f"than the trial was sampled from"
        )
    _cross_check(where, "layout", trial.user_attrs.get("layout"), layout, Layout.from_dict)
    _cross_check(
        where,
        "optimizer_settings",
        trial.user_attrs.get("optimizer_settings"),
        settings,
        OptimizerSettings.from_dict,
    )
    return layout, settings


def _cross_check(where: str, attr: str, stored: Any, replayed: Any, parse: Any) -> None:
    if stored is None:  # a trial from before these attributes were stored
        return
    try:
        ok = parse(stored) == replayed
    except (TypeError, ValueError, KeyError):
        ok = False
    if not ok:
        raise ExportError(
            f"{where}: replaying its parameters gives {attr} {replayed.to_dict()}, but the "
            f"trial stored {stored}"
        )
