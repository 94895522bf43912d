"""The one place that decides which torch device the engine, the encoder and the commands run on.

``auto`` prefers CUDA, then Apple's MPS, then the CPU. An explicit device that is not there is refused in one
line (:class:`DeviceUnavailable`) instead of failing later inside a kernel.
"""
from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(ValueError):
    """The asked-for device does not exist on this machine (the message is the line the user sees)."""


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; ``cuda:N`` picks a GPU; a missing device raises DeviceUnavailable."""
    text = str(name).strip().lower() or "auto"
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else ("mps" if mps_available() else "cpu"))
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise DeviceUnavailable(f"device {text!r} is not a device name ({', '.join(DEVICE_CHOICES)}, cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {text!r}: this torch has no CUDA device (choose auto, cpu, cuda or mps)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not mps_available():
        raise DeviceUnavailable(f"device {text!r}: MPS is not available here (choose auto, cpu, cuda or mps)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"device {text!r} is not supported (choose auto, cpu, cuda or mps)")
    return device
