"""The embedded T1w/T2w pair: ICBM 2009c nonlinear symmetric templates (SPEC.md sections 6 and 7; notice in
COPYING-ICBM; made by scripts/make_embedded_data.py).

Axial slices 160 (left-right) x 180 (anterior-posterior), each volume scaled to [0, 1]. One averaged brain,
split by slabs of axial slices with gaps of 4 slices between them, never at random:
train z 20..79 and 122..155 (94 slices), validation z 84..93 (10), test z 98..117 (20, mid-brain).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lpam.physics.fourier import fft2c

DATA_FILE = Path(__file__).parent / "icbm2009c_t1t2.npz"
CONTRASTS = ("T1", "T2")
SPLITS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(20, 80)) + tuple(range(122, 156)),
    "val": tuple(range(84, 94)),
    "test": tuple(range(98, 118)),
}
SPLIT_ALIASES = {"validation": "val"}


@dataclass
class EmbeddedSplit:
    """Images (S, C, H, W) float32 in [0, 1], the axial index of each slice, the contrast names."""

    images: torch.Tensor
    axial_indices: list[int]
    contrasts: tuple[str, ...]


@lru_cache(maxsize=1)
def _volumes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    if not DATA_FILE.is_file():
        raise FileNotFoundError(f"embedded data missing: {DATA_FILE} (reinstall lpam or run scripts/make_embedded_data.py)")
    with np.load(DATA_FILE) as archive:
        levels = float(archive["levels"])
        volumes = {c: archive[c].astype(np.float32) / levels for c in CONTRASTS}
        return volumes, archive["axial_indices"]


def load_split(
    split: str, contrasts: Sequence[str] = CONTRASTS, slices: slice | Sequence[int] | None = None
) -> EmbeddedSplit:
    """Paired slices of one split; ``slices`` selects positions within the split (a slice or indices)."""
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of train, val (validation), test")
    unknown = [c for c in contrasts if c not in CONTRASTS]
    if unknown or not contrasts:
        raise ValueError(f"unknown contrast(s) {unknown or list(contrasts)}; the embedded data has {', '.join(CONTRASTS)}")
    axial = list(SPLITS[name])
    if slices is not None:
        positions = range(len(axial))[slices] if isinstance(slices, slice) else list(slices)
        bad = [p for p in positions if not -len(axial) <= p < len(axial)]
        if bad:
            raise ValueError(f"slice position(s) {bad} outside the {name} split of {len(axial)} slices")
        axial = [axial[p] for p in positions]
    if not axial:
        raise ValueError(f"the slice selection {slices!r} selects no slice of the {name} split")
    volumes, indices = _volumes()
    rows = [int(np.searchsorted(indices, z)) for z in axial]
    images = np.stack([volumes[c][rows] for c in contrasts], axis=1)
    return EmbeddedSplit(torch.from_numpy(images), axial, tuple(contrasts))


def simulate_kspace(
    images: torch.Tensor, mask: torch.Tensor, noise_std: float = 0.0, seed: int | None = 0
) -> torch.Tensor:
    """y = P (F x + n), complex64, n complex Gaussian with E|n|^2 = noise_std^2 per k-space sample
    (each of Re, Im with std noise_std / sqrt(2)); images (..., H, W), mask (H, W) or broadcastable."""
    if tuple(mask.shape[-2:]) != tuple(images.shape[-2:]):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match image shape {tuple(images.shape[-2:])}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    checked = torch.view_as_real(images) if images.is_complex() else images
    if not torch.isfinite(checked).all():
        raise ValueError("images contain NaN or infinite values")
    kspace = fft2c(images.to(torch.complex64))
    if noise_std > 0:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        noise = torch.randn(kspace.shape, dtype=torch.complex64, generator=generator)  # E|n|^2 = 1
        kspace = kspace + noise_std * noise.to(kspace.device)
    return kspace * (mask != 0).to(kspace.device)
