"""Centred orthonormal 2-D Fourier transform and the undersampled operator A = P F (docs/method.md section 5)."""
from __future__ import annotations

import torch

from lpam.physics.operator import LinearOperator

_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes: fftshift(fft2(ifftshift(x), norm="ortho"))."""
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (also its adjoint, the transform being unitary)."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=_DIMS)


class MaskedFourier(LinearOperator):
    """A = P F with a binary k-space mask P; ||A|| <= 1 since F is unitary and P a projection.

    ``mask`` has shape (..., H, W) broadcastable against the images (batch dims allowed, e.g. one mask
    per sample of shape (B, 1, H, W) or one shared (H, W)).
    """

    def __init__(self, mask: torch.Tensor) -> None:
        if mask.ndim < 2:
            raise ValueError(f"mask must have at least 2 dimensions (H, W), got shape {tuple(mask.shape)}")
        if not torch.isfinite(mask).all():
            raise ValueError("mask contains NaN or infinite values")
        flat = mask.reshape(-1, *mask.shape[-2:]) if mask.ndim > 2 else mask[None]
        if (flat.flatten(1).sum(1) == 0).any():
            raise ValueError("mask samples no k-space point (all zeros); nothing can be reconstructed")
        self.mask = (mask != 0).to(mask.device)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape[-2:])  # type: ignore[return-value]

    def _check(self, tensor: torch.Tensor, what: str) -> None:
        if tuple(tensor.shape[-2:]) != self.shape:
            raise ValueError(
                f"{what} has spatial shape {tuple(tensor.shape[-2:])} but the mask has shape {self.shape}"
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x = P F x."""
        self._check(image, "image")
        return fft2c(image) * self.mask

    def sampled(self, kspace: torch.Tensor) -> torch.Tensor:
        """P y."""
        self._check(kspace, "k-space")
        return kspace * self.mask

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """A^H y = F^H P y."""
        return ifft2c(self.sampled(kspace))
