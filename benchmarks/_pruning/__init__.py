"""The cases of ``benchmarks/pruning.py``: its configurations, measures and summary."""
