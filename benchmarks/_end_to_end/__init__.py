"""The hand-written side of ``benchmarks/end_to_end.py``: a plain Optuna script."""
