"""Studies that already hold thousands of finished trials, made in seconds, and removed.

Through Optuna's own API (``study.add_trials``) a trial with ten parameters and eleven
attributes takes some thirty statements, so 20,000 would take minutes. So the first
:data:`VIA_OPTUNA` trials of a study are added that way, and the rest are inserted in bulk
into Optuna's tables (SQLAlchemy Core on the reflected schema, a few thousand rows per
statement), with the values Optuna itself would store: internal parameter values,
``distribution_to_json``, JSON attributes, dense trial numbers. A sample of the bulk trials
is then read back through Optuna's ``RDBStorage`` and compared with what was meant, field by
field, so the study is one Optuna reads as its own.

The trials are what a real study holds: mostly COMPLETE, some PRUNED (fewer epochs, no
value) and a few FAIL, with the parameters, attributes and intermediate values of
``objective.py``'s trials and a creation token each, as nas-study's workers leave them.
"""

from __future__ import annotations

import datetime
import json
import random
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial, TrialState

from benchmarks._fleet.objective import EPOCHS, SPACE, cost_attrs, curve, sample
from nas_objectives import record

#: Trials of a new study added through ``study.add_trials``, before the bulk insert.
VIA_OPTUNA = 10
#: Trials per bulk transaction.
CHUNK = 2000
#: Bulk trials read back and compared.
CHECKED = 40
TRIAL_TABLES = (
    "trial_params",
    "trial_values",
    "trial_intermediate_values",
    "trial_user_attributes",
    "trial_system_attributes",
    "trial_heartbeats",
)
STUDY_TABLES = ("study_directions", "study_user_attributes", "study_system_attributes")


def finished_trial(number: int, rng: random.Random) -> FrozenTrial:
    """One finished trial as a nas-study worker leaves it (COMPLETE, PRUNED or FAIL)."""
    params = sample(rng)
    draw = rng.random()
    state = TrialState.COMPLETE
    if draw < 0.12:
        state = TrialState.FAIL if draw < 0.02 else TrialState.PRUNED
    epochs = EPOCHS if state == TrialState.COMPLETE else rng.randint(1, EPOCHS - 1)
    accuracies = curve(params, EPOCHS)[:epochs]
    start = datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=90 * number)
    attrs = {
        **cost_attrs(params, number),
        record.WORKER: f"node{number % 16:02d}:{10000 + number % 64}",
        record.VAL_ACCURACY: accuracies,
        record.EPOCHS_RUN: epochs,
        record.TRAIN_SECONDS: round(rng.uniform(30, 90) * epochs, 4),
    }
    if state == TrialState.FAIL:
        attrs[record.FAIL_REASON] = "RuntimeError: CUDA out of memory"
    trial = optuna.trial.create_trial(
        state=state,
        value=accuracies[-1] if state == TrialState.COMPLETE else None,
        params=params,
        distributions=dict(SPACE),
        user_attrs=attrs,
        intermediate_values=dict(enumerate(accuracies, start=1)),
    )
    trial.number = number
    trial.datetime_start = start
    trial.datetime_complete = start + datetime.timedelta(seconds=60 * epochs)
    return trial


def populate(storage: optuna.storages.RDBStorage, study_name: str, total: int, seed: int) -> int:
    """Grow the study ``study_name`` to ``total`` trials; return how many were added."""
    study_id = storage.get_study_id_from_name(study_name)
    engine = storage.engine
    with engine.connect() as conn:
        trials = sqlalchemy.table("trials", sqlalchemy.column("study_id"))
        query = sqlalchemy.select(sqlalchemy.func.count()).select_from(trials)
        have = int(conn.execute(query.where(trials.c.study_id == study_id)).scalar_one())
    rng = random.Random(f"{seed}-{have}")
    new = [finished_trial(number, rng) for number in range(have, total)]
    via_optuna = new[: max(0, VIA_OPTUNA - have)]
    if via_optuna:
        optuna.load_study(study_name=study_name, storage=storage).add_trials(via_optuna)
    bulk = new[len(via_optuna) :]
    tables = _tables(engine)
    for first in range(0, len(bulk), CHUNK):
        with engine.begin() as conn:
            _insert(conn, tables, study_id, bulk[first : first + CHUNK])
    _check(storage, study_id, bulk, random.Random(seed))
    return len(new)


def _tables(engine: sqlalchemy.engine.Engine) -> dict[str, sqlalchemy.Table]:
    meta = sqlalchemy.MetaData()
    meta.reflect(engine, only=["trials", *TRIAL_TABLES])
    return dict(meta.tables)


def _insert(
    conn: sqlalchemy.Connection,
    tables: dict[str, sqlalchemy.Table],
    study_id: int,
    trials: list[FrozenTrial],
) -> None:
    rows = [
        {
            "number": t.number,
            "study_id": study_id,
            "state": t.state.name,
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
        }
        for t in trials
    ]
    table = tables["trials"]
    ids = conn.execute(
        sqlalchemy.insert(table).returning(table.c.trial_id, sort_by_parameter_order=True), rows
    ).scalars()
    values: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    user: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for trial_id, t in zip(ids, trials, strict=True):
        if t.value is not None:
            values.append(
                {"trial_id": trial_id, "objective": 0, "value": t.value, "value_type": "FINITE"}
            )
        for name, value in t.params.items():
            dist = t.distributions[name]
            params.append(
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": dist.to_internal_repr(value),
                    "distribution_json": distribution_to_json(dist),
                }
            )
        for step, value in t.intermediate_values.items():
            steps.append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "intermediate_value": value,
                    "intermediate_value_type": "FINITE",
                }
            )
        for rows_, attrs in ((user, t.user_attrs), (system, t.system_attrs)):
            rows_.extend(
                {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                for k, v in attrs.items()
            )
    for name, batch in (
        ("trial_values", values),
        ("trial_params", params),
        ("trial_intermediate_values", steps),
        ("trial_user_attributes", user),
        ("trial_system_attributes", system),
    ):
        if batch:
            conn.execute(sqlalchemy.insert(tables[name]), batch)


def _check(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    trials: list[FrozenTrial],
    rng: random.Random,
) -> None:
    """Read a sample of ``trials`` back through Optuna; raise if any field differs."""
    if not trials:
        return
    sample_ = [trials[0], trials[-1], *rng.sample(trials, min(CHECKED, len(trials)))]
    for meant in sample_:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, meant.number)
        stored = storage.get_trial(trial_id)
        for field in (
            "number",
            "state",
            "values",
            "params",
            "distributions",
            "user_attrs",
            "system_attrs",
            "intermediate_values",
            "datetime_start",
            "datetime_complete",
        ):
            if getattr(stored, field) != getattr(meant, field):
                raise AssertionError(
                    f"bulk trial {meant.number}: {field} reads back as "
                    f"{getattr(stored, field)!r}, not {getattr(meant, field)!r}"
                )


def delete_study(storage: optuna.storages.RDBStorage, study_name: str) -> None:
    """Delete the study ``study_name`` and its trials in one transaction (Optuna's own
    ``delete_study`` loads every row of 20,000 trials through its ORM first)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return  # never created, or already gone
    meta = sqlalchemy.MetaData()
    meta.reflect(storage.engine, only=["studies", "trials", *TRIAL_TABLES, *STUDY_TABLES])
    tables = meta.tables
    trials = tables["trials"]
    ids = sqlalchemy.select(trials.c.trial_id).where(trials.c.study_id == study_id)
    with storage.engine.begin() as conn:
        for name in TRIAL_TABLES:
            conn.execute(sqlalchemy.delete(tables[name]).where(tables[name].c.trial_id.in_(ids)))
        conn.execute(sqlalchemy.delete(trials).where(trials.c.study_id == study_id))
        for name in (*STUDY_TABLES, "studies"):
            conn.execute(sqlalchemy.delete(tables[name]).where(tables[name].c.study_id == study_id))


def count_states(storage: optuna.storages.RDBStorage, study_name: str) -> dict[str, int]:
    """The study's trials by state, counted in the database."""
    study_id = storage.get_study_id_from_name(study_name)
    trials = sqlalchemy.table("trials", sqlalchemy.column("study_id"), sqlalchemy.column("state"))
    query = (
        sqlalchemy.select(trials.c.state, sqlalchemy.func.count())
        .where(trials.c.study_id == study_id)
        .group_by(trials.c.state)
    )
    with storage.engine.connect() as conn:
        return {str(state): int(n) for state, n in conn.execute(query)}
