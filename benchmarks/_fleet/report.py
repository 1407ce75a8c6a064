"""The figures of ``fleet_scale.py`` from its runs: per-trial costs, the goals, and where
each trial's time went."""

from __future__ import annotations

import os
from typing import Any

from benchmarks._fleet.fleet import FleetRun, proxy_costs, throughput

#: The issue's goals: steady throughput at the largest fleet, at least this share of the
#: ideal; seconds per trial at the largest size, at most this many times the smallest's.
GOAL_RATIO = 0.9
GOAL_GROWTH = 1.5
BUDGET_STATES = ("COMPLETE", "PRUNED")


def budget_done(states: dict[str, int]) -> int:
    """Trials that count against the budget, from :func:`populate.count_states`."""
    return sum(states.get(s, 0) for s in BUDGET_STATES)


def summarize(run: FleetRun, before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """One run's figures: throughput, per-trial costs, and whether the budget held."""
    new_done = budget_done(after) - budget_done(before)
    new_failed = after.get("FAIL", 0) - before.get("FAIL", 0)
    left = {s: after.get(s, 0) for s in ("RUNNING", "WAITING") if after.get(s, 0)}
    cell = {
        **throughput(run),
        "budget": run.config.budget,
        "new_trials_counted": new_done,
        "new_trials_failed": new_failed,
        "budget_met_exactly": budget_done(after) == run.config.budget and not left,
        "left_running_or_waiting": left,
        "proxy": proxy_costs(run.proxy, new_done),
    }
    per = max(new_done, 1)
    cpu = {
        "client": run.client_cpu_s / per,
        "proxy": cell["proxy"]["cpu_s_per_trial"],
        "database": None if run.database_cpu_s is None else run.database_cpu_s / per,
    }
    cpu["total"] = sum(v for v in cpu.values() if v is not None)
    cell["cpu_s_per_trial"] = cpu
    joins = run.join_proxy.get("by_method", {}).get("GetTrials", {})
    cell["join_proxy"] = {
        "cpu_s": run.join_proxy.get("cpu_seconds"),
        "get_trials_handler_s": joins.get("seconds"),
    }
    cell["cores_used_by_fleet_proxy_database"] = cpu["total"] * per / cell["last_worker_end_s"]
    cell["machine_cores_busy"] = (
        None if run.machine_busy is None else run.machine_busy * (os.cpu_count() or 1)
    )
    return cell


def goals(fleet: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    goals: dict[str, Any] = {
        "steady_ratio_limit": GOAL_RATIO,
        "size_growth_limit": GOAL_GROWTH,
        "largest_fleet": None,
        "largest_fleet_steady_ratio": None,
        "fleet_ratio_met": None,
        "size_growth_seconds": None,
        "size_growth_cpu_seconds": None,
        "size_growth_statements": None,
        "size_growth_met": None,
        "notes": "fleet_ratio_met judges steady_ratio at the largest fleet; size_growth_met "
        "judges seconds per trial (largest size over smallest). Under CPU contention from "
        "other work, wall seconds vary between runs; CPU seconds per trial (client + proxy "
        "+ database) vary less and are reported beside them.",
    }
    if fleet:
        largest = max(fleet, key=int)
        ratio = fleet[largest].get("steady_ratio")
        goals.update(
            largest_fleet=int(largest),
            largest_fleet_steady_ratio=ratio,
            fleet_ratio_met=None if ratio is None else ratio >= GOAL_RATIO,
        )
    if len(sizes) > 1:
        small, big = sizes[min(sizes, key=int)], sizes[max(sizes, key=int)]
        if small["seconds_per_trial"] and big["seconds_per_trial"]:
            growth = big["seconds_per_trial"] / small["seconds_per_trial"]
            goals["size_growth_seconds"] = growth
            goals["size_growth_met"] = growth <= GOAL_GROWTH
        c_small, c_big = small["cpu_s_per_trial"]["total"], big["cpu_s_per_trial"]["total"]
        goals["size_growth_cpu_seconds"] = c_big / c_small if c_small else None
        s_small = small["proxy"]["statements_per_trial"]
        if s_small:
            goals["size_growth_statements"] = big["proxy"]["statements_per_trial"] / s_small
    return goals


def where_time_goes(fleet: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    """Where each trial's time went, from the figures measured (see the module doc)."""
    found: dict[str, Any] = {}
    if fleet:
        workers = max(fleet, key=int)
        cell = fleet[workers]
        cpu, proxy = cell["cpu_s_per_trial"], cell["proxy"]
        ideal = cell.get("steady_ideal_trials_per_s") or cell.get("ideal_trials_per_s") or 0.0
        need = cpu["total"] * ideal
        found["largest_fleet"] = {
            "workers": int(workers),
            "overhead_s_per_trial": cell.get("overhead_s_per_trial"),
            "overhead_in_objective_s": cell.get("overhead_in_objective_s"),
            "overhead_between_trials_s": cell.get("overhead_between_trials_s"),
            "cpu_s_per_trial": cpu,
            "cores_needed_at_ideal": need,
            # The proxy is one Python process: its handlers share one GIL, one core.
            "one_proxy_process_max_trials_per_s": 1 / cpu["proxy"] if cpu["proxy"] else None,
            "cores_used_by_fleet_proxy_database": cell["cores_used_by_fleet_proxy_database"],
            "machine_cores_busy": cell["machine_cores_busy"],
            "proxy_handler_s_per_trial_by_method": {
                m: row["handler_s_per_trial"] for m, row in list(proxy["by_method"].items())[:6]
            },
            "reading": f"each trial costs {cpu['total']:.3f} CPU seconds (proxy "
            f"{cpu['proxy']:.3f}, database {cpu['database'] or 0:.3f}, clients "
            f"{cpu['client']:.3f}) in {proxy['rpcs_per_trial']:.0f} RPCs and "
            f"{proxy['statements_per_trial']:.0f} statements; the ideal {ideal:.1f} trials/s "
            f"would need {need:.1f} cores, the machine has {os.cpu_count()}; one proxy "
            f"process (one GIL) serves at most {1 / max(cpu['proxy'], 1e-9):.1f} trials/s",
        }
    if len(sizes) > 1:
        small, big = sizes[min(sizes, key=int)], sizes[max(sizes, key=int)]
        growth = {}
        for method, row in big["proxy"]["by_method"].items():
            before = small["proxy"]["by_method"].get(method, {})
            growth[method] = {
                "handler_s_per_trial": [
                    before.get("handler_s_per_trial"),
                    row["handler_s_per_trial"],
                ],
                "calls_per_trial": [before.get("calls_per_trial"), row["calls_per_trial"]],
                "ms_per_call": [before.get("ms_per_call"), row["ms_per_call"]],
            }
        ordered = sorted(
            growth.items(),
            key=lambda kv: (
                -(kv[1]["handler_s_per_trial"][1] - (kv[1]["handler_s_per_trial"][0] or 0))
            ),
        )
        found["sizes"] = {
            "sizes": [min(sizes, key=int), max(sizes, key=int)],
            "seconds_per_trial": [small["seconds_per_trial"], big["seconds_per_trial"]],
            "cpu_s_per_trial": [small["cpu_s_per_trial"], big["cpu_s_per_trial"]],
            "statements_per_trial": [
                small["proxy"]["statements_per_trial"],
                big["proxy"]["statements_per_trial"],
            ],
            "rpcs_by_growth": dict(ordered[:5]),
            "proxy_first_read_s": [small["proxy_first_read_s"], big["proxy_first_read_s"]],
            "join_s": [small["join_s"]["max"], big["join_s"]["max"]],
        }
    return found
