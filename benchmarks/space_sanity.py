"""Do a shipped space's random points train to sensible networks on real images?

The first trials of every study are random (a sampler's start-up trials), so a space whose
random points often end near chance wastes a new user's first minutes and misleads them.
This runs ``--trials`` trials per catalog study with Optuna's ``RandomSampler`` (seeded)
on real handwritten digits, with the study file's epochs, space and training protocol,
and reports the share of trials below 50% validation accuracy, with each trial's
parameters so a failure can be traced to its cause.

Data, offline: ``digits-cnn`` reads scikit-learn's 8x8 digits as it ships.
``mnist-cnn`` reads the same 1,797 digits upscaled to 28x28 (bilinear, PIL) and written as
MNIST IDX files, so they go through torchvision's real ``MNIST`` reader; that is a
small MNIST (1,437 training images, about a sixth of the 8,000 a user saw fail), the
hardest case for a fixed epoch budget.

Run:
    python -m benchmarks.space_sanity                          # 24 trials per study
    python -m benchmarks.space_sanity --trials 40 --studies mnist-cnn

The JSON result is printed and written to ``--out``
(default ``benchmarks/results/space_sanity.json``).
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from benchmarks._common import positive_int, write_report
from nas_objectives import Objective, load_dataset
from studies.spec import resolve_spec

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "space_sanity.json"
CHANCE_LINE = 0.5


def write_digits_as_mnist(root: Path) -> None:
    """scikit-learn's digits, upscaled to 28x28, as MNIST IDX files under ``root/MNIST/raw``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images) * (255 / 16)).astype(np.uint8)
    big = np.stack(
        [np.asarray(Image.fromarray(a).resize((28, 28), Image.Resampling.BILINEAR)) for a in images]
    )
    labels = np.asarray(bunch.target, dtype=np.uint8)
    n_test = len(labels) // 5
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (
        ("train", big[n_test:], labels[n_test:]),
        ("t10k", big[:n_test], labels[:n_test]),
    ):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, *x.shape) + x.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, len(y)) + y.tobytes()
        )


def measure(study: str, trials: int, seed: int, data_dir: Path) -> dict[str, Any]:
    spec = resolve_spec(study)
    data = load_dataset(
        spec.dataset.name,
        data_dir=data_dir,
        val_fraction=spec.dataset.val_fraction,
        download=False,
        seed=spec.seed,
    )
    objective = Objective(spec.objective, data)
    directions = spec.objective.directions
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed))
    t0 = time.perf_counter()
    st.optimize(objective, n_trials=trials, catch=(Exception,))
    seconds = time.perf_counter() - t0
    rows = []
    for t in st.trials:
        acc = t.values[0] if t.values else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "accuracy": acc,
                "params": t.user_attrs.get("params"),
                "arch": t.user_attrs.get("arch"),
                "fail_reason": t.user_attrs.get("fail_reason"),
            }
        )
    scored = [float(r["accuracy"]) for r in rows if r["accuracy"] is not None]
    below = [a for a in scored if a < CHANCE_LINE]
    return {
        "study": study,
        "dataset": spec.dataset.name,
        "train_images": len(data.y_train),
        "epochs": spec.objective.epochs,
        "trials": len(rows),
        "failed": sum(r["state"] == "FAIL" for r in rows),
        "share_below_50pct": (len(below) + sum(r["accuracy"] is None for r in rows)) / len(rows),
        "median_accuracy": float(np.median(scored)) if scored else None,
        "seconds": seconds,
        "trial_rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=positive_int, default=24)
    p.add_argument("--studies", nargs="+", default=["digits-cnn", "mnist-cnn"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    os.environ.setdefault("NAS_STUDY_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        write_digits_as_mnist(Path(tmp))
        results = [measure(s, args.trials, args.seed, Path(tmp)) for s in args.studies]
    report = {
        "benchmark": "space_sanity",
        "sampler": f"RandomSampler(seed={args.seed})",
        "chance_line": CHANCE_LINE,
        "load_average": os.getloadavg(),
        "summary": {r["study"]: r["share_below_50pct"] for r in results},
        "studies": results,
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
