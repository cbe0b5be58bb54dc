"""`--device cpu|cuda|auto`, decided in the CLI process without importing a framework.

A GPU is visible when the NVIDIA driver exposes a device node and CUDA_VISIBLE_DEVICES does not
hide every device. `cuda` without one is a one-line error; `auto` falls back to the CPU. The
worker checks again that its framework can use the GPU (a CPU-only build cannot) and says
which device ran in the target's notes.
"""

from __future__ import annotations

import glob
import os


class DeviceError(Exception):
    """--device cuda with no usable GPU; the message is one line."""


def gpu_visible() -> bool:
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def choose(device: str) -> str:
    """The device the sweep runs on: "cpu" or "cuda"."""
    if device == "cpu":
        return "cpu"
    if gpu_visible():
        return "cuda"
    if device == "cuda":
        raise DeviceError("--device cuda: no GPU is visible on this machine (no /dev/nvidia* "
                          "device, or CUDA_VISIBLE_DEVICES hides them); use --device cpu or "
                          "auto")
    return "cpu"
