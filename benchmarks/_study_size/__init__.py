"""The parts of ``benchmarks/study_size.py``: the stand-in objective and the populated
studies, the per-trial timers, and the tabular hypervolume check of a setting."""
