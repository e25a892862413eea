"""The embedded T1w/T2w pair: ICBM 2009c nonlinear symmetric whole-head templates (docs/method.md sections 6 and 7;
notice in COPYING-ICBM; made by scripts/make_embedded_data.py), plus a synthetic PD-weighted third
contrast derived from the pair (tissue classes, literature PD / T1 / T2, a spin-echo signal equation; the
script's docstring gives the model). T1 and T2 are the default pair; ask for PD by name.

Axial slices z = 6..160 (the brain's extent), 160 (left -> right) x 180 (posterior -> anterior), each volume
scaled to [0, 1] and stored on 1023 levels. It is one averaged, smooth, symmetric brain, so the splits are
slabs of neighbouring axial slices with 4 unused slices between any two splits, never random slices:

* train z 20..79 and 122..155 (94 slices): the rest of the brain where it covers >= 6% of the crop
  (10% at z = 20, 6% at z = 155); the skull base below and the vertex above are left out;
* validation z 84..93 (10 slices, 69-71% brain);
* test z 98..117 (20 slices, 57-67% brain): the central slab through the lateral ventricles.

Neighbouring slices are strongly correlated, so results on the test slab do not show generalisation.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lpam.data.prepared import SPLIT_ALIASES, SPLITS
from lpam.physics.fourier import MaskedFourier
from lpam.physics.mri import ContrastPhysics, MRIPhysics
from lpam.physics.operator import simulate_measurements
from lpam.physics.masks import MaskSpec, binary_mask_error
from lpam.physics.radial import TrajectorySpec, samples_per_pixel
from lpam.options import check_unique
from lpam.problem import peak_warning

DATA_FILE = Path(__file__).parent / "icbm2009c_t1t2.npz"
CONTRASTS = ("T1", "T2", "PD")
DEFAULT_CONTRASTS = ("T1", "T2")
SPLIT_SLICES: dict[str, tuple[int, ...]] = dict(zip(SPLITS, (  # axial indices z of train, val, test
    tuple(range(20, 80)) + tuple(range(122, 156)),
    tuple(range(84, 94)),
    tuple(range(98, 118)),
)))
NEGATIVE_TOLERANCE = 0.1  # real images may dip this far below 0 (sharpening, interpolation) without a warning


@dataclass
class EmbeddedSplit:
    """Images (S, C, 160, 180) float32 in [0, 1], the axial index of each slice, the contrast names."""

    images: torch.Tensor
    axial_indices: list[int]
    contrasts: tuple[str, ...]


@lru_cache(maxsize=1)
def _volumes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Decoded read-only volumes {contrast: (z, 160, 180) float32}, x = (256 high + low) / levels, and z."""
    if not DATA_FILE.is_file():
        raise FileNotFoundError(
            f"embedded data missing: {DATA_FILE} (reinstall lpam or run scripts/make_embedded_data.py)"
        )
    with np.load(DATA_FILE) as archive:
        levels = float(archive["levels"])
        volumes = {}
        for contrast in CONTRASTS:
            quantised = archive[f"{contrast}_high"].astype(np.float32) * 256 + archive[f"{contrast}_low"]
            volumes[contrast] = quantised / np.float32(levels)
            volumes[contrast].setflags(write=False)
        return volumes, archive["axial_indices"]


def load_split(
    split: str, contrasts: str | Sequence[str] = DEFAULT_CONTRASTS, slices: slice | Sequence[int] | None = None
) -> EmbeddedSplit:
    """Paired slices of ``split`` ("train", "val" or "validation", "test").

    ``contrasts`` picks and orders the channels; ``slices`` selects positions within the split (a slice
    object or a sequence of indices, negative ones counting from the end), e.g. ``slice(0, 4)``.
    """
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLIT_SLICES:
        raise ValueError(f"unknown split {split!r}; choose one of train, val (validation), test")
    contrasts = (contrasts,) if isinstance(contrasts, str) else tuple(check_unique(contrasts, "contrasts"))
    unknown = [c for c in contrasts if c not in CONTRASTS]
    if unknown or not contrasts:
        raise ValueError(
            f"unknown contrast(s) {unknown or list(contrasts)}; the embedded data has {', '.join(CONTRASTS)}"
        )
    axial = list(SPLIT_SLICES[name])
    if slices is not None:
        positions = range(len(axial))[slices] if isinstance(slices, slice) else list(slices)
        outside = [p for p in positions if not -len(axial) <= p < len(axial)]
        if outside:
            raise ValueError(f"slice position(s) {outside} outside the {name} split of {len(axial)} slices")
        axial = [axial[p] for p in positions]
    if not axial:
        raise ValueError(f"the slice selection {slices!r} selects no slice of the {name} split")
    volumes, indices = _volumes()
    rows = np.searchsorted(indices, axial)
    images = np.stack([volumes[c][rows] for c in contrasts], axis=1)
    return EmbeddedSplit(torch.from_numpy(images), axial, contrasts)


def _warn_if_unnormalised(images: torch.Tensor) -> None:
    """Warn (never silently) when images are not scaled like the training data, magnitudes in [0, 1]."""
    magnitude = images.abs()
    message = peak_warning(magnitude.amax().reshape(1), "image") if magnitude.numel() else None
    if not images.is_complex() and magnitude.numel() and float(images.amin()) < -NEGATIVE_TOLERANCE:
        message = f"images hold negative values (down to {float(images.amin()):.3g}); magnitudes are >= 0"
    if message is not None:
        warnings.warn(f"{message}: divide them by their maximum (the models expect images in [0, 1])", stacklevel=3)


def simulate_kspace(
    images: torch.Tensor, mask: torch.Tensor, noise_std: float = 0.0, seed: int | None = 0
) -> torch.Tensor:
    """y = P F x + P n, complex64, F the centred orthonormal FFT (:class:`MaskedFourier`), P = (mask != 0).

    n is complex Gaussian with E|n|^2 = noise_std^2 per k-space sample (Re and Im each with standard
    deviation noise_std / sqrt(2)); with the orthonormal F this is also the noise level per pixel in
    image space, relative to images in [0, 1]. The noise is drawn on the CPU from a generator seeded with
    ``seed`` (fresh entropy for None), so it is the same on every device. ``images`` (..., H, W) real or
    complex; ``mask`` (H, W) or any shape broadcastable to the images' shape.
    """
    for name, tensor in (("images", images), ("mask", mask)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}; convert it with "
                            "torch.from_numpy(...)")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, images.shape)
    except RuntimeError:
        broadcast = None
    if mask.ndim < 2 or broadcast != images.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match image shape {tuple(images.shape)}")
    for name, tensor in (("images", images), ("mask", mask)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"NaN or infinite values in the {name}")
    problem = binary_mask_error(mask)
    if problem is not None:
        raise ValueError(problem)
    _warn_if_unnormalised(images)
    return simulate_measurements(MaskedFourier(mask.to(images.device)), images.to(torch.complex64), noise_std, seed)


def simulate_multicoil_kspace(
    images: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor, noise_std: float = 0.0, seed: int | None = 0
) -> torch.Tensor:
    """y_c = P F (S_c x) + P n_c, complex64 (B, C, Nc, H, W), for images (B, C, H, W) and coil maps (Nc, H, W),
    (B, Nc, H, W) or (B, C, Nc, H, W) (:mod:`lpam.physics.mri`); ``mask`` (H, W), (B, H, W) or (B, C, H, W). The
    noise is that of :func:`simulate_kspace`, independent per coil sample."""
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if not torch.isfinite(torch.view_as_real(maps) if maps.is_complex() else maps).all():
        raise ValueError("NaN or infinite values in the coil maps")
    _warn_if_unnormalised(images)
    physics = MRIPhysics(mask.to(images.device), images.shape[1], maps.to(images.device))
    return simulate_measurements(physics, images.to(torch.complex64), noise_std, seed)


def simulate_acquisition(images: torch.Tensor, sampling: MaskSpec | TrajectorySpec,
                         noise_std: float = 0.0) -> tuple[torch.Tensor, ContrastPhysics, dict]:
    """(y, physics, description for metrics.json) of images (B, C, H, W) measured with the mask ``sampling``
    builds (:func:`simulate_kspace`, y = P F x + P n) or on its trajectory (y = A x + n, the radial NUFFT A;
    the same noise convention, seed 0). The description's ``achieved_rate`` is the mask's sampling rate, or
    the trajectory's samples per grid point K / (H W)."""
    shape, contrasts = tuple(images.shape[-2:]), images.shape[1]
    if isinstance(sampling, TrajectorySpec):
        physics = sampling.physics(shape, contrasts)
        kspace = simulate_measurements(physics, images.to(torch.complex64), noise_std, seed=0)
        return kspace, physics, {**sampling.describe(), "samples": physics.samples,
                                 "achieved_rate": samples_per_pixel(physics)}
    mask = sampling.build(shape)
    return simulate_kspace(images, mask, noise_std=noise_std), MRIPhysics(mask, contrasts), \
        {**sampling.describe(), "achieved_rate": float(mask.float().mean())}
