"""Training augmentation: users' scans are sharper, blurrier, noisier and differently scaled than the
bundled averaged brain. Each sample is transformed by a generator seeded from (seed, epoch, index), so a
resumed or distributed run sees exactly the same samples."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lpam.options import checked_options


@dataclass
class AugmentConfig:
    """Ranges of the random transforms (all applied to both contrasts alike, they share the anatomy)."""

    enabled: bool = True
    flip: bool = True
    rotate_degrees: float = 10.0
    zoom: tuple[float, float] = (0.85, 1.15)
    intensity: tuple[float, float] = (0.6, 1.2)
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    sharpen_probability: float = 0.2
    noise_probability: float = 0.5
    noise_std: tuple[float, float] = (0.0, 0.01)
    phase_probability: float = 0.3

    def __post_init__(self) -> None:
        for name in ("blur_probability", "sharpen_probability", "noise_probability", "phase_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"data.augment.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("zoom", "intensity", "blur_sigma", "noise_std"):
            low, high = getattr(self, name)
            if not 0 <= low <= high or (name != "noise_std" and low == 0):
                raise ValueError(f"data.augment.{name} must be [low, high] with 0 < low <= high "
                                 f"(noise_std may start at 0), got {list(getattr(self, name))}")
        if self.rotate_degrees < 0:
            raise ValueError(f"data.augment.rotate_degrees must be >= 0, got {self.rotate_degrees!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "AugmentConfig":
        return cls(**checked_options(cls, values, "augmentation option", prefix="data.augment"))

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W) images with reflect padding."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = images[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x[:, 0]


def rotate_and_zoom(images: torch.Tensor, degrees: float, zoom: float = 1.0) -> torch.Tensor:
    """Rotate images (..., H, W) about their centre and magnify them by ``zoom`` (bilinear, zero fill)."""
    height, width = images.shape[-2:]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # affine_grid works in normalised coordinates: correct the rotation for the aspect ratio
    theta = torch.tensor([[cos, -sin * width / height, 0.0], [sin * height / width, cos, 0.0]], dtype=images.dtype)
    flat = images.reshape(1, -1, height, width)
    grid = F.affine_grid(theta[None], list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).reshape(images.shape)


def random_flips(images: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Left-right and up-down flips of (C, H, W) images, each with probability 1/2 (when ``config.flip``)."""
    x = images
    if config.flip and rng.random() < 0.5:
        x = x.flip(-1)
    if config.flip and rng.random() < 0.5:
        x = x.flip(-2)
    return x


def augment_images(images: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random flips, rotation + zoom, blur or sharpening and intensity scaling of (C, H, W) magnitudes."""
    if not config.enabled:
        return images
    x = random_flips(images, config, rng)
    degrees = rng.uniform(-config.rotate_degrees, config.rotate_degrees)
    zoom = rng.uniform(*config.zoom)
    if degrees != 0.0 or zoom != 1.0:
        x = rotate_and_zoom(x, degrees, zoom)
    if rng.random() < config.blur_probability:
        x = gaussian_blur(x, rng.uniform(*config.blur_sigma))
    elif rng.random() < config.sharpen_probability:
        x = (x + rng.uniform(0.3, 1.0) * (x - gaussian_blur(x, 1.0))).clamp_min(0.0)
    return x * rng.uniform(*config.intensity)


def augment_measured(images: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random flips and intensity scaling of complex (C, H, W) images whose F x is measured k-space. A flip is
    a permutation and F unitary, so F(flip x) is a unitary transform of the measurement (noise stays white,
    of the same level); scaling keeps the SNR. Rotation, zoom, blur, sharpening, random phase and added
    noise would alter the measured data and are not applied."""
    if not config.enabled:
        return images
    return random_flips(images, config, rng) * rng.uniform(*config.intensity)


def augment_measured_coils(coil_images: torch.Tensor, maps: torch.Tensor, config: AugmentConfig,
                           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`augment_measured` for measured coil images x_c (C, Nc, H, W) and their maps S_c: the same
    flips of both (so x = sum_c conj(S_c) x_c is flipped alike), the intensity scaling of x_c only."""
    if not config.enabled:
        return coil_images, maps
    flipped = random_flips(torch.stack([coil_images, maps.to(coil_images.dtype)]), config, rng)
    return flipped[0] * rng.uniform(*config.intensity), flipped[1]


def random_phase(images: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Complex images with a smooth random phase (constant + linear) with probability ``phase_probability``."""
    complex_images = images.to(torch.complex64)
    if not config.enabled or rng.random() >= config.phase_probability:
        return complex_images
    height, width = images.shape[-2:]
    v = torch.linspace(-1, 1, height)[:, None]
    h = torch.linspace(-1, 1, width)[None, :]
    phase = rng.uniform(-math.pi, math.pi) + rng.uniform(-1, 1) * v + rng.uniform(-1, 1) * h
    return complex_images * torch.polar(torch.ones_like(phase), phase)


def noise_level(config: AugmentConfig, rng: np.random.Generator) -> float:
    """Standard deviation of the complex k-space noise for one sample (0 when not drawn)."""
    if not config.enabled or rng.random() >= config.noise_probability:
        return 0.0
    return float(rng.uniform(*config.noise_std))
