"""The short chaos soak (``python -m benchmarks.chaos``) in both modes: real workers killed
with -9 and frozen past the grace period, PostgreSQL crash-restarted, the proxy killed and
restarted; the study must still end exactly at its budget with nothing lost or left RUNNING.

PostgreSQL is always started again, also when the soak fails (``ensure_database_running``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark_runs import run_benchmark
from tests.conftest import POSTGRES_URL


@pytest.mark.parametrize("mode", ["postgres", "proxy"])
def test_short_chaos_soak_loses_nothing_and_meets_the_budget_exactly(
    mode: str, tmp_path: Path
) -> None:
    out = tmp_path / "chaos.json"
    result, _ = run_benchmark(
        "chaos",
        "--modes", mode,
        "--postgres-url", POSTGRES_URL,
        "--duration", "45",
        "--workers", "3",
        # Enough trials to outlast the first faults: a worker runs these tiny trials at
        # about 8 a second straight to the database, 3 through the proxy.
        "--budget", "300",
        "--epochs", "30",
        "--kill-every", "2,5",
        "--freeze-every", "4,8",
        "--db-restart-every", "4,8",
        "--db-down", "1,3",
        "--proxy-restart-every", "4,8",
        "--drain-timeout", "120",
        "--seed", "1",
        "--out", str(out),
        report=out,
        timeout=600,
    )  # fmt: skip
    report = result["modes"][mode]
    summary = {k: v for k, v in report.items() if k != "crash_tails"}
    assert report["kills"] >= 1 and report["db_restarts"] >= 1, summary  # chaos happened
    if mode == "proxy":
        assert report["proxy_restarts"] >= 1, summary
    assert report["drained"], summary  # every worker exited by itself
    assert report["workers_crashed"] == 0, report["crash_tails"]
    assert report["tracebacks_in_worker_logs"] == 0, summary
    assert report["running_left"] == 0, summary  # no zombie
    assert report["lost"] == 0, summary  # every trial declared dead got its copy
    assert report["duplicates"] == 0, summary
    assert report["budget_met_exactly"], summary
