"""Checking one target: dispatcher, functions, variants, custom gradients, exhaustive, analysis."""
