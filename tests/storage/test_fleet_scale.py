"""``python -m benchmarks.fleet_scale`` at a tiny size, on the real PostgreSQL through the
real ``serve-storage``: its figures add up, the budget is met exactly, and nothing is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import open_storage
from tests.benchmark_runs import run_benchmark
from tests.conftest import POSTGRES_URL


def test_fleet_scale_smoke_counts_add_up_and_studies_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    report, _ = run_benchmark(
        "fleet_scale",
        "--workers", "4",
        "--trials-per-worker", "3",
        "--sleep", "0.05,0.2",
        "--sizes", "200",
        "--batch", "5",
        "--profile-trials", "0",
        "--postgres-url", POSTGRES_URL,
        "--out", str(out),
        report=out,
        timeout=600,
    )  # fmt: skip
    assert report["command"].startswith("python -m benchmarks.fleet_scale --workers 4")

    fleet = report["fleet"]["4"]
    assert fleet["budget"] == 12 and fleet["new_trials_counted"] == 12
    assert fleet["budget_met_exactly"] and fleet["left_running_or_waiting"] == {}
    assert fleet["trials_run"] == 12  # the objective ran once per counted trial, no more
    assert 12 - 4 <= fleet["cycles"] < 12  # every trial but each worker's last starts one
    assert 0 < fleet["steady_ratio"] <= 1 and 0 < fleet["end_to_end_ratio"] <= 1
    assert fleet["ideal_trials_per_s"] == pytest.approx(4 / fleet["mean_sleep_s"])
    proxy = fleet["proxy"]
    calls = {m: row["calls_per_trial"] * 12 for m, row in proxy["by_method"].items()}
    # Workers racing for the last slots of the budget may each create one trial too many;
    # such a trial ends at once as FAIL ("budget reached"), and the objective never runs.
    over_budget = fleet["new_trials_failed"]
    assert 0 <= over_budget < 4
    # Every trial is created once, through the proxy.
    assert calls["CreateNewTrial"] == pytest.approx(12 + over_budget)
    # The protocol: a trial that runs sends its writes in one WriteTrial at publish, at each
    # of its 3 reports and at its end (5); an over-budget trial sends only its end (1).
    # None go through Optuna's call per parameter, attribute or value.
    assert calls["WriteTrial"] == pytest.approx(5 * 12 + over_budget)
    assert not {"SetTrialParameter", "SetTrialUserAttribute", "SetTrialStateValues"} & set(
        proxy["by_method"]
    )
    assert proxy["statements_per_trial"] > proxy["rpcs_per_trial"] >= 9
    assert fleet["cpu_s_per_trial"]["proxy"] > 0

    size = report["sizes"]["200"]
    assert size["trials_before"] == 200 and size["trials_added_to_populate"] == 200
    assert size["new_trials_counted"] == 5 and size["budget_met_exactly"]
    assert size["seconds_per_trial"] > 0 and size["proxy"]["statements_per_trial"] > 0
    assert report["goals"]["largest_fleet"] == 4
    assert report["goals"]["size_growth_met"] is None  # one size: nothing to compare

    assert report["studies_not_deleted"] == []
    storage = open_storage(POSTGRES_URL, heartbeat=None)
    for name in report["studies_created"]:
        with pytest.raises(KeyError):
            storage.get_study_id_from_name(name)
