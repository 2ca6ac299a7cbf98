"""Drift tests: pure functions over a reference profile and a window of values, with no I/O."""
