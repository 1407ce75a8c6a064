"""``python -m benchmarks.end_to_end`` at its smallest: both sides really run, and the JSON
adds up."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.benchmark_runs import run_benchmark


def test_a_tiny_end_to_end_run_reports_both_sides_consistently(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    argv = ["--trials", "3", "--epochs", "1", "--seeds", "1", "--out", str(out)]
    report, done = run_benchmark("end_to_end", *argv, report=out, timeout=600)

    assert json.loads(done.stdout) == report  # the report printed is the report written
    assert report["command"] == shlex.join(["python", "-m", "benchmarks.end_to_end", *argv])
    (run,) = report["per_seed"]
    assert run["order"] == ["script", "nas"]
    for side in ("script", "nas"):
        s = run[side]
        assert s["trials"] == s["complete"] == 3
        assert 0 < s["first_trial_start_s"] < s["last_trial_end_s"] < s["wall_s"]
        assert 0 < s["median_trial_s"] <= s["sum_trial_s"]
        assert s["front"] and all(0 <= a <= 1 and n > 0 for a, n in s["front"])
        assert report["median"][f"{side}_wall_s"] == s["wall_s"]
    # Only nas-study records its training seconds.
    assert run["script"]["median_trial_outside_training_s"] is None
    assert run["nas"]["median_trial_outside_training_s"] >= 0
    for ref in ("accuracy_0", "strict"):
        hv = run[ref]["final_hv"]
        assert run[ref]["target_hv"] == hv["script"]
        # The script reaches its own final hypervolume, by its last trial at the latest.
        assert run[ref]["script_reaches_after_trials"] in (1, 2, 3)
        assert run[ref]["script_reaches_s"] <= run["script"]["last_trial_end_s"]
        if hv["nas"] >= hv["script"] * (1 - 1e-9):
            ratio = run[ref]["nas_reaches_s"] / run["script"]["wall_s"]
            assert run[ref]["ratio_nas_reach_over_script_wall"] == ratio
        else:
            assert run[ref]["nas_reaches_s"] is None
    assert report["targets"]["nas_final_hv_higher"] == (
        report["median"]["accuracy_0"]["final_hv_nas"]
        > report["median"]["accuracy_0"]["final_hv_script"]
    )
