"""gradsafe: find NaN/inf gradients in activation functions before you train."""

__version__ = "0.1.0"
