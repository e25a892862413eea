"""Multi-coil MRI physics: A = P F S_c with coil sensitivity maps S_c (docs/method.md sections 1 and 5).

Coil k-space of one image x (B, H, W) is (B, Nc, H, W), y_c = P F (S_c x). Sensitivity maps come from
:func:`simulate_coil_maps` (smooth, deterministic, for simulated data) or from the calibration region (the
fully sampled k-space centre) of measured k-space with :func:`estimate_coil_maps`: a windowed
low-resolution estimate built in, ESPIRiT through the optional ``sigpy`` package (``pip install lpam[coils]``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lpam.physics.fourier import MaskedFourier, ifft2c
from lpam.physics.operator import LinearOperator

MAP_METHODS = ("auto", "lowres", "espirit")
MAP_SUPPORT_THRESHOLD = 0.05  # lowres maps: support where the coil images' RSS exceeds 5% of its maximum


def maps_per_contrast(maps: torch.Tensor) -> torch.Tensor:
    """A view of ``maps`` with 5 axes (B or 1, C or 1, Nc, H, W): (Nc, H, W) is one map set for every sample
    and contrast, (B, Nc, H, W) one per sample shared by its contrasts, (B, C, Nc, H, W) one per contrast."""
    if maps.ndim == 3:
        return maps[None, None]
    if maps.ndim == 4:
        return maps[:, None]
    if maps.ndim == 5:
        return maps
    raise ValueError(f"coil maps must be (Nc, H, W), (B, Nc, H, W) or (B, C, Nc, H, W), got {tuple(maps.shape)}")


def mask_per_coil(mask: torch.Tensor) -> torch.Tensor:
    """A view of an (H, W), (B, H, W) or (B, C, H, W) mask that broadcasts against multi-coil k-space
    (B, C, Nc, H, W)."""
    if mask.ndim not in (2, 3, 4):
        raise ValueError(f"mask must be (H, W), (B, H, W) or (B, C, H, W), got shape {tuple(mask.shape)}")
    return {2: mask, 3: mask[:, None, None], 4: mask[:, :, None]}[mask.ndim]


def root_sum_of_squares(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """RSS coil combination sqrt(sum_c |x_c|^2) over the coil axis ``dim`` (a real image)."""
    return torch.linalg.vector_norm(coil_images, dim=dim)


def sensitivity_combine(coil_images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """SENSE-1 combination sum_c conj(S_c) x_c over the coil axis (-3); the least-squares image for full
    sampling when sum_c |S_c|^2 = 1."""
    return (maps.conj() * coil_images).sum(-3)


class MultiCoilFourier(LinearOperator):
    """A x = (P F S_c x)_c for images x (B, H, W) -> coil k-space (B, Nc, H, W).

    ``mask`` is (H, W) or (B, H, W); ``maps`` (Nc, H, W) or (B, Nc, H, W), complex (real maps are promoted).
    With sum_c |S_c|^2 <= 1, ||A|| <= 1 as in the single-coil case; with sum_c |S_c|^2 = 1 and full sampling
    A^H A = I.
    """

    def __init__(self, mask: torch.Tensor, maps: torch.Tensor) -> None:
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must be (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
        if maps.ndim not in (3, 4):
            raise ValueError(f"coil maps must be (Nc, H, W) or (B, Nc, H, W), got shape {tuple(maps.shape)}")
        if maps.shape[-3] < 1:
            raise ValueError("coil maps hold no coil (Nc = 0); at least one coil is needed")
        if tuple(maps.shape[-2:]) != tuple(mask.shape[-2:]):
            raise ValueError(f"coil maps have spatial shape {tuple(maps.shape[-2:])} but the mask has shape "
                             f"{tuple(mask.shape[-2:])}")
        if not torch.isfinite(torch.view_as_real(maps) if maps.is_complex() else maps).all():
            raise ValueError("coil maps contain NaN or infinite values")
        self.fourier = MaskedFourier(mask[:, None] if mask.ndim == 3 else mask)  # P broadcast over the coils
        self.maps = maps.to(torch.promote_types(maps.dtype, torch.complex64))

    @property
    def shape(self) -> tuple[int, int]:
        return self.fourier.shape

    @property
    def mask(self) -> torch.Tensor:
        return self.fourier.mask

    @property
    def num_coils(self) -> int:
        return self.maps.shape[-3]

    def _check_image(self, image: torch.Tensor) -> None:
        if image.ndim != 3 or tuple(image.shape[-2:]) != self.shape:
            raise ValueError(f"image must be (B, H, W) with (H, W) = {self.shape}, got {tuple(image.shape)}")
        if self.maps.ndim == 4 and self.maps.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"coil maps are for {self.maps.shape[0]} samples, the image batch has {image.shape[0]}")

    def _check_kspace(self, kspace: torch.Tensor) -> None:
        if kspace.ndim != 4 or kspace.shape[1] != self.num_coils or tuple(kspace.shape[-2:]) != self.shape:
            raise ValueError(f"coil k-space must be (B, {self.num_coils}, H, W) with (H, W) = {self.shape}, "
                             f"got {tuple(kspace.shape)}")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x = (P F S_c x)_c, (B, H, W) -> (B, Nc, H, W)."""
        self._check_image(image)
        return self.fourier.forward(self.maps * image[:, None])

    def sampled(self, kspace: torch.Tensor) -> torch.Tensor:
        """P y_c for every coil."""
        self._check_kspace(kspace)
        return self.fourier.sampled(kspace)

    def coil_images(self, kspace: torch.Tensor) -> torch.Tensor:
        """Zero-filled coil images F^H P y_c, (B, Nc, H, W)."""
        self._check_kspace(kspace)
        return self.fourier.adjoint(kspace)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """A^H y = sum_c conj(S_c) F^H P y_c, (B, Nc, H, W) -> (B, H, W)."""
        return sensitivity_combine(self.coil_images(kspace), self.maps)


def simulate_coil_maps(
    num_coils: int,
    shape: tuple[int, int],
    ring_radius: float = 1.3,
    coil_width: float = 0.6,
    phase_slope: float = math.pi / 2,
) -> torch.Tensor:
    """Smooth, deterministic coil maps (Nc, H, W) complex64 with sum_c |S_c|^2 = 1 at every pixel.

    Coil c sits at angle theta_c = 2 pi c / Nc on a ring of radius ``ring_radius`` around the FOV centre
    (lengths in units of half the larger image side, pixels square). Its magnitude falls off like the
    on-axis field of a loop (Biot-Savart), (1 + (d_c / coil_width)^2)^(-3/2), d_c the distance to the coil;
    its phase is theta_c plus a linear ramp of ``phase_slope`` radians per unit length towards the coil.
    The maps are divided by their root sum of squares, so full sampling gives A^H A = I and ||A|| = 1 as
    for the single-coil operator: a network trained on single-coil data keeps meaningful step sizes.
    """
    if num_coils < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils}")
    height, width = shape
    half = max(height, width) / 2
    rows = (torch.arange(height, dtype=torch.float64) - height // 2) / half
    cols = (torch.arange(width, dtype=torch.float64) - width // 2) / half
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    angles = 2 * math.pi * torch.arange(num_coils, dtype=torch.float64) / num_coils
    direction_y, direction_x = torch.sin(angles)[:, None, None], torch.cos(angles)[:, None, None]
    distance = torch.hypot(grid_y - ring_radius * direction_y, grid_x - ring_radius * direction_x)
    magnitude = (1 + (distance / coil_width) ** 2) ** -1.5
    phase = angles[:, None, None] + phase_slope * (grid_y * direction_y + grid_x * direction_x)
    maps = torch.polar(magnitude, phase)
    return (maps / root_sum_of_squares(maps, dim=0)).to(torch.complex64)


def calibration_size(mask: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """(h, w) of the largest fully sampled rectangle centred on the k-space centre (H // 2, W // 2) of an
    (H, W) mask, grown as a square first, then along each axis (Cartesian masks: the full height times the
    centre lines; radial masks: the square inside the fully sampled disc)."""
    sampled = np.asarray(mask) != 0
    if sampled.ndim != 2:
        raise ValueError(f"calibration needs one (H, W) mask, got shape {sampled.shape}")
    centre_y, centre_x = sampled.shape[0] // 2, sampled.shape[1] // 2
    half = [0, 0]  # the rectangle is rows centre_y - half[0] .. centre_y + half[0], likewise columns

    def fits(half_y: int, half_x: int) -> bool:
        if half_y > centre_y or half_x > centre_x or centre_y + half_y >= sampled.shape[0] \
                or centre_x + half_x >= sampled.shape[1]:
            return False
        return bool(sampled[centre_y - half_y:centre_y + half_y + 1, centre_x - half_x:centre_x + half_x + 1].all())

    if not sampled[centre_y, centre_x]:
        raise ValueError("the mask does not sample the k-space centre: no calibration region")
    while fits(half[0] + 1, half[1] + 1):
        half = [half[0] + 1, half[1] + 1]
    for axis in (0, 1):
        grown = list(half)
        grown[axis] += 1
        while fits(*grown):
            half = list(grown)
            grown[axis] += 1
    return 2 * half[0] + 1, 2 * half[1] + 1


def _calibration_slices(shape: tuple[int, int], size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the (h, w) calibration rectangle centred on (H // 2, W // 2)."""
    (height, width), (h, w) = shape, size
    if not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(f"calibration size {size} must lie between (1, 1) and the k-space shape {shape}")
    top, left = height // 2 - h // 2, width // 2 - w // 2
    return slice(top, top + h), slice(left, left + w)


def lowres_coil_images(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-resolution coil images F^H (W y): the calibration region of k-space (..., H, W) times a separable
    Hann window (non-zero on every calibration sample), zero elsewhere."""
    rows, cols = _calibration_slices(tuple(kspace.shape[-2:]), size)
    h, w = size
    real = torch.view_as_real(kspace).dtype
    window = (torch.hann_window(h + 2, periodic=False, dtype=real)[1:-1, None]
              * torch.hann_window(w + 2, periodic=False, dtype=real)[None, 1:-1]).to(kspace.device)
    windowed = torch.zeros_like(kspace)
    windowed[..., rows, cols] = kspace[..., rows, cols] * window
    return ifft2c(windowed)


def _lowres_maps(kspace: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    coil_images = lowres_coil_images(kspace, size)
    rss = root_sum_of_squares(coil_images, dim=-3)[..., None, :, :]
    support = rss > threshold * rss.amax(dim=(-2, -1), keepdim=True)
    return torch.where(support, coil_images / rss.clamp_min(torch.finfo(rss.dtype).tiny), 0)


def _espirit_maps(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ESPIRiT (sigpy.mri.app.EspiritCalib with its defaults, calibration width min(h, w)) per sample, the
    phase of each set referred to its SENSE-combined low-resolution image, so that a real object gives a
    real image."""
    try:
        from sigpy.mri.app import EspiritCalib
    except ImportError:
        raise ValueError("ESPIRiT needs the optional package sigpy: pip install 'lpam[coils]'") from None
    flat = kspace.reshape(-1, *kspace.shape[-3:])
    maps = torch.stack([
        torch.from_numpy(EspiritCalib(sample.cpu().numpy(), calib_width=min(size), show_pbar=False).run())
        for sample in flat
    ]).reshape(kspace.shape).to(kspace.device, kspace.dtype)
    combined = sensitivity_combine(lowres_coil_images(kspace, size), maps)[..., None, :, :]
    return maps * torch.sgn(combined)


def estimate_coil_maps(
    kspace: torch.Tensor,
    calibration: tuple[int, int] | torch.Tensor,
    method: str = "auto",
    threshold: float = MAP_SUPPORT_THRESHOLD,
) -> torch.Tensor:
    """Coil maps (..., Nc, H, W) from coil k-space (..., Nc, H, W) and its calibration region: an (h, w)
    size or the (H, W) sampling mask (then :func:`calibration_size`).

    ``lowres``: S_c = I_c / sqrt(sum_c |I_c|^2) on the support where that root sum of squares exceeds
    ``threshold`` times its maximum, 0 elsewhere; I_c = :func:`lowres_coil_images`. For an object x and maps
    smooth on the calibration scale, I_c ~ S_c x_lowres, so S_c is recovered up to the phase of x_lowres.
    ``espirit``: ESPIRiT through sigpy (its default thresholds). ``auto``: ESPIRiT when sigpy
    is installed, else ``lowres``.
    """
    method = resolved_map_method(method)
    if kspace.ndim < 3 or not kspace.is_complex():
        raise ValueError(f"coil k-space must be complex (..., Nc, H, W), got {kspace.dtype} {tuple(kspace.shape)}")
    if not torch.isfinite(torch.view_as_real(kspace)).all():
        raise ValueError("coil k-space contains NaN or infinite values")
    size = calibration_size(calibration.cpu()) if isinstance(calibration, torch.Tensor) else tuple(calibration)
    if method == "espirit":
        return _espirit_maps(kspace, size)
    return _lowres_maps(kspace, size, threshold)


def resolved_map_method(method: str) -> str:
    """``auto`` -> ``espirit`` when sigpy can be imported, else ``lowres``; ``lowres`` and ``espirit`` unchanged."""
    if method not in MAP_METHODS:
        raise ValueError(f"unknown coil map method {method!r}; choose one of {', '.join(MAP_METHODS)}")
    if method != "auto":
        return method
    try:
        import sigpy  # noqa: F401
    except ImportError:
        return "lowres"
    return "espirit"
