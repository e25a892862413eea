"""Samples as (y, physics, target): one transform per kind of data, the same for training (augmentation, a
pool of masks, noise) and for validation and evaluation (augmentation off, fixed masks).

* :class:`MagnitudeImages`: real images in [0, 1] (the embedded data, prepared datasets without k-space):
  augmented, given a smooth random phase and noise, y = P F x + P n;
* :class:`ComplexImages`: complex images x whose F x is measured k-space (``--measured-kspace``): flipped and
  rescaled only, y = P F x, nothing simulated (docs/method.md section 7);
* :class:`SimulatedCoils`: either of the two seen by N simulated coils, y_c = P F S_c x + P n_c;
* :class:`MeasuredCoils`: measured coil images x_c with their maps (``--keep-coils``), y_c = P F x_c.

A mask draw that gives a :class:`~lpam.physics.radial.TrajectorySpec` instead of a mask measures the first three
on that trajectory, y = A x + n with the radial NUFFT A (:class:`~lpam.physics.radial.RadialMRIPhysics`).

A sample's random choices come from the generator it is given, in a fixed order (augmentation, mask, noise
level, phase, noise seed), so that a training run draws the same samples in every process and on resume.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from lpam.data.augment import (AugmentConfig, augment_images, augment_measured, augment_measured_coils, noise_level,
                               random_phase)
from lpam.data.embedded import simulate_kspace, simulate_multicoil_kspace
from lpam.data.sources import EvaluationData
from lpam.physics.coils import sensitivity_combine, simulate_coil_maps
from lpam.physics.mri import ContrastPhysics, MRIPhysics
from lpam.physics.operator import simulate_measurements
from lpam.physics.radial import RadialMRIPhysics, TrajectorySpec

NOISE_SEEDS = 2**31  # a sample's noise generator is seeded with a draw below this

# (image shape, sample index, generator) -> the sample's mask (H, W), or the trajectory it is measured on
MaskDraw = Callable[[tuple[int, int], int, np.random.Generator], torch.Tensor | TrajectorySpec]
# what the scanner sees: an image (C, H, W), or measured coil images with their maps, both (C, Nc, H, W)
Signal = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class Sample:
    """Measurements y (1, C, H, W) or (1, C, Nc, H, W) (radial: (1, C, [Nc,] K)), their physics (batch 1) and
    the target |x| (1, C, H, W)."""

    kspace: torch.Tensor
    physics: ContrastPhysics
    target: torch.Tensor


def collate(samples: list[Sample]) -> tuple[torch.Tensor, ContrastPhysics, torch.Tensor]:
    """A batch (y, physics, target) of samples: their masks (or shared trajectory) and maps stacked along the
    batch axis."""
    if isinstance(samples[0].physics, RadialMRIPhysics):
        physics = RadialMRIPhysics.batch([s.physics for s in samples])
        return torch.cat([s.kspace for s in samples]), physics, torch.cat([s.target for s in samples])
    contrasts = samples[0].physics.contrasts
    maps = [s.physics.maps for s in samples]
    physics = MRIPhysics(torch.cat([s.physics.mask for s in samples]), contrasts,
                         None if maps[0] is None else torch.cat(maps))
    return torch.cat([s.kspace for s in samples]), physics, torch.cat([s.target for s in samples])


@lru_cache(maxsize=8)
def coil_maps_for(num_coils: int, shape: tuple[int, int]) -> torch.Tensor:
    """The simulated coil maps (Nc, H, W) of :func:`simulate_coil_maps`, cached per shape."""
    return simulate_coil_maps(num_coils, shape)


class DataTransform(ABC):
    """Sample ``index`` of a dataset as (y, physics, target), its random choices drawn from ``rng``."""

    def __init__(self, augment: AugmentConfig, draw_mask: MaskDraw) -> None:
        self.augment, self.draw_mask = augment, draw_mask

    @abstractmethod
    def augmented(self, index: int, rng: np.random.Generator) -> tuple[Signal, torch.Tensor]:
        """(signal the scanner sees, target |x| (C, H, W)) of sample ``index``."""

    def corrupted(self, signal: Signal, target: torch.Tensor, rng: np.random.Generator) -> tuple[Signal, float]:
        """(signal with what the scan adds, noise level): nothing for measured data."""
        return signal, 0.0

    @abstractmethod
    def measured(self, signal: Signal, mask: torch.Tensor, noise: float,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(k-space (C, ...), coil maps of the sample with a batch axis or None)."""

    def radial_measured(self, signal: Signal, trajectory: TrajectorySpec, noise: float,
                        seed: int) -> tuple[torch.Tensor, RadialMRIPhysics]:
        """(k-space (1, C, [Nc,] K), physics) of the signal on ``trajectory``."""
        raise ValueError(f"{type(self).__name__} data cannot be measured on a trajectory (measured coil k-space "
                         "is Cartesian); use a mask")

    def __call__(self, index: int, rng: np.random.Generator) -> Sample:
        signal, target = self.augmented(index, rng)
        mask = self.draw_mask(tuple(target.shape[-2:]), index, rng)
        signal, noise = self.corrupted(signal, target, rng)
        if isinstance(mask, TrajectorySpec):
            kspace, physics = self.radial_measured(signal, mask, noise, int(rng.integers(NOISE_SEEDS)))
            return Sample(kspace, physics, target[None])
        kspace, maps = self.measured(signal, mask, noise, int(rng.integers(NOISE_SEEDS)))
        return Sample(kspace[None], MRIPhysics(mask[None], target.shape[0], maps), target[None])


def simulate_radial(signal: torch.Tensor, trajectory: TrajectorySpec, maps: torch.Tensor | None, noise: float,
                    seed: int) -> tuple[torch.Tensor, RadialMRIPhysics]:
    """(y = A x + n (1, C, [Nc,] K), A) for images x (C, H, W) on ``trajectory``, with :func:`simulate_measurements`'
    noise convention (E|n|^2 = noise^2 per sample)."""
    physics = trajectory.physics(tuple(signal.shape[-2:]), signal.shape[0], maps)
    return simulate_measurements(physics, signal[None].to(torch.complex64), noise, seed), physics


class MagnitudeImages(DataTransform):
    """Real images in [0, 1]: augmented, a smooth random phase and k-space noise added, y = P (F x + n)."""

    def __init__(self, images: torch.Tensor, augment: AugmentConfig, draw_mask: MaskDraw) -> None:
        super().__init__(augment, draw_mask)
        self.images = images

    def augmented(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        target = augment_images(self.images[index], self.augment, rng)
        return target, target

    def corrupted(self, signal: torch.Tensor, target: torch.Tensor,
                  rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        noise = noise_level(self.augment, rng)
        return random_phase(target, self.augment, rng), noise

    def measured(self, signal: torch.Tensor, mask: torch.Tensor, noise: float,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return simulate_kspace(signal, mask, noise_std=noise, seed=seed), None

    def radial_measured(self, signal: torch.Tensor, trajectory: TrajectorySpec, noise: float,
                        seed: int) -> tuple[torch.Tensor, RadialMRIPhysics]:
        return simulate_radial(signal, trajectory, None, noise, seed)


class ComplexImages(MagnitudeImages):
    """Complex images x of measured k-space: flipped and rescaled, y = P F x, target |x|; no phase, no noise."""

    def augmented(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        image = augment_measured(self.images[index], self.augment, rng)
        return image, image.abs()

    def corrupted(self, signal: torch.Tensor, target: torch.Tensor,
                  rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        return signal, 0.0


class SimulatedCoils(DataTransform):
    """The samples of ``single`` (magnitude or complex images) seen by ``num_coils`` simulated coils
    (:func:`simulate_coil_maps`): y_c = P F S_c x + P n_c, the noise independent per coil at the sample's level."""

    def __init__(self, single: MagnitudeImages, num_coils: int) -> None:
        super().__init__(single.augment, single.draw_mask)
        self.single, self.num_coils = single, num_coils

    def augmented(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.single.augmented(index, rng)

    def corrupted(self, signal: torch.Tensor, target: torch.Tensor,
                  rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        return self.single.corrupted(signal, target, rng)

    def measured(self, signal: torch.Tensor, mask: torch.Tensor, noise: float,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        maps = coil_maps_for(self.num_coils, tuple(signal.shape[-2:]))
        return simulate_multicoil_kspace(signal[None], mask, maps, noise, seed)[0], maps[None]

    def radial_measured(self, signal: torch.Tensor, trajectory: TrajectorySpec, noise: float,
                        seed: int) -> tuple[torch.Tensor, RadialMRIPhysics]:
        return simulate_radial(signal, trajectory, coil_maps_for(self.num_coils, tuple(signal.shape[-2:])), noise,
                               seed)


class MeasuredCoils(DataTransform):
    """Measured coil images x_c (S, C, Nc, H, W) with their maps S_c: flipped (with the maps) and rescaled,
    y_c = P F x_c, target |sum_c conj(S_c) x_c|; nothing simulated."""

    def __init__(self, coil_images: torch.Tensor, maps: torch.Tensor, augment: AugmentConfig,
                 draw_mask: MaskDraw) -> None:
        super().__init__(augment, draw_mask)
        self.coil_images, self.maps = coil_images, maps

    def augmented(self, index: int, rng: np.random.Generator) -> tuple[Signal, torch.Tensor]:
        coil_images, maps = augment_measured_coils(self.coil_images[index], self.maps[index], self.augment, rng)
        return (coil_images, maps), sensitivity_combine(coil_images, maps).abs()

    def measured(self, signal: Signal, mask: torch.Tensor, noise: float,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        coil_images, maps = signal
        return simulate_kspace(coil_images, mask), maps[None]


def data_transform(data: EvaluationData, augment: AugmentConfig, draw_mask: MaskDraw, coils: int | None = None,
                   measured_coils: bool = False) -> DataTransform:
    """The transform of ``data``: its measured coil k-space with ``measured_coils`` (a dataset prepared with
    ``--keep-coils``), else its complex (measured k-space) or magnitude images, seen by ``coils`` simulated
    coils when given."""
    if measured_coils:
        if data.coil_images is None:
            raise ValueError(f"{data.source}: measured coils need a dataset prepared with --measured-kspace "
                             "--keep-coils (measured multi-coil k-space)")
        return MeasuredCoils(data.coil_images, data.maps, augment, draw_mask)
    single_class = ComplexImages if data.measured else MagnitudeImages
    single = single_class(data.images, augment, draw_mask)
    return single if coils is None else SimulatedCoils(single, coils)


def fixed_masks(masks: torch.Tensor | TrajectorySpec) -> MaskDraw:
    """A mask draw that gives every sample ``masks`` (H, W) (or the trajectory ``masks``), or sample i the mask
    ``masks[i]`` of (S, H, W); it draws nothing from the generator."""
    if isinstance(masks, TrajectorySpec):
        return lambda shape, index, rng: masks
    return lambda shape, index, rng: masks if masks.ndim == 2 else masks[index]


def evaluation_samples(transform: DataTransform, indices: list[int]) -> tuple[torch.Tensor, ContrastPhysics,
                                                                               torch.Tensor]:
    """(y, physics, target) of the samples at ``indices``: with fixed masks and augmentation off nothing random
    reaches the samples (the noise seed drawn is unused at noise level 0), so one fixed generator serves."""
    rng = np.random.default_rng(0)
    return collate([transform(index, rng) for index in indices])
