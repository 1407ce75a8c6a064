"""Reading results back: the Pareto set, study summaries, and their table/JSON/CSV forms."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import record

FORMATS = ("table", "json", "csv")


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``value0``... for a study nas-study did not create)."""
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto set of a multi-objective study (feasible trials only), or the best trial
    of a single-objective one; sorted by the first objective, best first."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(study.directions) > 1:
        trials = list(study.best_trials)
    else:
        try:
            trials = [study.best_trial]
        except ValueError:  # only infeasible trials
            return []
    reverse = study.directions[0] == StudyDirection.MAXIMIZE
    return sorted(trials, key=lambda t: (t.values[0], -t.number), reverse=reverse)


def trial_rows(study: optuna.Study, trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One dict per trial: ``trial``, one key per objective, ``epochs`` trained, ``arch``."""
    names = metric_names(study)
    # Where trials were proposed (``nas-study oneshot``), a column says which; otherwise
    # the table stays as it always was.
    proposed = any(record.PROPOSED_BY in t.user_attrs for t in trials)
    rows = []
    for t in trials:
        row: dict[str, Any] = {"trial": t.number}
        for name, value in zip(names, t.values or [], strict=False):
            row[name] = int(value) if name in ("params", "flops") else value
        row["epochs"] = t.user_attrs.get(record.EPOCHS_RUN)
        if proposed:
            row["proposed_by"] = _proposed_by(t)
        row["arch"] = t.user_attrs.get(record.ARCH, "")
        rows.append(row)
    return rows


def _proposed_by(trial: FrozenTrial) -> str:
    """``oneshot darts-1st+beta lambda=0.5`` for a proposed trial, ``sampler`` otherwise."""
    by = trial.user_attrs.get(record.PROPOSED_BY)
    if by is None:
        return "sampler"
    method = trial.user_attrs.get(record.ONESHOT_METHOD)
    lam = trial.user_attrs.get(record.ONESHOT_LAMBDA)
    parts = [str(by), str(method) if method else "", f"lambda={lam:.3g}" if lam is not None else ""]
    return " ".join(p for p in parts if p)


def summary_rows(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """One dict per study in ``storage``: name, directions, trials by state, best values."""
    rows = []
    for s in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name):
        try:
            study = optuna.load_study(study_name=s.study_name, storage=storage)
            trials = study.get_trials(deepcopy=False)
        except KeyError:  # deleted since the listing (another user, the dashboard)
            continue
        names = metric_names(study)
        counts = {state.name.lower(): 0 for state in TrialState}
        for t in trials:
            counts[t.state.name.lower()] += 1
        best = []
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
        for i, (name, direction) in enumerate(zip(names, study.directions, strict=True)):
            values = [t.values[i] for t in done]
            if values:
                pick = max if direction == StudyDirection.MAXIMIZE else min
                best.append(f"{name}={_fmt(pick(values))}")
        rows.append(
            {
                "study": s.study_name,
                "directions": " ".join(
                    f"{'max' if d == StudyDirection.MAXIMIZE else 'min'}:{n}"
                    for n, d in zip(names, study.directions, strict=True)
                ),
                "trials": len(trials),
                **{
                    k: v
                    for k, v in counts.items()
                    if k in ("complete", "pruned", "fail", "running")
                },
                "best": " ".join(best) or "-",
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) >= 1:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def format_rows(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    """Render ``rows`` as an aligned text table, a JSON array or CSV."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if not rows:
        return "(none)"
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        out = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(out).rstrip()

    header = line(columns)
    return "\n".join([header, line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
