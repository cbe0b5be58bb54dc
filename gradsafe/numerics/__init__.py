"""Floating-point lattices and probe plans (pure NumPy)."""
