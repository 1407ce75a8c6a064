"""The study file: TOML in, a validated, frozen :class:`StudySpec` out.

Every problem is reported as one line naming the file, the field and the bad value, e.g.
``my.toml: optimizers.adamw.lr: low 0.1 is above high 0.001 (got [0.1, 0.001])``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas_objectives import (
    ACTIVATIONS,
    AUGMENTATIONS,
    CONSTRAINABLE,
    DATASETS,
    EMNIST_SPLITS,
    FAMILIES,
    FILE_DATASETS,
    NORMS,
    OBJECTIVES,
    OPTIMIZER_HYPERPARAMETERS,
    OPTIMIZERS,
    POOLINGS,
    SCHEDULES,
    FloatRange,
    IntRange,
    ModelSpace,
    ObjectiveConfig,
    OptimizerSpace,
    SearchSpace,
    TrainingSpace,
)
from nas_objectives.space import CELL_OPS, NB201_OPS
from studies.errors import StudySpecError
from studies.pruners import OPTUNA_PRUNERS, PRUNERS, check_pruner_options
from studies.samplers import SAMPLERS, check_sampler_options
from studies.spec._fields import FieldReader
from studies.spec._schema import ComponentSpec, DatasetSpec, HeartbeatSpec, StudySpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


_TOP = {
    "name",
    "description",
    "dataset",
    "model",
    "training",
    "optimizers",
    "objectives",
    "constraints",
    "sampler",
    "pruner",
    "epochs",
    "n_trials",
    "timeout",
    "seed",
    "heartbeat",
}


# [dataset] fields: every kind has the first set; the others only for the kinds named.
_DATASET_FIELDS = (
    {"name", "val_fraction"},
    {"data_dir"},  # torchvision datasets (and digits, which ignores it)
    {"path"},  # image_folder, tensors, csv
    {"test_path", "image_size", "channels"},  # image_folder
    {"label"},  # csv
    {"split"},  # emnist
    {"augment"},  # every kind that can hold images: all but csv
)


def _dataset_fields(name: str) -> set[str]:
    common, torchvision, files, images, csv, emnist, augment = _DATASET_FIELDS
    if name == "image_folder":
        return common | files | images | augment
    if name == "tensors":
        return common | files | augment  # tabular tensors are refused when loaded
    if name == "csv":
        return common | files | csv
    return common | torchvision | augment | (emnist if name == "emnist" else set())


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate the study file at ``path``.

    Raises:
        StudySpecError: unreadable file, TOML syntax error or invalid field.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudySpecError(f"{p}: cannot read study file: {exc.strerror or exc}") from None
    return parse_spec(text, str(p))


def parse_spec(text: str, path: str = "<memory>") -> StudySpec:
    """Validate study-file ``text``; ``path`` only labels error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudySpecError(f"{path}: invalid TOML: {exc}") from None
    return _Parser(path).study(data)


def spec_from_data(data: Mapping[str, Any], path: str = "<memory>") -> StudySpec:
    """Validate an already-parsed study file, e.g. the copy a study stores of its file;
    ``path`` only labels error messages."""
    return _Parser(path).study(dict(data))


class _Parser(FieldReader):
    """The sections of a study file, read with :class:`FieldReader`'s checks."""

    # -- sections -----------------------------------------------------------------------

    def study(self, data: dict[str, Any]) -> StudySpec:
        for k in data:
            if k not in _TOP:
                raise self.fail(k, f"unknown field (known: {', '.join(sorted(_TOP))})", data[k])
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail("name", "is required and must be a non-empty string", name)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string", description)

        objectives = data.get("objectives", ["accuracy", "params"])
        if not isinstance(objectives, list) or not objectives:
            raise self.fail("objectives", "must be a non-empty list", objectives)
        for o in objectives:
            if o not in OBJECTIVES:
                raise self.fail(
                    "objectives", f"unknown objective (known: {', '.join(OBJECTIVES)})", o
                )
        if len(set(objectives)) != len(objectives):
            raise self.fail("objectives", "objectives must be distinct", objectives)

        seed = data.get("seed", 0)
        self.number(seed, "seed", integer=True)
        timeout = data.get("timeout")
        if timeout is not None and self.number(timeout, "timeout") <= 0:
            raise self.fail("timeout", "must be positive (seconds)", timeout)

        model = self.model(data)
        space = SearchSpace(
            model=model, optimizers=self.optimizers(data), training=self.training(data)
        )
        dataset = self.dataset(data)  # first: it refuses augment where a kind has none
        objective = ObjectiveConfig(
            space=space,
            objectives=tuple(objectives),
            epochs=self.positive_int(data, "epochs", 10),
            seed=int(seed),
            constraints=self.constraints(data),
            augment=self.augment(data),
        )
        pruner = self.component(data, "pruner", PRUNERS, "none")
        if pruner.name in OPTUNA_PRUNERS[1:] and len(objectives) > 1:
            raise self.fail(
                "pruner.name",
                "Optuna's pruners need a single objective; use 'pareto_rank' or 'dominance'",
                pruner.name,
            )
        return StudySpec(
            name=name.strip(),
            description=description,
            dataset=dataset,
            objective=objective,
            sampler=self.component(data, "sampler", SAMPLERS, "tpe"),
            pruner=pruner,
            n_trials=self.positive_int(data, "n_trials", 50),
            timeout=float(timeout) if timeout is not None else None,
            heartbeat=self.heartbeat(data),
            path=self.path,
            source=data,
        )

    def dataset(self, data: dict[str, Any]) -> DatasetSpec:
        raw = data.get("dataset")
        if isinstance(raw, str):  # shorthand: dataset = "digits"
            raw = {"name": raw}
        if raw is None:
            raise self.fail("dataset", "is required")
        t = self.table({"dataset": raw}, "dataset", "dataset", set().union(*_DATASET_FIELDS))
        name = t.get("name")
        if name not in DATASETS:
            raise self.fail("dataset.name", f"unknown dataset (known: {', '.join(DATASETS)})", name)
        allowed = _dataset_fields(name)
        for k in t:
            if k not in allowed:
                raise self.fail(
                    f"dataset.{k}",
                    f"not a field of {name!r} datasets (its fields: {', '.join(sorted(allowed))})",
                    t[k],
                )
        val = t.get("val_fraction", 0.2)
        if not 0 < self.number(val, "dataset.val_fraction") < 1:
            raise self.fail("dataset.val_fraction", "must be between 0 and 1", val)
        data_dir = t.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise self.fail("dataset.data_dir", "must be a path string", data_dir)
        if name in FILE_DATASETS and "path" not in t:
            raise self.fail("dataset.path", f"is required for {name!r} datasets")
        if name == "csv" and "label" not in t:
            raise self.fail("dataset.label", "is required for 'csv' datasets (the class column)")
        path, test_path = (self.data_path(t, k) for k in ("path", "test_path"))
        if path is not None:
            # The stored copy of the file names the resolved files, so `export` run from
            # any folder reads what the study trained on.
            data["dataset"] = {**t, "path": path} | ({"test_path": test_path} if test_path else {})
        label = t.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise self.fail("dataset.label", "must be a column name", label)
        split = t.get("split", "balanced" if name == "emnist" else None)
        if split is not None and split not in EMNIST_SPLITS:
            raise self.fail(
                "dataset.split", f"unknown EMNIST split (known: {', '.join(EMNIST_SPLITS)})", split
            )
        return DatasetSpec(
            name,
            float(val),
            data_dir,
            path=path,
            test_path=test_path,
            image_size=self.image_size(t.get("image_size")),
            channels=self.channels(t.get("channels")),
            label=label.strip() if label is not None else None,
            split=split,
        )

    def augment(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        raw = data.get("dataset")
        value = raw.get("augment", []) if isinstance(raw, dict) else []
        if not isinstance(value, list):
            raise self.fail(
                "dataset.augment", f"must be a list, from {', '.join(AUGMENTATIONS)}", value
            )
        for a in value:
            if a not in AUGMENTATIONS:
                known = ", ".join(AUGMENTATIONS)
                raise self.fail("dataset.augment", f"unknown augmentation (known: {known})", a)
        if len(set(value)) != len(value):
            raise self.fail("dataset.augment", "augmentations must be distinct", value)
        # All of them apply, in a fixed order: a list here is not a searched choice.
        return tuple(a for a in AUGMENTATIONS if a in value)

    def data_path(self, t: Mapping[str, Any], key: str) -> str | None:
        value = t.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"dataset.{key}", "must be a path string", value)
        p = Path(value).expanduser()
        if not p.is_absolute():
            # Relative to the study file's folder; a study parsed from text has none.
            base = Path.cwd() if self.path == "<memory>" else Path(self.path).parent
            p = base / p
        return str(p.absolute())

    def image_size(self, value: Any) -> tuple[int, int] | None:
        if value is None:
            return None
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self.fail("dataset.image_size", "must be [height, width] in pixels", value)
        if not all(1 <= v <= 4096 for v in value):
            raise self.fail("dataset.image_size", "must lie within [1, 4096]", value)
        return (value[0], value[1])

    def channels(self, value: Any) -> int | None:
        if value is not None and (value not in (1, 3) or isinstance(value, bool)):
            raise self.fail("dataset.channels", "must be 1 (grayscale) or 3 (RGB)", value)
        return value

    def model(self, data: Mapping[str, Any]) -> ModelSpace:
        allowed = {"family", "depth", "width", "activation", "norm", "dropout"}
        family = (
            data.get("model", {}).get("family", "mlp")
            if isinstance(data.get("model"), dict)
            else "mlp"
        )
        if family not in FAMILIES:
            raise self.fail(
                "model.family", f"unknown family (known: {', '.join(FAMILIES)})", family
            )
        if family == "cell":
            return self.cell_model(data)
        if family == "cnn":
            allowed |= {"kernel_size", "pooling", "residual"}
        t = self.table(data, "model", "model", allowed)
        d = ModelSpace()
        return ModelSpace(
            family=family,
            depth=self.range_(t, "depth", "model", d.depth, integer=True, log=False, lo=1, hi=64),
            width=self.range_(t, "width", "model", d.width, integer=True, lo=1, hi=65536),
            activation=self.choice(t, "activation", "model", d.activation, ACTIVATIONS),
            norm=self.choice(t, "norm", "model", d.norm, NORMS),
            dropout=self.range_(t, "dropout", "model", d.dropout, log=False, lo=0.0, hi=0.95),
            kernel_size=self.choice(t, "kernel_size", "model", d.kernel_size, (1, 3, 5, 7)),
            pooling=self.choice(t, "pooling", "model", d.pooling, POOLINGS),
            residual=self.choice(t, "residual", "model", d.residual, (False, True)),
        )

    def cell_model(self, data: Mapping[str, Any]) -> ModelSpace:
        """``family = "cell"``: NAS-Bench-201's skeleton; defaults are its own (4 nodes, the
        five ops, C = 16, N = 5)."""
        allowed = {"family", "width", "nodes", "ops", "cells_per_stage"}
        t = self.table(data, "model", "model", allowed)
        nodes = t.get("nodes", 4)
        self.number(nodes, "model.nodes", integer=True)
        if not 2 <= nodes <= 8:
            raise self.fail("model.nodes", "must be between 2 and 8 (node 0 is the input)", nodes)
        ops = t.get("ops", list(NB201_OPS))
        if not isinstance(ops, list) or not ops:
            raise self.fail("model.ops", "must be a non-empty list of op names", ops)
        for op in ops:
            if op not in CELL_OPS:
                raise self.fail("model.ops", f"unknown op (known: {', '.join(CELL_OPS)})", op)
        if len(set(ops)) != len(ops):
            raise self.fail("model.ops", "ops must be distinct", ops)
        return ModelSpace(
            family="cell",
            width=self.range_(t, "width", "model", IntRange(16, 16), integer=True, lo=1, hi=4096),
            nodes=int(nodes),
            ops=tuple(ops),
            cells_per_stage=self.range_(
                t, "cells_per_stage", "model", IntRange(5, 5), integer=True, log=False, lo=1, hi=32
            ),
        )

    def optimizers(self, data: Mapping[str, Any]) -> dict[str, OptimizerSpace]:
        t = self.table(data, "optimizers", "optimizers", set(OPTIMIZERS))
        if not t:
            t = {"adamw": {}}
        result = {}
        for name in t:
            where = f"optimizers.{name}"
            o = self.table(t, name, where, set(OPTIMIZER_HYPERPARAMETERS[name]))
            d = OptimizerSpace(
                momentum=FloatRange(0.9, 0.9) if name == "sgd" else FloatRange(0.0, 0.0)
            )
            result[name] = OptimizerSpace(
                lr=self.range_(o, "lr", where, d.lr, log=True, lo=1e-8, hi=10.0),
                weight_decay=self.range_(o, "weight_decay", where, d.weight_decay, lo=0.0, hi=1.0),
                beta1=self.range_(o, "beta1", where, d.beta1, log=False, lo=0.0, hi=0.9999),
                beta2=self.range_(o, "beta2", where, d.beta2, log=False, lo=0.0, hi=0.99999),
                momentum=self.range_(o, "momentum", where, d.momentum, log=False, lo=0.0, hi=0.999),
                nesterov=self.choice(o, "nesterov", where, d.nesterov, (False, True)),
            )
        return result

    def training(self, data: Mapping[str, Any]) -> TrainingSpace:
        t = self.table(
            data, "training", "training", {"batch_size", "schedule", "label_smoothing", "min_steps"}
        )
        d = TrainingSpace()
        min_steps = t.get("min_steps", d.min_steps)
        if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 0:
            raise self.fail("training.min_steps", "must be a whole number, 0 or more", min_steps)
        return TrainingSpace(
            min_steps=min_steps,
            batch_size=self.choice(t, "batch_size", "training", d.batch_size, int),
            schedule=self.choice(t, "schedule", "training", d.schedule, SCHEDULES),
            label_smoothing=self.range_(
                t, "label_smoothing", "training", d.label_smoothing, log=False, lo=0.0, hi=0.5
            ),
        )

    def heartbeat(self, data: Mapping[str, Any]) -> HeartbeatSpec:
        t = self.table(data, "heartbeat", "heartbeat", {"interval", "grace_period", "max_retry"})
        d = HeartbeatSpec()
        values = {}
        for key, default in (
            ("interval", d.interval),
            ("grace_period", None),
            ("max_retry", d.max_retry),
        ):
            value = t.get(key, default)
            if value is None:
                continue
            self.number(value, f"heartbeat.{key}", integer=True)
            if value < (0 if key == "max_retry" else 1):
                raise self.fail(f"heartbeat.{key}", "must be positive", value)
            values[key] = int(value)
        values.setdefault("grace_period", 3 * values["interval"])
        if values["grace_period"] <= values["interval"]:
            raise self.fail(
                "heartbeat.grace_period",
                "must be longer than heartbeat.interval",
                values["grace_period"],
            )
        return HeartbeatSpec(**values)

    def constraints(self, data: Mapping[str, Any]) -> dict[str, float]:
        t = self.table(data, "constraints", "constraints", {f"max_{c}" for c in CONSTRAINABLE})
        out = {}
        for key, value in t.items():
            if self.number(value, f"constraints.{key}") <= 0:
                raise self.fail(f"constraints.{key}", "must be positive", value)
            out[key.removeprefix("max_")] = float(value)
        return out

    def component(
        self, data: Mapping[str, Any], key: str, known: tuple[str, ...], default: str
    ) -> ComponentSpec:
        raw = data.get(key, {"name": default})
        if isinstance(raw, str):  # shorthand: sampler = "nsga2"
            raw = {"name": raw}
        if not isinstance(raw, dict):
            raise self.fail(key, "must be a table or a name", raw)
        name = raw.get("name", default)
        if name not in known:
            raise self.fail(f"{key}.name", f"unknown {key} (known: {', '.join(known)})", name)
        options = {k: v for k, v in raw.items() if k != "name"}
        # Fail here, naming the field, rather than when the first worker starts.
        check = check_sampler_options if key == "sampler" else check_pruner_options
        problem = check(name, options)
        if problem is not None:
            field_name, message, value = problem
            raise self.fail(f"{key}.{field_name}", message, value)
        return ComponentSpec(name, options)
