"""Scoring a reconstruction method on identical data: the methods as reconstructors (measurements, physics)
-> images, and per-slice metrics on magnitudes (docs/method.md section 7)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from lpam.algorithm.lpam import History
from lpam.data.augment import AugmentConfig
from lpam.data.sources import EvaluationData
from lpam.data.transforms import data_transform, evaluation_samples, fixed_masks
from lpam.metrics import slice_metrics, summarize
from lpam.physics.coils import estimate_coil_maps
from lpam.physics.radial import TrajectorySpec
from lpam.physics.mri import ContrastPhysics, MRIPhysics
from lpam.reconstruction import TVSettings, reconstruct_tv
from lpam.workflows import run_network

Reconstructor = Callable[[torch.Tensor, ContrastPhysics], torch.Tensor]  # (measurements, physics) -> images
Batch = tuple[torch.Tensor, ContrastPhysics, torch.Tensor]  # (measurements, physics, targets |x|)


@dataclass
class MethodResult:
    """Per-slice metrics {position: {contrast: metrics}}, seconds, and what is kept for figures."""

    per_slice: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    history: History | None = None
    shown: np.ndarray | None = None


def evaluation_batch(data: EvaluationData, mask: torch.Tensor | TrajectorySpec, positions: Sequence[int], coils: int | None = None,
                     measured_coils: bool = False) -> Batch:
    """The slices at ``positions`` measured with ``mask`` (or on a trajectory) and no augmentation or noise, through the data's
    transform (:func:`lpam.data.transforms.data_transform`): simulated from magnitudes, the measured k-space of
    complex images, ``coils`` simulated coils, or the measured coils of a ``--keep-coils`` dataset."""
    transform = data_transform(data, AugmentConfig(enabled=False), fixed_masks(mask), coils, measured_coils)
    return evaluation_samples(transform, list(positions))


def evaluate_method(reconstruct: Reconstructor, batch: Batch, positions: Sequence[int], contrasts: Sequence[str],
                    show: int | None = None) -> MethodResult:
    """Reconstruct the measurements of ``batch`` (the slices at ``positions``) and score every slice against
    its target |x|."""
    kspace, physics, targets = batch
    started = time.perf_counter()
    recon = reconstruct(kspace, physics)
    result = MethodResult(seconds=time.perf_counter() - started)
    magnitudes, truth = recon.abs().numpy(), targets.numpy()
    for row, position in enumerate(positions):
        result.per_slice[position] = {c: slice_metrics(magnitudes[row, j], truth[row, j])
                                      for j, c in enumerate(contrasts)}
        if position == show:
            result.shown = recon[row].numpy()
    return result


def summary(result: MethodResult, contrasts: Sequence[str], positions: Sequence[int] | None = None) -> dict:
    """{contrast: {metric: {mean, std}}} over ``positions`` (default: all evaluated slices)."""
    chosen = list(result.per_slice) if positions is None else [p for p in positions if p in result.per_slice]
    return {c: summarize([result.per_slice[p][c] for p in chosen]) for c in contrasts}


def zero_filled(kspace: torch.Tensor, physics: ContrastPhysics) -> torch.Tensor:
    """The zero-filled images A^H y (with coils: SENSE-combined; on a trajectory: density-compensated)."""
    return physics.zero_filled(kspace)


def network_reconstructor(model: torch.nn.Module, mode: str, history: History | None = None,
                          progress: bool = False, phases: int | None = None) -> Reconstructor:
    return lambda kspace, physics: run_network(model, kspace, physics, mode, history, progress, phases=phases)


def tv_reconstructor(settings: TVSettings, progress: bool = False) -> Reconstructor:
    """Classical LPAM with TV (``settings``: weight, coupling, iterations)."""
    return lambda kspace, physics: reconstruct_tv(kspace, physics, settings, progress)[0]


def multicoil_reconstructors(model: torch.nn.Module, name: str, mode: str, estimate_maps: str | None = None,
                             progress: bool = False, phases: int | None = None) -> dict[str, Reconstructor]:
    """The methods of `lpam evaluate --coils`: zero-filled coil-combined by root sum of squares and by the
    maps (SENSE, A^H y), and the model with A_c = P F S_c. The maps are the physics' (simulated or stored)
    ones, or, when ``estimate_maps`` names a method of :func:`estimate_coil_maps`, estimated from the
    calibration region of each slice's sampled k-space (per contrast)."""

    def physics_for(kspace: torch.Tensor, physics: MRIPhysics) -> MRIPhysics:
        if estimate_maps is None:
            return physics
        return MRIPhysics(physics.mask, physics.contrasts,
                          estimate_coil_maps(kspace, physics.mask[0], estimate_maps))

    return {
        "zero-filled-rss": lambda kspace, physics: physics.root_sum_of_squares(kspace),
        "zero-filled-sense": lambda kspace, physics: zero_filled(kspace, physics_for(kspace, physics)),
        name: network_reconstructor_with(model, mode, physics_for, progress, phases),
    }


def network_reconstructor_with(model: torch.nn.Module, mode: str,
                               physics_for: Callable[[torch.Tensor, MRIPhysics], MRIPhysics], progress: bool,
                               phases: int | None) -> Reconstructor:
    """The network on the physics ``physics_for`` gives for the measurements (e.g. with estimated maps)."""
    return lambda kspace, physics: run_network(model, kspace, physics_for(kspace, physics), mode, progress=progress,
                                               phases=phases)
