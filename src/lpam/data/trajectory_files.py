"""Your data on a radial trajectory (`lpam reconstruct --trajectory` / `--trajectory-file`): the trajectory
file, and the k-space samples per contrast (measured) or the images to measure on it (simulated).

A trajectory file is a .npy of k-space coordinates (2, K) (rows omega_y, omega_x) or (K, 2), radians per
pixel in [-pi, pi] (the convention of :func:`lpam.physics.nufft.radial_trajectory`). K-space input is one
file per contrast holding samples (K,) (single-coil) or (Nc, K) (coils; their maps are estimated from the
density-compensated coil images' central 24 x 24 of k-space, the ``lowres`` method). One slice per file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lpam.data.files import read_array
from lpam.physics.coils import estimate_coil_maps
from lpam.physics.fourier import fft2c
from lpam.physics.radial import RadialMRIPhysics, TrajectorySpec
from lpam.physics.nufft import READOUT_OVERSAMPLING

CALIBRATION = (24, 24)  # central k-space of the density-compensated coil images used to estimate coil maps


def load_trajectory(path: str | Path) -> torch.Tensor:
    """The coordinates (2, K), float64, of a trajectory file (.npy, (2, K) or (K, 2))."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"--trajectory-file must be a .npy of k-space coordinates (2, K) or (K, 2), got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    array = np.load(path, allow_pickle=False)
    if array.ndim != 2 or 2 not in array.shape or np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: a trajectory is real coordinates (2, K) or (K, 2), got {array.dtype} {array.shape}")
    coordinates = array if array.shape[0] == 2 else array.T
    return torch.from_numpy(np.ascontiguousarray(coordinates, dtype=np.float64))


def _trajectory(spec: TrajectorySpec | None, trajectory_file: str | Path | None,
                shape: tuple[int, int]) -> tuple[torch.Tensor, TrajectorySpec]:
    """(coordinates, the request for choosing a model): the spec's, or the file's with its spokes estimated
    as K / (2 max(H, W)) (the default readout)."""
    if spec is not None and trajectory_file is not None:
        raise ValueError("give either --trajectory or --trajectory-file, not both")
    if spec is not None:
        return spec.trajectory(shape), spec
    coordinates = load_trajectory(trajectory_file)
    spokes = max(1, round(coordinates.shape[1] / (READOUT_OVERSAMPLING * max(shape))))
    return coordinates, TrajectorySpec("radial-golden", spokes)


def _coil_maps(samples: torch.Tensor, trajectory: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Coil maps (1, C, Nc, H, W) of multi-coil samples (1, C, Nc, K): ``lowres`` maps from the Cartesian
    k-space of the density-compensated coil images."""
    single = RadialMRIPhysics(trajectory, shape, samples.shape[1])
    coil_images = single.zero_filled(samples[0].transpose(0, 1)).transpose(0, 1)  # (C, Nc, H, W)
    calibration = tuple(min(size, side // 2) for size, side in zip(CALIBRATION, shape))
    return estimate_coil_maps(fft2c(coil_images), calibration, "lowres")[None]


def radial_input(paths: list[Path], input_type: str, images: np.ndarray | None, spec: TrajectorySpec | None,
                 trajectory_file: str | Path | None,
                 image_size: tuple[int, int] | None) -> tuple[np.ndarray, RadialMRIPhysics, TrajectorySpec]:
    """(stacked input, physics, request): ``images`` (S, C, H, W) to measure on the trajectory (``input_type``
    image), or the k-space samples in ``paths``, (1, C, K) or (1, C, Nc, K), on an ``image_size`` grid."""
    if input_type == "image":
        shape = tuple(images.shape[-2:])
        trajectory, request = _trajectory(spec, trajectory_file, shape)
        return images, RadialMRIPhysics(trajectory, shape, images.shape[1]), request
    if image_size is None:
        raise ValueError("k-space on a trajectory needs the image grid: give --image-size H W")
    shape = tuple(image_size)
    trajectory, request = _trajectory(spec, trajectory_file, shape)
    arrays = [read_array(p, ("kspace", "k", "data")) for p in paths]
    for path, array in zip(paths, arrays):
        if array.ndim not in (1, 2) or array.shape[-1] != trajectory.shape[1] or not np.iscomplexobj(array):
            raise ValueError(f"{path}: k-space on the trajectory must be complex samples (K,) or (Nc, K) with "
                             f"K = {trajectory.shape[1]}, got {array.dtype} {array.shape}")
        if array.shape != arrays[0].shape:
            raise ValueError(f"contrasts do not match: {paths[0]} has shape {arrays[0].shape}, {path} {array.shape}")
    stacked = np.stack(arrays)[None].astype(np.complex64)  # (1, C, [Nc,] K)
    maps = _coil_maps(torch.from_numpy(stacked), trajectory, shape) if stacked.ndim == 4 else None
    return stacked, RadialMRIPhysics(trajectory, shape, len(arrays), maps), request
