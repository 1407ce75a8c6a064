"""The benchmarks, each run from the repository root as ``python -m benchmarks.NAME`` (and
``python -m benchmarks.tabular.NAME``), and the pieces they share (``_common``, and one
private sub-package per benchmark that needs more than one module).

Each writes a JSON report with the command that reproduces it. Neither the benchmarks nor
the tests import each other: what both need is in :mod:`nas_objectives.testing`.
"""
