"""``python -m benchmarks.gpu_checks`` in its CPU smoke mode: every check runs for real and
reports.

The device run (``python -m benchmarks.gpu_checks --out-dir "$OUT"`` on an H200) happens
once, on a machine lent for minutes; this keeps the script from rotting between loans.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.benchmark_runs import run_benchmark

TIMEOUT_S = 300  # about 70 s on the project's 2-core machine
#: The checks, in the order the documentation gives and the run takes them.
CHECKS = ("mlp_throughput", "capture_equality", "cnn_throughput", "cuda_oom", "workers_per_gpu")


def _run(out_dir: Path, *flags: str, timeout: float = TIMEOUT_S) -> tuple[dict[str, Any], str]:
    report, done = run_benchmark(
        "gpu_checks",
        *("--smoke", "--device", "cpu", "--out-dir", str(out_dir), *flags),
        report=out_dir / "gpu_checks.json",
        timeout=timeout,
    )
    return report, done.stdout


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    report, stdout = _run(tmp_path_factory.mktemp("gpu-checks"))
    # The report printed is the report written.
    assert json.loads(stdout) == report
    return report


def test_the_run_records_its_environment_and_every_check(smoke: dict[str, Any]) -> None:
    assert smoke["mode"] == "smoke" and smoke["device"] == "cpu"
    assert smoke["torch"] and smoke["optuna"] and smoke["started_at"] and smoke["finished_at"]
    assert 0 < smoke["wall_s"] < TIMEOUT_S
    assert list(smoke["check_seconds"]) == list(CHECKS)
    assert smoke["skipped_for_time"] == []
    for name in CHECKS:
        section = smoke[name]
        assert section["status"] == "ok", (name, section.get("error"), section.get("log_tail"))
        assert section["seconds"] == smoke["check_seconds"][name] >= 0
    assert smoke["summary"]["status"] == {name: "ok" for name in CHECKS}


def test_mlp_throughput_has_all_three_rates_and_their_ratios(smoke: dict[str, Any]) -> None:
    m = smoke["mlp_throughput"]
    a, b, c = (
        m["trainer_eager_samples_per_s"],
        m["trainer_cuda_graphs_samples_per_s"],
        m["dataloader_samples_per_s"],
    )
    assert a > 0 and b > 0 and c > 0
    assert math.isclose(m["ratio_graphs_over_dataloader"], b / c)
    assert math.isclose(m["ratio_eager_over_dataloader"], a / c)
    assert math.isclose(m["ratio_graphs_over_eager"], b / a)
    assert m["meets_1m"] is (b >= 1_000_000) and m["meets_30x"] is (b / c >= 30)
    # On a CPU, capture was asked for and fell back, and the trainer says so.
    assert m["cuda_graphs_train_step"].startswith("eager (")
    assert m["trainer_eager"]["samples_trained"] == m["trainer_eager"]["train_split_size"]


def test_capture_equality_ran_every_case_and_reports_eager_on_cpu(smoke: dict[str, Any]) -> None:
    e = smoke["capture_equality"]
    assert e["cases_run"] == 8 and e["cases_failed"] == 0
    for case in e["cases"].values():
        assert case["train_step"].startswith("eager"), case
        assert len(case["eager_train_loss"]) == len(case["cuda_graphs_train_loss"]) == 2
        assert case["agree"] is (case["max_rel_diff"] <= e["rtol"])
    # Both runs take the same eager path on a CPU: the same seed gives the same losses.
    assert e["max_rel_diff"] == 0.0 and e["all_agree"] is True
    assert e["all_train_steps_ok"] is True


def test_cnn_throughput_has_every_variant(smoke: dict[str, Any]) -> None:
    c = smoke["cnn_throughput"]
    rates = c["samples_per_s"]
    assert set(rates) == {
        "eager_nchw",
        "eager_channels_last",
        "cuda_graphs_nchw",
        "cuda_graphs_channels_last",
    }
    assert all(r > 0 for r in rates.values()), rates
    assert math.isclose(
        c["ratio_channels_last_over_nchw_eager"],
        rates["eager_channels_last"] / rates["eager_nchw"],
    )
    assert c["fastest"] == max(rates, key=rates.__getitem__)
    assert c["runs"]["eager_channels_last"]["train_options"]["channels_last"] is True


def test_cuda_oom_is_not_applicable_on_cpu(smoke: dict[str, Any]) -> None:
    o = smoke["cuda_oom"]
    assert o["applicable"] is False and "CUDA" in o["reason"] and o["passed"] is None


def test_workers_per_gpu_launched_each_k_and_counted_trials(smoke: dict[str, Any]) -> None:
    w = smoke["workers_per_gpu"]
    settings = smoke["settings"]
    assert w["skipped_for_time"] == []
    for family in ("mlp", "cnn"):
        runs = w["runs"][family]
        assert sorted(runs) == [str(k) for k in settings["workers_per_gpu"]]
        for k, run in runs.items():
            assert "error" not in run, run
            assert f"--workers {k} --device cpu" in run["command"]
            assert run["exit_code"] == 0 and not run["killed"], run.get("log_tail")
            # The smoke run's launches end when their --n-trials are done.
            assert run["ended_by"] == "launcher_exited" and run["window_s"] > 0
        one = runs["1"]
        assert one["finished"] == settings["launch_trials"], one.get("log_tail")
        rate = one["finished"] / one["window_s"] * 3600
        assert one["trials_per_hour"] > 0
        assert math.isclose(one["trials_per_hour"], rate)
        assert one["states"].get("COMPLETE", 0) >= one["finished"]
        rates = w["trials_per_hour"][family]
        assert w["best_k"][family] == int(max(rates, key=lambda k: rates[k] or -1))


def test_a_spent_budget_skips_checks_and_records_it(tmp_path: Path) -> None:
    report, _ = _run(tmp_path, "--budget-s", "1", timeout=120)
    assert report["skipped_for_time"] == list(CHECKS)
    for name in CHECKS:
        assert report[name]["status"] == "skipped"
        assert report[name]["reason"].startswith("time budget spent")


def test_the_oom_study_enqueues_trials_inside_its_own_space(smoke: dict[str, Any]) -> None:
    # The OOM check only runs on CUDA; on a CPU it shows its plan for a large device.
    plan = smoke["cuda_oom"]["plan"]
    big, small, space = plan["trial0"], plan["trial1"], plan["space"]
    # Trial 0's first activation alone is twice the device's memory.
    assert plan["trial0_activation_bytes_estimate"] >= 2 * plan["total_memory_bytes"]
    low, high = space["channels"]
    assert low <= small["channels_l0"] < big["channels_l0"] <= high
    assert {small["batch_size"], big["batch_size"]} == set(space["batch_size"])


def test_a_check_past_its_time_limit_is_killed_and_reported(tmp_path: Path) -> None:
    flags = ("--checks", "capture_equality", "--check-limit-s", "2")
    report, _ = _run(tmp_path, *flags, timeout=120)
    section = report["capture_equality"]
    assert section["status"] == "error", section
    assert section["error"].startswith("timed out after 2 s"), section["error"]
    # Killed at its limit, not waited for; what it saved by then is marked partial.
    assert section["seconds"] < 10
    partial = section.get("partial_result")
    assert partial is None or partial["partial"] is True
    assert report["settings"]["check_limit_s"] == 2
