"""Device selection with a clear error when the requested accelerator is absent, and peak memory."""
from __future__ import annotations

import resource

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


def peak_memory_mib(device: torch.device, reset: bool = False) -> float:
    """Peak memory in MiB: CUDA allocations on a GPU (since the last reset; ``reset`` starts a new window),
    the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        if reset:
            torch.cuda.reset_peak_memory_stats(device)
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
