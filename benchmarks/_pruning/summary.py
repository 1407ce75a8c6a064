"""The summary of ``pruning.py``: per-configuration medians over seeds, the goals per
pruner, and the summary as a text table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial

from benchmarks._pruning.configs import NAIVE, OUR_PRUNERS
from benchmarks._pruning.measures import Reference, hv_within_epochs, paired, rounded


def summarise(
    runs: dict[str, dict[int, dict[str, Any]]],
    none_trials: dict[int, list[FrozenTrial]],
    seeds: Sequence[int],
    ref: Reference,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-config medians over seeds, and the goals per pruner."""
    base = runs.get("none")
    summary: dict[str, Any] = {}
    for config, by_seed in runs.items():
        rows = [by_seed[s] for s in seeds]
        row: dict[str, Any] = {
            "epochs_median": statistics.median(r["epochs"] for r in rows),
            "steps_median": statistics.median(r["steps"] for r in rows),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in rows), 2),
            "pruned_median": statistics.median(r["pruned"] for r in rows),
            "complete_median": statistics.median(r["complete"] for r in rows),
            "failed_total": sum(r["failed"] for r in rows),
            "pruned_on_front_median": statistics.median(r["pruned_on_front"] for r in rows),
            "hv_median": rounded(statistics.median(r["hv"] for r in rows)),
            "hv_linear_median": rounded(statistics.median(r["hv_linear"] for r in rows)),
            "hv_per_100_epochs_median": rounded(
                statistics.median(r["hv_per_100_epochs"] or 0.0 for r in rows)
            ),
        }
        if "decisions" in rows[0]:
            row["decisions_median"] = statistics.median(r["decisions"] for r in rows)
            ms = [r["decision_ms_median"] for r in rows if r["decision_ms_median"] is not None]
            row["decision_ms_median"] = statistics.median(ms) if ms else None
        if base is not None:
            pairs = [(by_seed[s], base[s]) for s in seeds]
            equal = [hv_within_epochs(none_trials[s], by_seed[s]["epochs"], ref) for s in seeds]
            for s, e in zip(seeds, equal, strict=True):
                by_seed[s]["hv_none_at_equal_compute"] = round(e, 6)
            row |= {
                "epochs_saved_pct": rounded(
                    100 * paired(pairs, lambda r, x: 1 - r["epochs"] / x["epochs"]), 1
                ),
                "steps_saved_pct": rounded(
                    100 * paired(pairs, lambda r, x: 1 - r["steps"] / x["steps"]), 1
                ),
                "wall_saved_pct": rounded(
                    100 * paired(pairs, lambda r, x: 1 - r["wall_s"] / x["wall_s"]), 1
                ),
                "hv_ratio_vs_none": rounded(paired(pairs, lambda r, x: r["hv"] / x["hv"])),
                "hv_ratio_vs_none_per_seed": [rounded(r["hv"] / x["hv"]) for r, x in pairs],
                "epochs_saved_pct_per_seed": [
                    rounded(100 * (1 - r["epochs"] / x["epochs"]), 1) for r, x in pairs
                ],
                "hv_linear_ratio_vs_none": rounded(
                    paired(pairs, lambda r, x: r["hv_linear"] / x["hv_linear"])
                ),
                "hv_none_at_equal_compute_median": rounded(statistics.median(equal)),
                "hv_ratio_vs_none_at_equal_compute_per_seed": [
                    rounded(r["hv"] / e) if e > 0 else None
                    for (r, _), e in zip(pairs, equal, strict=True)
                ],
                "hv_ratio_vs_none_at_equal_compute": rounded(
                    statistics.median(
                        r["hv"] / e if e > 0 else math.inf
                        for (r, _), e in zip(pairs, equal, strict=True)
                    )
                ),
            }
        summary[config] = row

    goals: dict[str, Any] = {}
    if base is None:
        return summary, goals
    for config in OUR_PRUNERS:
        if config not in runs:
            continue
        row = summary[config]
        g: dict[str, Any] = {
            "fewer_epochs_40pct": row["epochs_saved_pct"] >= 40.0,
            "hv_98pct_at_equal_trials": row["hv_ratio_vs_none"] >= 0.98,
            "hv_above_none_at_equal_compute": row["hv_ratio_vs_none_at_equal_compute"] > 1.0,
        }
        beats = {}
        for naive in NAIVE:
            if naive not in runs:
                continue
            diffs = [runs[config][s]["hv"] - runs[naive][s]["hv"] for s in seeds]
            beats[naive] = {
                "better": statistics.median(diffs) > 0,
                "hv_minus_naive_median": rounded(statistics.median(diffs), 5),
                "seeds_better": sum(d > 0 for d in diffs),
            }
            g[f"better_than_{naive}"] = beats[naive]["better"]
        if beats:
            g["better_than_naive"] = all(b["better"] for b in beats.values())
        g["all_goals"] = all(v for k, v in g.items() if isinstance(v, bool))
        g["vs_naive"] = beats
        goals[config] = g
    return summary, goals


def table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width text table."""
    cols = [
        ("config", "", 13),
        ("epochs", "epochs_median", 7),
        ("saved%", "epochs_saved_pct", 7),
        ("steps%", "steps_saved_pct", 7),
        ("HV", "hv_median", 7),
        ("HV/none", "hv_ratio_vs_none", 8),
        ("HVnone@eq", "hv_none_at_equal_compute_median", 10),
        ("HV/eq", "hv_ratio_vs_none_at_equal_compute", 7),
        ("pruned", "pruned_median", 7),
        ("onfront", "pruned_on_front_median", 8),
        ("wall_s", "wall_s_median", 7),
    ]
    lines = [" ".join(f"{h:>{w}}" for h, _, w in cols)]
    for config, row in summary.items():
        cells = [f"{config:>13}"]
        for _, key, w in cols[1:]:
            v = row.get(key)
            cells.append(f"{'-' if v is None else v:>{w}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)
