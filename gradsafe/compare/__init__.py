"""The same probes through several definitions."""
