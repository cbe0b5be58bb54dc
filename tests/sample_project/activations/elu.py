"""ELU written with torch.where: NaN gradient for x >= 88.72 in float32 (recorded in the
baseline until it is rewritten)."""
import torch


def elu(x):
    return torch.where(x > 0, x, torch.exp(x) - 1)
