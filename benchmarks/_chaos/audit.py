"""What a chaos soak left in the study: the figures of the report, read from the database."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from nas_objectives import record
from storage import open_storage
from storage._rdb.storage import TOKENS
from studies.run import ADOPTED_ATTR


def audit_study(url: str, name: str, budget: int, killed_workers: set[str]) -> dict[str, Any]:
    """The state of study ``name`` after a soak whose killed workers were ``killed_workers``
    (``host:pid``, as trials record them)."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=None))
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    stale = [t for t in trials if t.state == TrialState.FAIL and _declared_dead(t)]
    copied = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    adopted = {
        t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get(ADOPTED_ATTR)
    }
    tokens = _creation_tokens(url, [t._trial_id for t in trials])
    lost_to_kills = [t for t in stale if t.user_attrs.get(record.WORKER) in killed_workers]
    lost_otherwise = [
        t
        for t in stale
        if t.user_attrs.get(record.WORKER) not in killed_workers and t.number not in adopted
    ]
    done = states["COMPLETE"] + states["PRUNED"]
    return {
        "trials": len(trials),
        "complete": states["COMPLETE"],
        "pruned": states["PRUNED"],
        "fail": states["FAIL"],
        "fail_declared_dead": len(stale),
        "fail_budget_reached": sum(
            t.user_attrs.get(record.FAIL_REASON) == "budget reached" for t in trials
        ),
        "running_left": states["RUNNING"],
        "waiting_left": states["WAITING"],
        "zombies": states["RUNNING"],
        "declared_dead_before_first_write": sum(record.WORKER not in t.user_attrs for t in stale),
        "lost": sum(t.number not in copied for t in stale),
        # Two trials from one creation (a retry after a lost answer): one token, two ids.
        "duplicates": sum(n - 1 for n in tokens.values() if n > 1),
        # Trials a worker created (copies queued for dead trials carry no token).
        "trials_created_with_token": sum(tokens.values()),
        "epochs_thrown_away_by_kills": sum(len(t.intermediate_values) for t in lost_to_kills),
        "epochs_thrown_away_otherwise": sum(len(t.intermediate_values) for t in lost_otherwise),
        "copies_adopted_by_their_original_worker": len(adopted),
        "budget": budget,
        "budget_met_exactly": done == budget,
    }


def _creation_tokens(url: str, trial_ids: list[int]) -> Counter[str]:
    """How many of ``trial_ids`` each creation token names (nas-study's token table)."""
    storage = open_storage(url, heartbeat=None)
    assert isinstance(storage, optuna.storages.RDBStorage)
    query = sqlalchemy.select(TOKENS.c.token).where(TOKENS.c.trial_id.in_(trial_ids))
    with storage.engine.connect() as conn:
        found = Counter(str(t) for t in conn.execute(query).scalars())
    storage.engine.dispose()
    return found


def _declared_dead(trial: FrozenTrial) -> bool:
    # Heartbeats fail a trial without a reason; every other failure records one.
    return record.FAIL_REASON not in trial.user_attrs
