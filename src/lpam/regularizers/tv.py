"""Total variation as a group-sparsity regulariser (docs/method.md sections 1 and 7).

g(x) = forward differences D of the real and imaginary parts of each block, both directions,
(D_v x)_{r,c} = x_{r+1,c} - x_{r,c} and (D_h x)_{r,c} = x_{r,c+1} - x_{r,c}. At the last row / column:
``boundary="zero"``: D x = 0 there (the published code's choice); ``"circular"``: x is periodic (consistent
with the FFT's periodic image and with LPAM-net's circular padding); ``"zero-extension"``: x = 0 outside the
image, so D x = -x there (what LPAM-net's TV-initialised g computes with zero padding).
``joint``: R = lam sum_i ||(D x_1, ..., D x_N)_i|| (one term over all blocks);
``separate``: R = lam sum_j sum_i ||(D x_j)_i|| (one term per block). J_g^T = D^T is written by hand.

For the primal-dual solver (lpam.algorithm.primal_dual) TV is g(K x) with K = D on all blocks stacked along
channels and g = lam ||.||_{2,1} over the coupling groups (joint: all channels at a pixel; separate: each
block's channels at a pixel): :func:`tv_value` is g (exact, not smoothed), :func:`project_dual` is prox_{s g*},
the projection onto {p : ||p_i||_group <= lam}, and ||D||^2 <= :data:`DIFFERENCES_NORM_SQUARED` for every boundary.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lpam.algorithm.regularizer import Blocks, Regularizer, Term
from lpam.algorithm.smoothing import group_norms, smoothed_l21, smoothed_l21_grad

TV_COUPLINGS = ("joint", "separate")
DIFFERENCES_NORM_SQUARED = 8.0  # ||D_v||^2, ||D_h||^2 <= 4 (two entries +-1 per row) for every boundary


def _parts(image: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 2, H, W) [Re, Im] for complex images, (B, 1, H, W) for real ones."""
    return torch.view_as_real(image).movedim(-1, 1) if image.is_complex() else image[:, None]


BOUNDARIES = ("zero", "circular", "zero-extension")


def finite_differences(image: torch.Tensor, boundary: str = "zero") -> torch.Tensor:
    """D x for an image (B, H, W) -> real features (B, 2P, H, W): [vertical, horizontal] of each part."""
    parts = _parts(image)
    if boundary == "circular":
        return torch.cat([parts.roll(-1, -2) - parts, parts.roll(-1, -1) - parts], dim=1)
    if boundary == "zero-extension":
        padded = F.pad(parts, (0, 1, 0, 1))  # a zero row below the image and a zero column right of it
        return torch.cat([padded[..., 1:, :-1] - parts, padded[..., :-1, 1:] - parts], dim=1)
    count = parts.shape[1]
    features = parts.new_zeros(parts.shape[0], 2 * count, *parts.shape[2:])
    features[:, :count, :-1, :] = parts[..., 1:, :] - parts[..., :-1, :]
    features[:, count:, :, :-1] = parts[..., :, 1:] - parts[..., :, :-1]
    return features


def finite_differences_adjoint(features: torch.Tensor, like: torch.Tensor, boundary: str = "zero") -> torch.Tensor:
    """D^T p, the adjoint of :func:`finite_differences`, returned with the dtype and shape of ``like``."""
    vertical, horizontal = features.chunk(2, dim=1)
    if boundary == "circular":
        parts = vertical.roll(1, -2) - vertical + horizontal.roll(1, -1) - horizontal
    elif boundary == "zero-extension":  # (D_v^T p)_r = p_{r-1} - p_r with p_{-1} = 0; likewise D_h^T
        parts = (F.pad(vertical, (0, 0, 1, 0))[..., :-1, :] - vertical
                 + F.pad(horizontal, (1, 0))[..., :-1] - horizontal)
    else:
        parts = torch.zeros_like(vertical)
        parts[..., 1:, :] = vertical[..., :-1, :]
        parts[..., :-1, :] -= vertical[..., :-1, :]
        parts[..., :, 1:] += horizontal[..., :, :-1]
        parts[..., :, :-1] -= horizontal[..., :, :-1]
    if like.is_complex():
        return torch.complex(parts[:, 0], parts[:, 1])
    return parts[:, 0]


class FiniteDifferences:
    """The TV feature map of one or several blocks (stacked along channels), with its hand-written J^T."""

    def __init__(self, boundary: str = "zero") -> None:
        if boundary not in BOUNDARIES:
            raise ValueError(f"unknown TV boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")
        self.boundary = boundary

    def __call__(self, *blocks: torch.Tensor) -> torch.Tensor:
        return torch.cat([finite_differences(x, self.boundary) for x in blocks], dim=1)

    def adjoint(self, features: torch.Tensor, like: Blocks) -> Blocks:
        """D^T of stacked features: one image per block of ``like`` (their dtypes and shapes)."""
        return [finite_differences_adjoint(p, x, self.boundary)
                for p, x in zip(features.split(feature_sizes(like), dim=1), like)]

    def smoothed_value_and_grad(
        self, inputs: Blocks, eps: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, Blocks | None]:
        """sum_i r_eps((D x)_i) and D^T (D x / max(|D x|, eps))."""
        features = self(*inputs)
        value = smoothed_l21(features, eps)
        if not need_grad:
            return value, None
        return value, self.adjoint(smoothed_l21_grad(features, eps), inputs)


def check_coupling(coupling: str) -> None:
    """A ValueError for a coupling not in :data:`TV_COUPLINGS`."""
    if coupling not in TV_COUPLINGS:
        raise ValueError(f"unknown TV coupling {coupling!r}; choose one of {', '.join(TV_COUPLINGS)}")


def check_tv_options(lam: float, coupling: str) -> None:
    """A ValueError for a coupling not in :data:`TV_COUPLINGS` or a weight lam <= 0."""
    check_coupling(coupling)
    if not lam > 0:
        raise ValueError(f"the TV weight lam must be positive, got {lam}")


def feature_sizes(blocks: Blocks) -> list[int]:
    """Channels of D x_j per block: 2 directions x (Re, Im) for complex blocks, 2 for real ones."""
    return [2 * _parts(x).shape[1] for x in blocks]


def coupling_groups(features: torch.Tensor, sizes: list[int], coupling: str) -> list[torch.Tensor]:
    """The stacked features split into the channel sets grouped at each pixel: joint: all of them; separate:
    those of each block (``sizes`` from :func:`feature_sizes`)."""
    check_coupling(coupling)
    return [features] if coupling == "joint" else list(features.split(sizes, dim=1))


def tv_value(features: torch.Tensor, lam: float, sizes: list[int], coupling: str = "joint") -> torch.Tensor:
    """g(D x) = lam sum_groups sum_i ||(D x)_i||_group per sample (exact TV, no smoothing)."""
    return lam * sum(group_norms(p).flatten(1).sum(1) for p in coupling_groups(features, sizes, coupling))


def project_dual(features: torch.Tensor, lam: float, sizes: list[int], coupling: str = "joint") -> torch.Tensor:
    """Projection onto {p : ||p_i||_group <= lam}: p_i / max(1, ||p_i||_group / lam) per pixel and group
    (the prox of s g* for g = lam ||.||_{2,1}, for every s)."""
    return torch.cat([p / torch.clamp(group_norms(p) / lam, min=1.0)
                      for p in coupling_groups(features, sizes, coupling)], dim=1)


def total_variation(num_blocks: int, lam: float, coupling: str = "joint", boundary: str = "zero") -> Regularizer:
    """Joint or separate TV with weight ``lam`` and ``boundary`` (one of :data:`BOUNDARIES`) as an LPAM regulariser."""
    check_tv_options(lam, coupling)
    if coupling == "joint":
        return Regularizer([Term(FiniteDifferences(boundary), tuple(range(num_blocks)), lam)])
    return Regularizer([Term(FiniteDifferences(boundary), (j,), lam) for j in range(num_blocks)])
