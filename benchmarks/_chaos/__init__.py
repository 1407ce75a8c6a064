"""The chaos soak of ``benchmarks/chaos.py``: a fleet of real workers under random faults."""

from __future__ import annotations

from benchmarks._chaos.audit import audit_study
from benchmarks._chaos.fleet import ChaosConfig, run_chaos

__all__ = ["ChaosConfig", "audit_study", "run_chaos"]
