"""Device selection with a clear error when the requested accelerator is absent."""
from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """torch.device(name), checking that a CUDA device exists when one is asked for."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return device
