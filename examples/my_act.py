"""An activation from a paper, written the obvious way. Try: gradsafe check examples/my_act.py"""
import torch


def elu(x, alpha=1.0):
    # looks safe: where() picks x for x > 0 ... but exp(x) still runs there
    return torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def mish(x):
    return x * torch.tanh(torch.log(1 + torch.exp(x)))


def mish_safe(x):
    return x * torch.tanh(torch.nn.functional.softplus(x))
