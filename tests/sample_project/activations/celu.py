"""CELU with the same where-leak; the team accepted it (inputs are normalized upstream)."""
import torch


def celu(x):  # gradsafe: ignore[GS101]
    return torch.where(x > 0, x, torch.exp(x) - 1)
