"""The joint multi-contrast MRI problem as an LPAM objective: the glue between physics and algorithm.

Images are complex tensors (B, C, H, W), one block per contrast; k-space has the same shape. The data term
of block j is f_j(x_j) = 1/2 ||P_j F x_j - y_j||^2 (SPEC.md section 1).
"""
from __future__ import annotations

import torch

from lpam.algorithm.lpam import Objective, SmoothFunction
from lpam.algorithm.regularizer import Regularizer
from lpam.physics.fourier import MaskedFourier


def contrast_operators(mask: torch.Tensor, num_contrasts: int) -> list[MaskedFourier]:
    """One operator per contrast: ``mask`` is (H, W) or (B, H, W) shared, or (B, C, H, W) per contrast."""
    if mask.ndim == 4:
        if mask.shape[1] != num_contrasts:
            raise ValueError(f"per-contrast mask has {mask.shape[1]} contrasts, the data has {num_contrasts}")
        return [MaskedFourier(mask[:, j]) for j in range(num_contrasts)]
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (H, W), (B, H, W) or (B, C, H, W), got shape {tuple(mask.shape)}")
    operator = MaskedFourier(mask)
    return [operator] * num_contrasts


def check_kspace(kspace: torch.Tensor, mask: torch.Tensor) -> None:
    """Validate measured k-space (B, C, H, W) against the mask, with messages that name the problem."""
    if kspace.ndim != 4:
        raise ValueError(f"k-space must have shape (B, C, H, W), got {tuple(kspace.shape)}")
    if kspace.shape[1] < 2:
        raise ValueError(f"joint reconstruction needs at least 2 contrasts, got {kspace.shape[1]}")
    if not kspace.is_complex():
        raise ValueError(f"k-space must be complex, got dtype {kspace.dtype}")
    if tuple(kspace.shape[-2:]) != tuple(mask.shape[-2:]):
        raise ValueError(f"k-space has spatial shape {tuple(kspace.shape[-2:])}, mask {tuple(mask.shape[-2:])}")
    if not torch.isfinite(torch.view_as_real(kspace)).all():
        raise ValueError("k-space contains NaN or infinite values")


def data_terms(operators: list[MaskedFourier], kspace: torch.Tensor) -> list[SmoothFunction]:
    """f_j(x) = 1/2 ||A_j x - y_j||^2 with gradient A_j^H (A_j x - y_j), one per contrast."""
    return [
        SmoothFunction(
            value=lambda x, op=op, y=kspace[:, j]: op.data_fidelity(x, y),
            grad=lambda x, op=op, y=kspace[:, j]: op.data_gradient(x, y),
        )
        for j, op in enumerate(operators)
    ]


def mri_objective(kspace: torch.Tensor, mask: torch.Tensor, regularizer: Regularizer) -> Objective:
    """Phi_eps(x) = sum_j 1/2 ||P_j F x_j - y_j||^2 + R_eps(x) for k-space (B, C, H, W)."""
    check_kspace(kspace, mask)
    operators = contrast_operators(mask.to(kspace.device), kspace.shape[1])
    return Objective(data_terms(operators, kspace), regularizer)


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A^H y per contrast, the default initial image (SPEC.md section 4)."""
    operators = contrast_operators(mask.to(kspace.device), kspace.shape[1])
    return torch.stack([op.adjoint(kspace[:, j]) for j, op in enumerate(operators)], dim=1)
