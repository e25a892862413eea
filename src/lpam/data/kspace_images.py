"""Images of measured k-space for `lpam prepare` (docs/method.md sections 5 and 7). K-space is centred (DC in
the middle), as F of lpam.physics.fourier.

Single-coil k-space y gives x = F^H y. Multi-coil k-space y_c is combined into one virtual coil,
x = sum_c conj(S_c) F^H y_c (SENSE-1, :func:`combine_coils`), with ``lowres`` coil maps S_c
(:func:`lpam.physics.coils.estimate_coil_maps`, sum_c |S_c|^2 = 1 on the object, 0 outside) estimated from the
central ``CALIBRATION`` x ``CALIBRATION`` block of the (fully sampled) k-space, so |x| is about the RSS image;
or (``--keep-coils``) kept per coil with its maps (:func:`coil_volume`).
"""
from __future__ import annotations

import numpy as np
import torch

from lpam.physics.coils import estimate_coil_maps, sensitivity_combine
from lpam.physics.fourier import fft2c, ifft2c

CALIBRATION = 24  # side of the central k-space block the coil maps are estimated from
COMBINE_THRESHOLD = 1e-6  # relative RSS below which combine_coils' maps are 0: keep wherever the coils see signal


def _calibration(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (h, w) calibration block of k-space (..., H, W): ``CALIBRATION`` square, at most the matrix."""
    return min(CALIBRATION, shape[-2]), min(CALIBRATION, shape[-1])


def inverse_fourier(kspace: np.ndarray) -> np.ndarray:
    """F^H y over the last two axes (lpam.physics.fourier.ifft2c), complex64."""
    return ifft2c(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))).numpy()


def combine_coils(kspace: np.ndarray) -> np.ndarray:
    """One complex image per slice from multi-coil k-space (S, coils, H, W): the SENSE-1 image
    x = sum_c conj(S_c) F^H y_c with ``lowres`` maps S_c from the central ``CALIBRATION`` block, kept wherever
    the coils see any signal. sum_c |S_c|^2 = 1, so |x| is close to the RSS image, and F x is a virtual coil:
    a linear function of the measured k-space, nothing re-simulated."""
    coil_kspace = torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))
    maps = estimate_coil_maps(coil_kspace, _calibration(kspace.shape), method="lowres", threshold=COMBINE_THRESHOLD)
    return sensitivity_combine(ifft2c(coil_kspace), maps).numpy()


def image_from_kspace(kspace: np.ndarray, measured: bool) -> np.ndarray:
    """(S, H, W) from centred k-space (S, H, W) or (S, coils, H, W): with ``measured`` the complex image
    F^H y (coils combined by :func:`combine_coils`), else its magnitude (root-sum-of-squares over coils,
    sqrt(sum_c |F^H y_c|^2))."""
    if kspace.ndim == 4:
        if measured:
            return combine_coils(kspace)
        return np.sqrt(np.square(np.abs(inverse_fourier(kspace))).sum(1))
    image = inverse_fourier(kspace)
    return image if measured else np.abs(image)


def coil_volume(coil_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From coil images x_c (S, Nc, H, W) of fully sampled k-space: the SENSE-1 image x = sum_c conj(S_c) x_c
    (S, H, W) and the coil maps S_c (S, Nc, H, W), estimated per slice from the central ``CALIBRATION`` block
    of F x_c (``lowres``)."""
    kspace = fft2c(torch.from_numpy(np.ascontiguousarray(coil_images, dtype=np.complex64)))
    maps = estimate_coil_maps(kspace, _calibration(kspace.shape), method="lowres")
    combined = sensitivity_combine(torch.from_numpy(coil_images.astype(np.complex64)), maps).numpy()
    return combined, maps.numpy()
