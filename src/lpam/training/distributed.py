"""Data-parallel training on PyTorch's own engine: torch.distributed, launched by torchrun.

``torchrun --nproc_per_node N -m lpam train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; each process then
joins the process group (gloo on CPU, NCCL on CUDA, rendezvous from torchrun's environment), wraps the
model in DistributedDataParallel and reads its shard of every global batch through a DistributedSampler.
``train.batch_size`` is the global batch: each of the N processes takes batch_size / N samples, and DDP
averages the gradients, which equals the gradient of the mean loss over the global batch, so N processes
follow single-process training to rounding. Masks and augmentation are seeded per sample index, not per
process (docs/method.md section 7), so every process count sees the same data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lpam.device import resolve_device


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place: rank among ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def join_process_group(device: str) -> tuple[ProcessGroup, torch.device]:
    """The process group from torchrun's environment (one process when WORLD_SIZE is unset or 1) and this
    process's device: ``cuda`` becomes cuda:LOCAL_RANK (backend NCCL); CPU uses gloo."""
    group = ProcessGroup(_environment_int("RANK", 0), _environment_int("WORLD_SIZE", 1), _environment_int("LOCAL_RANK", 0))
    if not group.distributed:
        return group, resolve_device(device)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("train.device is cuda but CUDA is not available on this node")
        torch.cuda.set_device(group.local_rank)
        torch_device, backend = torch.device("cuda", group.local_rank), "nccl"
    else:
        torch_device, backend = resolve_device(device), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=group.rank, world_size=group.world_size)
    return group, torch_device


def leave_process_group(group: ProcessGroup) -> None:
    """Wait for every process, then tear the group down."""
    if group.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(group: ProcessGroup) -> None:
    if group.distributed:
        dist.barrier()


def mean_over_processes(value: torch.Tensor, group: ProcessGroup) -> float:
    """The mean of a scalar over all processes (the global batch's loss), as a Python float."""
    value = value.detach().clone()
    if group.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= group.world_size
    return float(value)
