"""The physics of measured k-space given to `lpam reconstruct` (.npy / .mat / NIfTI k-space or ISMRMRD): Cartesian
or radial, single-coil, or multi-coil with coil maps estimated from the k-space centre. Cartesian maps come
from the calibration region (the fully sampled centre, :func:`lpam.physics.coils.calibration_size`) of each
contrast's own mask; radial maps from the central ``CALIBRATION`` x ``CALIBRATION`` block of the gridded
(density-compensated) coil images' k-space, which a radial trajectory samples densely."""
from __future__ import annotations

import torch

from lpam.data.kspace_images import CALIBRATION
from lpam.physics.coils import estimate_coil_maps
from lpam.physics.fourier import fft2c
from lpam.physics.mri import MRIPhysics
from lpam.physics.radial import RadialMRIPhysics, radial_operator

SINGLE_COIL_AXES = 4  # Cartesian (S, C, H, W); multi-coil k-space has a coil axis more: (S, C, Nc, H, W)
SINGLE_COIL_RADIAL_AXES = 3  # radial samples (S, C, K); multi-coil (S, C, Nc, K)


def measured_physics(kspace: torch.Tensor, sampling: torch.Tensor, map_method: str = "lowres") -> MRIPhysics:
    """MRIPhysics of k-space (S, C, H, W), or (S, C, Nc, H, W) with coil maps (S, C, Nc, H, W) estimated per
    slice and contrast by ``map_method`` (:data:`lpam.physics.coils.MAP_METHODS`); ``sampling`` is (H, W)
    shared or (1, C, H, W), one mask per contrast."""
    contrasts = kspace.shape[1]
    if kspace.ndim == SINGLE_COIL_AXES:
        return MRIPhysics(sampling, contrasts)
    kspace = kspace.to(torch.complex64)
    masks = [sampling] * contrasts if sampling.ndim == 2 else list(sampling[0])
    maps = torch.stack([estimate_coil_maps(kspace[:, j] * masks[j], masks[j], map_method)
                        for j in range(contrasts)], dim=1)
    return MRIPhysics(sampling, contrasts, maps)


def radial_measured_physics(samples: torch.Tensor, trajectory: torch.Tensor, shape: tuple[int, int],
                            map_method: str = "lowres") -> RadialMRIPhysics:
    """RadialMRIPhysics of samples (S, C, K) at ``trajectory`` (2, K) radians per pixel on the image grid
    ``shape``, or of multi-coil samples (S, C, Nc, K) with coil maps estimated per slice and contrast from
    the centre of the gridded coil images' k-space."""
    contrasts = samples.shape[1]
    if samples.ndim == SINGLE_COIL_RADIAL_AXES:
        return RadialMRIPhysics(trajectory, shape, contrasts)
    gridded = radial_operator(trajectory, shape).zero_filled(samples.reshape(-1, samples.shape[-1]).to(torch.complex64))
    kspace = fft2c(gridded.reshape(*samples.shape[:-1], *shape))
    maps = estimate_coil_maps(kspace, (min(CALIBRATION, shape[0]), min(CALIBRATION, shape[1])), map_method)
    return RadialMRIPhysics(trajectory, shape, contrasts, maps)
