"""RunOptions: one declaration of what run, worker and launch share, forwarded whole."""

from __future__ import annotations

import dataclasses

import pytest

from studies import RunOptions, StudyRunError, resolve_spec
from studies.cli import build_parser

EVERY_FLAG = [
    "--n-trials", "7",
    "--max-trials", "3",
    "--timeout", "12.5",
    "--study-name", "named",
    "--device", "cpu",
    "--data-dir", "/data/x",
    "--device-memory-budget", "2GiB",
    "--seed", "11",
    "--epochs", "4",
    "--threads", "2",
    "--cuda-graphs", "on",
    "--heartbeat-interval", "5",
    "--grace-period", "20",
    "--max-retry", "0",
    "--outage-timeout", "30",
]  # fmt: skip


def test_every_field_is_a_worker_flag_and_launch_forwards_it_whole() -> None:
    parser = build_parser()
    launched = RunOptions.from_args(
        parser.parse_args(["launch", "digits-mlp", "--workers", "2", *EVERY_FLAG])
    )
    # Every field but worker_index (set per worker) was given, so a field missing from the
    # parser, or dropped by worker_argv, shows up as a default below.
    assert all(
        getattr(launched, f.name) != f.default
        for f in dataclasses.fields(RunOptions)
        if f.name != "worker_index"
    )
    worker = RunOptions.from_args(
        parser.parse_args(["worker", "digits-mlp", *launched.worker_argv()])
    )
    assert worker == launched


def test_from_args_keeps_defaults_for_flags_not_given() -> None:
    options = RunOptions.from_args(build_parser().parse_args(["run", "digits-mlp"]))
    assert options == RunOptions()
    assert options.worker_argv() == ["--device", "auto"]


def test_heartbeat_overrides_the_study_file() -> None:
    spec = resolve_spec("digits-mlp")
    assert RunOptions().heartbeat(spec).interval == spec.heartbeat.interval
    settings = RunOptions(heartbeat_interval=4).heartbeat(spec)
    assert (settings.interval, settings.grace_period) == (4, 12)  # 3 x a new interval
    assert RunOptions(max_retry=0).heartbeat(spec).max_retry == 0
    with pytest.raises(StudyRunError, match="must be longer than the heartbeat interval 9"):
        RunOptions(heartbeat_interval=9, grace_period=9).heartbeat(spec)
