"""The study ``digits-mlp`` written by hand, the way optuna-examples writes one.

It follows ``pytorch/pytorch_simple.py`` and ``multi_objective/pytorch_simple.py`` of
optuna-examples: a plain ``objective(trial)`` that builds an MLP with ``define_model``,
picks the optimizer by name from ``torch.optim``, trains with a ``DataLoader`` over a
``TensorDataset`` (one per trial, since the batch size is searched), validates once after
the last epoch and returns (validation accuracy, parameter count). The space is the one
``studies/spec/catalog/digits-mlp.toml`` describes, and the sampler is Optuna's default
``TPESampler(seed=...)``, as a user would write it. The data are nas-study's own digits
split (:func:`nas_objectives.load_dataset`), so both sides train and validate on the very
same images; the features are scaled and standardised here, by hand.

Run (``benchmarks/end_to_end.py`` starts it in a subprocess)::

    python -m benchmarks._end_to_end.handwritten --storage sqlite:///hand.db --seed 0
"""

from __future__ import annotations

import argparse
import sys

import optuna
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from nas_objectives import load_dataset

CLASSES = 10
STUDY_NAME = "handwritten"
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def get_digits() -> tuple[TensorDataset, TensorDataset]:
    """The training and validation splits as flat, standardised float features."""
    data = load_dataset("digits", device="cpu")
    # Pixels are 0..16; standardise with the training split's mean and std, as a
    # tutorial's ``transforms.Normalize`` does.
    x_train = data.x_train.float().flatten(1) / 16.0
    x_val = data.x_val.float().flatten(1) / 16.0
    mean, std = x_train.mean(), x_train.std()
    return (
        TensorDataset((x_train - mean) / std, data.y_train),
        TensorDataset((x_val - mean) / std, data.y_val),
    )


def define_model(trial: optuna.trial.Trial) -> nn.Sequential:
    """An MLP: the number of layers, units per layer, activation, norm and dropout."""
    n_layers = trial.suggest_int("n_layers", 1, 3)
    activation = trial.suggest_categorical("activation", list(ACTIVATIONS))
    norm = trial.suggest_categorical("norm", ["none", "batch", "layer"])
    dropout = trial.suggest_float("dropout", 0.0, 0.3)
    layers: list[nn.Module] = []
    in_features = 8 * 8
    for i in range(n_layers):
        out_features = trial.suggest_int(f"n_units_l{i}", 4, 256, log=True)
        layers.append(nn.Linear(in_features, out_features))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(out_features))
        elif norm == "layer":
            layers.append(nn.LayerNorm(out_features))
        layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Dropout(dropout))
        in_features = out_features
    layers.append(nn.Linear(in_features, CLASSES))
    return nn.Sequential(*layers)


def define_optimizer(trial: optuna.trial.Trial, model: nn.Module) -> optim.Optimizer:
    """AdamW, Adam or SGD, each with its own ranges (as in ``digits-mlp.toml``)."""
    optimizer_name = trial.suggest_categorical("optimizer", ["AdamW", "Adam", "SGD"])
    if optimizer_name == "AdamW":
        lr = trial.suggest_float("adamw_lr", 3e-4, 3e-2, log=True)
        weight_decay = trial.suggest_float("adamw_weight_decay", 1e-6, 1e-2, log=True)
        return optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if optimizer_name == "Adam":
        lr = trial.suggest_float("adam_lr", 3e-4, 3e-2, log=True)
        return optim.Adam(model.parameters(), lr=lr)
    lr = trial.suggest_float("sgd_lr", 1e-2, 0.5, log=True)
    momentum = trial.suggest_float("sgd_momentum", 0.8, 0.99)
    nesterov = trial.suggest_categorical("sgd_nesterov", [False, True])
    return optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov)


def objective(
    trial: optuna.trial.Trial,
    train_set: TensorDataset,
    val_set: TensorDataset,
    epochs: int,
    seed: int,
) -> tuple[float, int]:
    """Train one sampled MLP; return (validation accuracy, parameter count)."""
    torch.manual_seed(seed + trial.number)
    model = define_model(trial)
    optimizer = define_optimizer(trial, model)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128])
    schedule = trial.suggest_categorical("schedule", ["constant", "cosine", "onecycle"])
    label_smoothing = trial.suggest_float("label_smoothing", 0.0, 0.1)

    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=batch_size)
    total_steps = epochs * len(train_loader)
    scheduler: optim.lr_scheduler.LRScheduler | None = None
    if schedule == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    elif schedule == "onecycle":
        max_lr = optimizer.param_groups[0]["lr"]
        scheduler = optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, cycle_momentum=False
        )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    # Training of the model.
    model.train()
    for _epoch in range(epochs):
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(data), target)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()

    # Validation of the model.
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in val_loader:
            pred = model(data).argmax(dim=1)
            correct += int(pred.eq(target).sum().item())
    accuracy = correct / len(val_set)

    n_params = sum(p.numel() for p in model.parameters())
    return accuracy, n_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--storage", required=True, help="e.g. sqlite:///hand.db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_set, val_set = get_digits()
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        storage=args.storage,
        study_name=STUDY_NAME,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
    )
    study.optimize(
        lambda trial: objective(trial, train_set, val_set, args.epochs, args.seed),
        n_trials=args.trials,
    )

    print("Number of finished trials: ", len(study.trials))
    print("Pareto front:")
    for trial in sorted(study.best_trials, key=lambda t: t.values):
        print(f"  Trial#{trial.number}")
        print(f"    Values: accuracy={trial.values[0]}, params={trial.values[1]}")
        print(f"    Params: {trial.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
