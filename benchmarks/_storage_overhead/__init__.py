"""The cases of ``benchmarks/storage_overhead.py``: its pool workers and its measurements."""
