"""Build the tabular benchmark: train every configuration of a grid study file, store it.

Every configuration that :func:`nas_objectives.suggest` can draw from the study file's
space (``digits-mlp-table.toml``: 1,053 MLPs on the 8x8 digits) is trained with the
project's own pieces, exactly as :class:`nas_objectives.Objective` trains a trial with
seed ``s`` (``torch.manual_seed(s)``, :func:`~nas_objectives.build_model`,
:func:`~nas_objectives.train` with ``seed=s``; ``load_dataset`` with the study's
validation split), on the CPU with one torch thread, once per seed.

Stored per configuration and seed (one CSV row): the trial parameters (JSON, Optuna's
names), ``arch``, ``seed``, ``params``, ``flops`` (``count_flops``), ``status`` (``ok``,
or ``nonfinite`` when the loss diverged; its curve stops at the last finite epoch),
``val_acc`` (validation accuracy per epoch, ``;``-separated), ``test_acc`` and
``train_seconds``. The settings (space, epochs, seeds, batch size, versions) go to a JSON
file next to it.

The build is resumable: rows are appended to ``<out>.partial`` as they finish, and a
restarted build skips the rows already there. When all are done it writes the gzipped CSV
and removes the partial file.

Run (about 4 CPU-minutes on one core)::

    nohup nice python -m benchmarks.tabular.build_table &
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks.tabular._grid import config_key, enumerate_grid
from nas_objectives import (
    NonFiniteLossError,
    build_model,
    count_flops,
    count_params,
    load_dataset,
    predict,
    suggest,
    train,
)
from studies import StudySpec, load_spec

HERE = Path(__file__).resolve().parent

COLUMNS = (
    "config",
    "arch",
    "seed",
    "params",
    "flops",
    "status",
    "val_acc",
    "test_acc",
    "train_seconds",
)
DEFAULT_SPEC = HERE / "digits-mlp-table.toml"
DEFAULT_OUT = HERE / "digits-mlp-table.csv.gz"


def train_one(spec: StudySpec, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train one configuration with one seed as the project's objective would; one row."""
    data = load_dataset(spec.dataset.name, val_fraction=spec.dataset.val_fraction)
    trial = optuna.trial.FixedTrial(params)
    layout, settings = suggest(trial, spec.objective.space, data.input_shape, data.num_classes)
    torch.manual_seed(seed)
    model = build_model(layout)
    n_params, flops = count_params(model), count_flops(model, data.input_shape)
    curve: list[float] = []
    status = "ok"
    start = time.perf_counter()
    try:
        train(
            model,
            settings,
            data,
            epochs=spec.objective.epochs,
            seed=seed,
            on_epoch=lambda ep: curve.append(ep.val_accuracy),
        )
    except NonFiniteLossError:
        status = "nonfinite"
    seconds = time.perf_counter() - start
    test_acc = float(
        (predict(model, data.x_test, prepare=data.normalize) == data.y_test).float().mean()
    )
    return {
        "config": config_key(params),
        "arch": f"{layout.summary()} | {settings.summary()}",
        "seed": seed,
        "params": n_params,
        "flops": flops,
        "status": status,
        "val_acc": ";".join(f"{a:.6f}" for a in curve),
        "test_acc": f"{test_acc:.6f}" if status == "ok" else "",
        "train_seconds": f"{seconds:.4f}",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="grid study file")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="gzipped CSV to write")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    ap.add_argument("--limit", type=int, default=None, help="only the first N configurations")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    data = load_dataset(spec.dataset.name, val_fraction=spec.dataset.val_fraction)
    grid = enumerate_grid(spec.objective.space, data.input_shape, data.num_classes)
    if args.limit is not None:
        grid = grid[: args.limit]
    partial = args.out.with_name(args.out.name + ".partial")
    done: set[tuple[str, int]] = set()
    if partial.exists():
        with partial.open(newline="") as f:
            done = {(r["config"], int(r["seed"])) for r in csv.DictReader(f)}
    todo = [(p, s) for p in grid for s in args.seeds if (config_key(p), s) not in done]
    print(f"{len(grid)} configurations x {len(args.seeds)} seeds; {len(todo)} to train")

    new_file = not partial.exists()
    start = time.perf_counter()
    with partial.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for i, (params, seed) in enumerate(todo, 1):
            writer.writerow(train_one(spec, params, seed))
            f.flush()
            if i % 50 == 0 or i == len(todo):
                rate = (time.perf_counter() - start) / i
                print(f"{i}/{len(todo)} trained, {rate:.2f} s each", flush=True)

    with partial.open(newline="") as f:
        rows = {(r["config"], int(r["seed"])): r for r in csv.DictReader(f)}
    order = {config_key(p): i for i, p in enumerate(grid)}
    keys = sorted((k for k in rows if k[0] in order), key=lambda k: (order[k[0]], k[1]))
    if len(keys) != len(grid) * len(args.seeds):
        raise SystemExit(f"{partial}: incomplete ({len(keys)} rows); run again to resume")
    # mtime=0: the same table gives the same bytes.
    with (
        args.out.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="") as f,
    ):
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[k] for k in keys)
    settings = {
        "study_file": args.spec.name,
        "dataset": spec.dataset.name,
        "val_fraction": spec.dataset.val_fraction,
        "epochs": spec.objective.epochs,
        "seeds": args.seeds,
        "batch_size": list(spec.objective.space.training.batch_size.options),
        "configurations": len(grid),
        "rows": len(keys),
        "device": "cpu",
        "torch_threads": 1,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seeding": "torch.manual_seed(seed); build_model(layout); train(..., seed=seed)",
    }
    args.out.with_name(args.out.name.split(".")[0] + ".json").write_text(
        json.dumps(settings, indent=2) + "\n"
    )
    partial.unlink()
    print(f"wrote {args.out} ({len(keys)} rows)")


if __name__ == "__main__":
    main()
