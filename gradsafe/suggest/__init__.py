"""Rewrites for findings, verified by sweeping them again."""
