"""The parts of ``benchmarks/gpu_checks.py``: its settings, its checks, its child processes."""
