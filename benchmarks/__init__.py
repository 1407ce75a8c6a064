"""Benchmark scripts (run as ``python benchmarks/NAME.py``) and the pieces they share."""
