"""The pieces of ``benchmarks/fleet_scale.py``: the counted proxy, the simulated fleet, and
the pre-populated studies."""
