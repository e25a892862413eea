"""Smoothing of the 2,1 norm (docs/method.md section 2) and the smoothed ReLU (docs/method.md section 4).

Feature tensors have shape (B, d, *spatial): the 2,1 norm groups the d channels at each spatial position.
"""
from __future__ import annotations

import torch


def _per_sample(eps: torch.Tensor | float, features: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample (B,) eps against (B, 1, *spatial) group norms."""
    eps = torch.as_tensor(eps, dtype=features.real.dtype, device=features.device)
    if eps.ndim == 0:
        return eps
    return eps.reshape(-1, *([1] * (features.ndim - 1)))


def squared_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|x|^2 elementwise, real; for complex x computed as Re^2 + Im^2 (cheaper than abs().square())."""
    return torch.view_as_real(x).square().sum(-1) if x.is_complex() else x.square()


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """||x_b||^2 per sample b (sum over all but the first axis), shape (B,)."""
    return squared_magnitude(x).flatten(1).sum(1)


def group_norms(features: torch.Tensor) -> torch.Tensor:
    """||g_i||_2 over the channel axis, shape (B, 1, *spatial)."""
    return squared_magnitude(features).sum(dim=1, keepdim=True).sqrt()


def smoothed_l21(features: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """sum_i r_eps(g_i) per sample, with r_eps(z) = ||z||^2/(2 eps) if ||z|| <= eps else ||z|| - eps/2."""
    norms = group_norms(features)
    eps_b = _per_sample(eps, features)
    inside = norms.square() / (2 * eps_b)
    outside = norms - eps_b / 2
    return torch.where(norms <= eps_b, inside, outside).flatten(1).sum(1)


def smoothed_l21_grad(features: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """Gradient of :func:`smoothed_l21` w.r.t. the features: g_i / max(||g_i||, eps)."""
    return features / torch.maximum(group_norms(features), _per_sample(eps, features))


def smoothed_relu(t: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """s(t) = 0 (t <= -delta), t^2/(4 delta) + t/2 + delta/4 (|t| < delta), t (t >= delta).

    Written as relu(t - delta) + (clamp(t, -delta, delta) + delta)^2 / (4 delta), the same function.
    """
    clipped = torch.clamp(t, -delta, delta) + delta
    return torch.relu(t - delta) + clipped.square() / (4 * delta)


def smoothed_relu_derivative(t: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """s'(t) = (clamp(t, -delta, delta) + delta) / (2 delta): 0, linear ramp, 1."""
    return (torch.clamp(t, -delta, delta) + delta) / (2 * delta)
